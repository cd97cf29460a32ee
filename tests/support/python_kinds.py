"""Walks every built-in kind shoal serves through the official Python
client's generated API classes: created (`utils.create_from_dict`), read,
listed and deleted. The generated models refuse a response that lacks a
field Kubernetes' OpenAPI schema marks required, so each step checks that
shoal's objects carry what kube-apiserver's would.

usage: python_kinds.py KUBECONFIG
"""

import re
import sys

from kubernetes import client, config, utils

NS = "kinds"
POD = {"containers": [{"name": "c", "image": "hello-cmd:v1"}], "nodeSelector": {"kinds": "nowhere"}}
TEMPLATE = {"metadata": {"labels": {"app": "k"}}, "spec": POD}
SELECTOR = {"matchLabels": {"app": "k"}}

MANIFESTS = [
    {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "k"}, "data": {"a": "1"}},
    {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "k"}, "stringData": {"a": "1"}},
    {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "k"}},
    {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "k"},
     "spec": {"selector": {"app": "k"}, "ports": [{"port": 80}]}},
    {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "k", "labels": {"app": "k"}}, "spec": POD},
    {"apiVersion": "v1", "kind": "PodTemplate", "metadata": {"name": "k"}, "template": TEMPLATE},
    {"apiVersion": "v1", "kind": "ReplicationController", "metadata": {"name": "k"},
     "spec": {"replicas": 0, "selector": {"app": "k"}, "template": TEMPLATE}},
    {"apiVersion": "v1", "kind": "LimitRange", "metadata": {"name": "k"},
     "spec": {"limits": [{"type": "Container", "default": {"memory": "64Mi"}}]}},
    {"apiVersion": "v1", "kind": "ResourceQuota", "metadata": {"name": "k"}, "spec": {"hard": {"pods": "100"}}},
    {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "k"},
     "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Mi"}}}},
    {"apiVersion": "v1", "kind": "Endpoints", "metadata": {"name": "manual"},
     "subsets": [{"addresses": [{"ip": "10.0.0.9"}], "ports": [{"port": 80}]}]},
    {"apiVersion": "v1", "kind": "Event", "metadata": {"name": "k"},
     "involvedObject": {"kind": "Pod", "name": "k", "namespace": NS}, "reason": "Tested", "message": "m"},
    {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "k"},
     "spec": {"replicas": 0, "selector": SELECTOR, "template": TEMPLATE}},
    {"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {"name": "k"},
     "spec": {"replicas": 0, "selector": SELECTOR, "template": TEMPLATE}},
    {"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "k"},
     "spec": {"replicas": 0, "serviceName": "k", "selector": SELECTOR, "template": TEMPLATE}},
    {"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": "k"},
     "spec": {"selector": SELECTOR, "template": TEMPLATE}},
    {"apiVersion": "apps/v1", "kind": "ControllerRevision", "metadata": {"name": "k"}, "revision": 1, "data": {}},
    {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "k"},
     "spec": {"suspend": True, "template": {"spec": dict(POD, restartPolicy="Never")}}},
    {"apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": "k"},
     "spec": {"schedule": "0 0 1 1 *", "suspend": True,
              "jobTemplate": {"spec": {"template": {"spec": dict(POD, restartPolicy="Never")}}}}},
    {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": {"name": "k"},
     "spec": {"holderIdentity": "k"}},
    {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": {"name": "k"},
     "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}]},
    {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": {"name": "k"},
     "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "k"},
     "subjects": [{"kind": "ServiceAccount", "name": "k", "namespace": NS}]},
    {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": {"name": "k"},
     "spec": {"minAvailable": 1, "selector": SELECTOR}},
    {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": {"name": "k"},
     "spec": {"podSelector": {}}},
    {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": {"name": "k"},
     "spec": {"defaultBackend": {"service": {"name": "k", "port": {"number": 80}}}}},
    {"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler", "metadata": {"name": "k"},
     "spec": {"maxReplicas": 2, "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "k"}}},
    {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice", "metadata": {"name": "manual"},
     "addressType": "IPv4", "endpoints": [{"addresses": ["10.0.0.9"]}]},
    # In a namespace of its own: the core Events of the other namespace have
    # no eventTime, which events.k8s.io/v1 then shows as null (as
    # kube-apiserver does), and the generated model refuses a null one.
    {"apiVersion": "events.k8s.io/v1", "kind": "Event", "metadata": {"name": "k2", "namespace": NS + "-events"},
     "eventTime": "2026-01-01T00:00:00.000000Z", "reportingController": "test", "reportingInstance": "t",
     "action": "Testing", "reason": "Tested", "type": "Normal", "regarding": {"kind": "Pod", "name": "k", "namespace": NS}},
]

CLUSTER_MANIFESTS = [
    {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": "kinds-k"},
     "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}]},
    {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding", "metadata": {"name": "kinds-k"},
     "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "kinds-k"},
     "subjects": [{"kind": "ServiceAccount", "name": "k", "namespace": NS}]},
    {"apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": "kinds-k"},
     "spec": {"capacity": {"storage": "1Mi"}, "accessModes": ["ReadWriteOnce"], "hostPath": {"path": "/tmp/kinds-k"}}},
    {"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass", "metadata": {"name": "kinds-k"},
     "provisioner": "example.com/none"},
    {"apiVersion": "node.k8s.io/v1", "kind": "RuntimeClass", "metadata": {"name": "kinds-k"}, "handler": "wasm"},
    {"apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass", "metadata": {"name": "kinds-k"}, "value": 10},
    {"apiVersion": "networking.k8s.io/v1", "kind": "IngressClass", "metadata": {"name": "kinds-k"},
     "spec": {"controller": "example.com/none"}},
    {"apiVersion": "apiregistration.k8s.io/v1", "kind": "APIService", "metadata": {"name": "v1.kinds.example.com"},
     "spec": {"group": "kinds.example.com", "version": "v1", "groupPriorityMinimum": 100, "versionPriority": 10}},
]


def api_and_name(obj):
    """The generated API class and the snake_case kind, as
    `utils.create_from_dict` picks them."""
    group, _, version = obj["apiVersion"].rpartition("/")
    group = "core" if not group else group.removesuffix(".k8s.io")
    group = "".join(w.capitalize() for w in group.split("."))
    api = getattr(client, f"{group}{version.capitalize()}Api")()
    kind = re.sub("(?<!^)(?=[A-Z])", "_", obj["kind"]).lower()
    kind = {"a_p_i_service": "api_service"}.get(kind, kind)
    return api, kind


def walk(obj, namespaced):
    name = obj["metadata"]["name"]
    what = f"{obj['apiVersion']} {obj['kind']}"
    step = "naming its API class"
    try:
        api, kind = api_and_name(obj)
        step = "create"
        utils.create_from_dict(client.ApiClient(), obj, namespace=NS if namespaced else None)
        ns = obj["metadata"].get("namespace", NS)
        scope, args = ("namespaced_", (ns,)) if namespaced else ("", ())
        for step in ["read", "list", "delete"]:
            call = getattr(api, f"{step}_{scope}{kind}")
            call(*((name,) if step != "list" else ()), *args)
    except Exception as e:  # the models raise ValueError/ValidationError
        return f"{what}, {step}: {type(e).__name__}: {str(e)[:600]}"
    return None


def main():
    config.load_kube_config(config_file=sys.argv[1])
    for ns in [NS, NS + "-events"]:
        client.CoreV1Api().create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=ns)))
    failures = [f for f in (walk(m, True) for m in MANIFESTS) if f]
    failures += [f for f in (walk(m, False) for m in CLUSTER_MANIFESTS) if f]
    # Kinds made by the cluster itself, read through their typed lists.
    core = client.CoreV1Api()
    for call in [core.list_node, core.list_namespace, lambda: core.list_namespaced_pod("kube-system"),
                 lambda: client.DiscoveryV1Api().list_namespaced_endpoint_slice("default"),
                 lambda: client.CoordinationV1Api().list_namespaced_lease("kube-node-lease"),
                 client.ApiextensionsV1Api().list_custom_resource_definition]:
        try:
            call()
        except Exception as e:
            failures.append(f"{call}: {type(e).__name__}: {str(e)[:600]}")
    for f in failures:
        print("FAILED:", f)
    if failures:
        raise SystemExit(1)
    print("python kinds: ok")


if __name__ == "__main__":
    main()

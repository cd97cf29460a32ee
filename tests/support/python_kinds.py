"""Walks every built-in kind shoal serves through the official Python
client's generated API classes: created (`utils.create_from_dict`), read,
listed and deleted (the objects are `kinds.json`'s, shared with the
kube-rs walk in `tests/kinds.rs`). The generated models refuse a response that lacks a
field Kubernetes' OpenAPI schema marks required, so each step checks that
shoal's objects carry what kube-apiserver's would.

The events.k8s.io Event lives in a namespace of its own: the core Events
of the other namespace have no eventTime, which events.k8s.io/v1 shows as
null (as kube-apiserver does), and the generated model refuses a null one.

usage: python_kinds.py KUBECONFIG
"""

import json
import os
import re
import sys

from kubernetes import client, config, utils

KINDS = json.load(open(os.path.join(os.path.dirname(__file__), "kinds.json")))
NS = KINDS["namespace"]
MANIFESTS = KINDS["namespaced"]
CLUSTER_MANIFESTS = KINDS["cluster"]


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

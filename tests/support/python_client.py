"""Drives a shoal cluster with the official Python `kubernetes` client:
CRUD, the three patch types, status, list with selectors and a watch that
resumes from a resourceVersion. Exits non-zero on the first mismatch.

usage: python_client.py KUBECONFIG
"""

import sys
import time

from kubernetes import client, config, watch
from kubernetes.client.rest import ApiException


def expect(cond, what):
    if not cond:
        raise SystemExit(f"FAILED: {what}")


def main():
    config.load_kube_config(config_file=sys.argv[1])
    core = client.CoreV1Api()
    apps = client.AppsV1Api()
    ns = "default"

    cm = client.V1ConfigMap(metadata=client.V1ObjectMeta(name="py-cm", labels={"from": "python"}), data={"a": "1"})
    created = core.create_namespaced_config_map(ns, cm)
    expect(created.metadata.uid and created.metadata.resource_version, "create sets uid and resourceVersion")
    rv0 = created.metadata.resource_version

    try:
        core.create_namespaced_config_map(ns, cm)
        expect(False, "a second create conflicts")
    except ApiException as e:
        expect(e.status == 409 and "AlreadyExists" in e.body, f"409 AlreadyExists, got {e.status} {e.body}")

    got = core.read_namespaced_config_map("py-cm", ns)
    got.data["b"] = "2"
    updated = core.replace_namespaced_config_map("py-cm", ns, got)
    expect(updated.data == {"a": "1", "b": "2"}, "replace")
    stale = got
    stale.metadata.resource_version = rv0
    try:
        core.replace_namespaced_config_map("py-cm", ns, stale)
        expect(False, "a stale replace conflicts")
    except ApiException as e:
        expect(e.status == 409 and "Conflict" in e.body, f"409 Conflict, got {e.status}")

    merged = core.patch_namespaced_config_map("py-cm", ns, {"data": {"c": "3"}})
    expect(merged.data.get("c") == "3", "strategic merge patch (the client's default for dicts)")
    jp = core.patch_namespaced_config_map("py-cm", ns, [{"op": "remove", "path": "/data/a"}])
    expect("a" not in jp.data, "JSON patch")

    listed = core.list_namespaced_config_map(ns, label_selector="from=python")
    expect([i.metadata.name for i in listed.items] == ["py-cm"], "label selector")
    expect(core.list_namespaced_config_map(ns, label_selector="from=nowhere").items == [], "empty selection")

    dep = client.V1Deployment(
        metadata=client.V1ObjectMeta(name="py-dep"),
        spec=client.V1DeploymentSpec(
            replicas=0,
            selector=client.V1LabelSelector(match_labels={"app": "py"}),
            template=client.V1PodTemplateSpec(
                metadata=client.V1ObjectMeta(labels={"app": "py"}),
                spec=client.V1PodSpec(containers=[client.V1Container(name="c", image="hello-cmd:v1")]),
            ),
        ),
    )
    d = apps.create_namespaced_deployment(ns, dep)
    expect(d.spec.strategy.type == "RollingUpdate" and d.spec.revision_history_limit == 10, "deployment defaults")
    scale = apps.patch_namespaced_deployment_scale("py-dep", ns, {"spec": {"replicas": 0}})
    expect(scale.kind == "Scale", "scale subresource")
    apps.delete_namespaced_deployment("py-dep", ns)

    start = core.list_namespaced_config_map(ns).metadata.resource_version
    core.patch_namespaced_config_map("py-cm", ns, {"data": {"d": "4"}})
    core.delete_namespaced_config_map("py-cm", ns)
    seen = []
    for ev in watch.Watch().stream(core.list_namespaced_config_map, ns, resource_version=start, timeout_seconds=5):
        seen.append((ev["type"], ev["object"].metadata.name))
        if ev["type"] == "DELETED":
            break
    expect(seen == [("MODIFIED", "py-cm"), ("DELETED", "py-cm")], f"watch from a resourceVersion: {seen}")

    try:
        core.read_namespaced_config_map("py-cm", ns)
        expect(False, "deleted")
    except ApiException as e:
        expect(e.status == 404, "404 after delete")
    # Request bodies: a protobuf body cut short is a 400 BadRequest Status;
    # YAML is a 415 that names the media types accepted.
    def post(content_type, body, method="POST", path=f"/api/v1/namespaces/{ns}/configmaps"):
        url = core.api_client.configuration.host + path
        headers = {"Content-Type": content_type, "Accept": "application/json"}
        try:
            r = core.api_client.rest_client.request(method, url, headers=headers, body=body)
        except ApiException as e:  # clients before 31 raise on errors
            return e.status, str(e.body)
        return r.status, r.read().decode()
    cut = b"k8s\x00\x0a\x0e\x0a\x02v1\x12\x09ConfigMap\x12\x20\x0a\x05"
    status, text = post("application/vnd.kubernetes.protobuf", cut)
    expect(status == 400 and "BadRequest" in text and "ends early" in text, f"a cut protobuf body: {status} {text}")
    # Server-side apply needs a field manager and a JSON configuration.
    applied = b'{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "py-ssa"}, "data": {"a": "1"}}'
    ssa = f"/api/v1/namespaces/{ns}/configmaps/py-ssa"
    status, text = post("application/apply-patch+yaml", applied, "PATCH", ssa)
    expect(status == 400 and "fieldManager" in text, f"an apply without a field manager: {status} {text}")
    status, text = post("application/apply-patch+yaml", b"data: {a: 1}", "PATCH", ssa + "?fieldManager=py")
    expect(status == 400 and "'Kind' is missing" in text, f"an apply configuration without a kind: {status} {text}")
    status, text = post("application/apply-patch+yaml", applied, "PATCH", ssa + "?fieldManager=py")
    expect(status == 201 and '"manager":"py"' in text.replace(" ", ""), f"an apply creates: {status} {text}")
    yaml_config = b"apiVersion: v1\nkind: ConfigMap\nmetadata: {name: py-ssa}\ndata: {a: '2'}\n"
    status, text = post("application/apply-patch+yaml", yaml_config, "PATCH", ssa + "?fieldManager=py")
    expect(status == 200 and '"a":"2"' in text.replace(" ", ""), f"a YAML apply configuration: {status} {text}")
    # YAML bodies are read as Kubernetes reads them; broken YAML is a 400.
    status, text = post("application/yaml", b"apiVersion: v1\nkind: ConfigMap\nmetadata: {name: py-yaml}\ndata: {k: v}\n")
    expect(status == 201 and '"k":"v"' in text.replace(" ", ""), f"a YAML body: {status} {text}")
    status, text = post("application/yaml", b"kind: [ConfigMap\n")
    expect(status == 400 and "YAML" in text, f"a broken YAML body: {status} {text}")
    laughs = b"a: &a [x, x, x, x, x, x, x, x, x, x]\n" + b"".join(
        b"%c: &%c [*%c, *%c, *%c, *%c, *%c, *%c, *%c, *%c, *%c, *%c]\n" % ((c, c) + (c - 1,) * 10) for c in range(ord("b"), ord("k")))
    status, text = post("application/yaml", laughs)
    expect(status == 400, f"a YAML alias bomb is refused: {status} {text[:200]}")

    custom_objects(ns)
    typed_workloads(ns)

    print("python client: ok")


def custom_objects(ns):
    """A CustomResourceDefinition through ApiextensionsV1Api, its objects
    through CustomObjectsApi: CRUD, a merge patch, status, a 422 from the
    schema and a watch resumed from a resourceVersion."""
    ext = client.ApiextensionsV1Api()
    objects = client.CustomObjectsApi()
    group, version, plural = "py.example.com", "v1", "gadgets"
    schema = {"type": "object", "properties": {
        "spec": {"type": "object", "properties": {"size": {"type": "integer", "minimum": 1, "default": 3}}},
        "status": {"type": "object", "properties": {"ok": {"type": "boolean"}}},
    }}
    crd = client.V1CustomResourceDefinition(
        metadata=client.V1ObjectMeta(name=f"{plural}.{group}"),
        spec=client.V1CustomResourceDefinitionSpec(
            group=group, scope="Namespaced",
            names=client.V1CustomResourceDefinitionNames(plural=plural, kind="Gadget"),
            versions=[client.V1CustomResourceDefinitionVersion(
                name=version, served=True, storage=True,
                schema=client.V1CustomResourceValidation(open_apiv3_schema=schema),
                subresources=client.V1CustomResourceSubresources(status={}))],
        ),
    )
    ext.create_custom_resource_definition(crd)
    got = ext.read_custom_resource_definition(f"{plural}.{group}")
    established = [c.status for c in got.status.conditions or [] if c.type == "Established"]
    expect(got.spec.names.singular == "gadget" and got.metadata.finalizers, "definition defaults")
    for _ in range(50):
        if established == ["True"]:
            break
        time.sleep(0.1)
        got = ext.read_custom_resource_definition(f"{plural}.{group}")
        established = [c.status for c in got.status.conditions or [] if c.type == "Established"]
    expect(established == ["True"], f"Established: {established}")

    body = {"apiVersion": f"{group}/{version}", "kind": "Gadget", "metadata": {"name": "g1"}, "spec": {}}
    made = objects.create_namespaced_custom_object(group, version, ns, plural, body)
    expect(made["spec"] == {"size": 3} and made["metadata"]["uid"], f"defaulted create: {made}")
    start = made["metadata"]["resourceVersion"]
    patched = objects.patch_namespaced_custom_object(group, version, ns, plural, "g1", {"spec": {"size": 5}})
    expect(patched["spec"]["size"] == 5 and patched["metadata"]["generation"] == 2, "merge patch bumps generation")
    status = objects.patch_namespaced_custom_object_status(group, version, ns, plural, "g1", {"status": {"ok": True}})
    expect(status["status"] == {"ok": True}, "status subresource")
    try:
        objects.create_namespaced_custom_object(group, version, ns, plural, dict(body, metadata={"name": "g2"}, spec={"size": 0}))
        expect(False, "a size below the minimum is refused")
    except ApiException as e:
        expect(e.status == 422 and "spec.size" in e.body, f"422 from the schema, got {e.status} {e.body}")
    listed = objects.list_namespaced_custom_object(group, version, ns, plural)
    expect([i["metadata"]["name"] for i in listed["items"]] == ["g1"], "list")
    objects.delete_namespaced_custom_object(group, version, ns, plural, "g1")
    seen = []
    for ev in watch.Watch().stream(objects.list_namespaced_custom_object, group, version, ns, plural,
                                   resource_version=start, timeout_seconds=5):
        seen.append(ev["type"])
        if ev["type"] == "DELETED":
            break
    expect(seen == ["MODIFIED", "MODIFIED", "DELETED"], f"custom watch from a resourceVersion: {seen}")
    ext.delete_custom_resource_definition(f"{plural}.{group}")


def typed_workloads(ns):
    """The workload kinds whose generated models require status fields
    (zero until a controller counts): created, read, listed and deleted
    through the typed API classes, which raise on a missing field."""
    apps = client.AppsV1Api()
    core = client.CoreV1Api()
    autoscaling = client.AutoscalingV2Api()
    labels = {"app": "py-typed"}
    template = client.V1PodTemplateSpec(
        metadata=client.V1ObjectMeta(labels=labels),
        spec=client.V1PodSpec(containers=[client.V1Container(name="c", image="hello-cmd:v1")],
                              node_selector={"py-typed": "nowhere"}),
    )
    selector = client.V1LabelSelector(match_labels=labels)
    meta = lambda name: client.V1ObjectMeta(name=name)
    ds = apps.create_namespaced_daemon_set(ns, client.V1DaemonSet(
        metadata=meta("py-ds"), spec=client.V1DaemonSetSpec(selector=selector, template=template)))
    expect(ds.status.desired_number_scheduled == 0 and ds.status.number_ready == 0, f"daemon set status {ds.status}")
    expect(apps.read_namespaced_daemon_set("py-ds", ns).status.number_misscheduled == 0, "daemon set read")
    expect(len(apps.list_namespaced_daemon_set(ns).items) == 1, "daemon set list")
    rs = apps.create_namespaced_replica_set(ns, client.V1ReplicaSet(
        metadata=meta("py-rs"), spec=client.V1ReplicaSetSpec(replicas=0, selector=selector, template=template)))
    expect(rs.status.replicas == 0, f"replica set status {rs.status}")
    ss = apps.create_namespaced_stateful_set(ns, client.V1StatefulSet(
        metadata=meta("py-ss"), spec=client.V1StatefulSetSpec(replicas=0, selector=selector, template=template,
                                                              service_name="py-ss")))
    expect(ss.status.replicas == 0 and ss.status.available_replicas == 0, f"stateful set status {ss.status}")
    rc = core.create_namespaced_replication_controller(ns, client.V1ReplicationController(
        metadata=meta("py-rc"), spec=client.V1ReplicationControllerSpec(replicas=0, selector=labels, template=template)))
    expect(rc.status.replicas == 0, f"replication controller status {rc.status}")
    hpa = autoscaling.create_namespaced_horizontal_pod_autoscaler(ns, client.V2HorizontalPodAutoscaler(
        metadata=meta("py-hpa"), spec=client.V2HorizontalPodAutoscalerSpec(
            max_replicas=3, scale_target_ref=client.V2CrossVersionObjectReference(
                api_version="apps/v1", kind="ReplicaSet", name="py-rs"))))
    expect(hpa.status.desired_replicas == 0, f"autoscaler status {hpa.status}")
    # A status written without the fields keeps them.
    apps.patch_namespaced_replica_set_status("py-rs", ns, {"status": {"observedGeneration": 1}})
    expect(apps.read_namespaced_replica_set_status("py-rs", ns).status.replicas == 0, "status patch")
    apps.delete_namespaced_daemon_set("py-ds", ns)
    apps.delete_namespaced_replica_set("py-rs", ns)
    apps.delete_namespaced_stateful_set("py-ss", ns)
    core.delete_namespaced_replication_controller("py-rc", ns)
    autoscaling.delete_namespaced_horizontal_pod_autoscaler("py-hpa", ns)


if __name__ == "__main__":
    main()

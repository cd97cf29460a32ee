#!/usr/bin/env python3
"""Writes apiserver/wire/src/gotypes/schema.txt, the table of Kubernetes' Go types the
apiserver decodes protobuf request bodies with and writes JSON in Go's field
order by.

Field numbers and wire types come from the k8s-pb crate (Rust bindings
generated from Kubernetes' generated.proto files); JSON field names come from
k8s-openapi (the Kubernetes 1.32 OpenAPI types shoal serves), matched by name
with case and underscores ignored. A message field with no JSON counterpart
in its parent is an embedded Go struct (`json:",inline"`) when the parent has
most of the embedded message's fields; other fields without a JSON name are
newer than the served version and keep their proto name in camelCase.

Usage: scripts/protobuf-schema.py [CARGO_REGISTRY_SRC]
The two crates must be in the cargo registry (`cargo fetch` with k8s-pb as a
dependency, or `cargo download`).
"""
import glob
import os
import re
import sys

K8S_PB = "k8s-pb-0.9.0"
K8S_OPENAPI = "k8s-openapi-0.25.0"
OPENAPI_VERSION = "v1_32"
OUT = os.path.join(os.path.dirname(__file__), "..", "apiserver", "wire", "src", "gotypes", "schema.txt")

# Packages besides api/<group>/<version> that API objects refer to.
SUPPORT = [
    "apimachinery/pkg/apis/meta/v1",
    "apimachinery/pkg/util/intstr",
    "apimachinery/pkg/api/resource",
    "apimachinery/pkg/runtime",
]
# Where the API groups' packages are: built-in, CustomResourceDefinition, APIService.
GROUPS = ("api/", "apiextensions_apiserver/", "kube_aggregator/")
# Go types served as JSON only, so without a protobuf message: their fields in
# the order of the Go struct (k8s.io/apimachinery/pkg/apis/meta/v1/types.go).
# The numbers only keep the table's shape.
JSON_ONLY = """message apimachinery.pkg.apis.meta.v1.Table
1 metadata apimachinery.pkg.apis.meta.v1.ListMeta
2 columnDefinitions []apimachinery.pkg.apis.meta.v1.TableColumnDefinition
3 rows []apimachinery.pkg.apis.meta.v1.TableRow
message apimachinery.pkg.apis.meta.v1.TableColumnDefinition
1 name string
2 type string
3 format string
4 description string
5 priority int32
message apimachinery.pkg.apis.meta.v1.TableRow
1 cells []apimachinery.pkg.runtime.RawExtension
2 conditions []apimachinery.pkg.apis.meta.v1.TableRowCondition
3 object apimachinery.pkg.runtime.RawExtension
message apimachinery.pkg.apis.meta.v1.TableRowCondition
1 type string
2 status string
3 reason string
4 message string"""
# Objects of subresources, which are not kinds of their own.
# Bodies of subresources, decoded by their kind like the resources' own.
SUBRESOURCE_KINDS = [
    ("autoscaling/v1", "Scale", "api.autoscaling.v1.Scale"),
    ("policy/v1", "Eviction", "api.policy.v1.Eviction"),
    ("authentication.k8s.io/v1", "TokenRequest", "api.authentication.v1.TokenRequest"),
]
SUBRESOURCES = [m for _, _, m in SUBRESOURCE_KINDS]
# Messages the decoder turns into JSON by hand (see protobuf/mod.rs).
SPECIAL = {
    "apimachinery.pkg.apis.meta.v1.Time",
    "apimachinery.pkg.apis.meta.v1.MicroTime",
    "apimachinery.pkg.apis.meta.v1.Duration",
    "apimachinery.pkg.apis.meta.v1.FieldsV1",
    "apimachinery.pkg.util.intstr.IntOrString",
    "apimachinery.pkg.api.resource.Quantity",
    "apimachinery.pkg.runtime.RawExtension",
}

FIELD = re.compile(
    r'#\[prost\((?P<kind>[a-z_0-9]+)(?: = "(?P<arg>[^"]*)")?(?:, (?P<label>optional|repeated))?(?:, boxed)?, tag = "(?P<tag>\d+)"\)\] '
    r"pub (?:r#)?(?P<name>[a-z_0-9]+): (?P<ty>.+?),(?= #|$)"
)
STRUCT = re.compile(r"\npub struct (\w+) \{(.*?)\n\}", re.S)
RESOURCE = re.compile(
    r'impl crate::Resource for (\w+) \{\s*const API_VERSION: &\'static str = "([^"]+)";.*?const KIND: &\'static str = "(\w+)";',
    re.S,
)


def norm(name):
    # `$ref`, `x-kubernetes-list-type` and `r#ref`, `x_kubernetes_list_type`.
    return re.sub(r"[_$-]", "", name).lower()


def registry_src():
    if len(sys.argv) > 1:
        return sys.argv[1]
    home = os.environ.get("CARGO_HOME", os.path.expanduser("~/.cargo"))
    for d in glob.glob(os.path.join(home, "registry", "src", "*")):
        if os.path.isdir(os.path.join(d, K8S_PB)) and os.path.isdir(os.path.join(d, K8S_OPENAPI)):
            return d
    sys.exit(f"{K8S_PB} and {K8S_OPENAPI} are not in the cargo registry")


def openapi_fields(root):
    """(module path, struct) -> JSON field names, from k8s-openapi."""
    out = {}
    for path in glob.glob(os.path.join(root, "**", "*.rs"), recursive=True):
        rel = os.path.relpath(os.path.dirname(path), root).replace(os.sep, "/")
        text = open(path).read()
        structs = re.findall(r"^pub struct (\w+)", text, re.M)
        for m in re.finditer(r"deserialize_struct\(\s*([^,]+),\s*&\[(.*?)\]", text, re.S):
            # Resources name themselves `<Self as crate::Resource>::KIND`.
            name = m.group(1).strip('"') if m.group(1).startswith('"') else structs[0]
            if name in structs:  # not a helper type of another struct's impl
                out[(rel, name)] = re.findall(r'"([^"]+)"', m.group(2))
    return out


def resolve(module, rust_ty):
    """A prost type path, relative to `module`, as a dotted message name."""
    parts = rust_ty.split("::")
    base = module.split("/")
    while parts and parts[0] == "super":
        base = base[:-1]
        parts = parts[1:]
    if parts and parts[0] == "crate":
        base, parts = [], parts[1:]
    return ".".join(base + parts)


def inner(ty):
    """The element type of a prost field's Rust type."""
    ty = ty.replace(" ", "").rstrip(",")
    for wrapper in ("::core::option::Option<", "::prost::alloc::vec::Vec<", "::prost::alloc::boxed::Box<"):
        if ty.startswith(wrapper):
            return inner(ty[len(wrapper):-1])
    if "BTreeMap<" in ty:
        return inner(ty[ty.index(",") + 1:-1])
    return ty


def field_type(module, full, f):
    """A field's type in the table's notation."""
    kind, arg = f["kind"], f["arg"]
    if kind == "message":
        t = resolve(module, inner(f["ty"]))
    elif kind == "btree_map":
        k, v = [x.strip() for x in arg.split(",")]
        if k != "string":
            sys.exit(f"{full}.{f['name']}: map key {k}")
        t = "{}" + (resolve(module, inner(f["ty"])) if v == "message" else v)
    else:
        t = kind
    return "[]" + t if f["label"] == "repeated" else t


def main():
    src = registry_src()
    pb_root = os.path.join(src, K8S_PB, "src")
    openapi = openapi_fields(os.path.join(src, K8S_OPENAPI, "src", OPENAPI_VERSION))
    # prost renames acronyms (HostIP -> HostIp): match struct names without case.
    openapi = {(module, name.lower()): names for (module, name), names in openapi.items()}
    modules = sorted({k[0] for k in openapi if k[0].startswith(GROUPS)} | set(SUPPORT))
    messages, kinds = {}, []
    for module in modules:
        path = os.path.join(pb_root, module, "mod.rs")
        if not os.path.exists(path):
            continue
        text = open(path).read()
        dotted = module.replace("/", ".")
        for name, body in STRUCT.findall(text):
            # One line per struct, without doc comments, so a type may span lines.
            flat = re.sub(r"\s+", " ", re.sub(r"^\s*///.*$", "", body, flags=re.M)).strip()
            full = f"{dotted}.{name}"
            fields = [dict(f.groupdict()) for f in FIELD.finditer(flat)]
            for f in fields:
                f["type"] = field_type(module, full, f)
            messages[full] = {"fields": fields, "names": openapi.get((module, name.lower()))}
        for name, api_version, kind in RESOURCE.findall(text):
            if (module, name.lower()) in openapi:
                kinds.append((api_version, kind, f"{dotted}.{name}"))

    # Embedded Go structs: a message field without a JSON name whose message's
    # fields are mostly JSON fields of the parent. The embedded message takes
    # its JSON names from the parent.
    inline = set()
    for full, m in list(messages.items()):
        if m["names"] is None:
            continue
        by_norm = {norm(j) for j in m["names"]}
        for f in m["fields"]:
            target = messages.get(f["type"])
            if norm(f["name"]) in by_norm or f["kind"] != "message" or not target:
                continue
            if 2 * sum(norm(g["name"]) in by_norm for g in target["fields"]) > len(target["fields"]):
                inline.add((full, f["name"]))
                target["names"] = sorted(set(target["names"] or []) | set(m["names"]))

    # What the served kinds and the meta/v1 messages refer to.
    todo = [k[2] for k in kinds] + [m for m in messages if m.startswith("apimachinery")]
    todo += sorted(SPECIAL) + SUBRESOURCES
    reachable = set()
    while todo:
        full = todo.pop()
        if full in reachable or full not in messages:
            continue
        reachable.add(full)
        todo.extend(f["type"].lstrip("[]{}") for f in messages[full]["fields"])

    lines = [
        f"# Generated by scripts/protobuf-schema.py from {K8S_PB} and {K8S_OPENAPI} ({OPENAPI_VERSION}).",
        "# kind <apiVersion> <Kind> <message>",
        "# message <name>, then one field a line: <tag> <json name or - for inline> <type>",
        "# types: a scalar, a message name, []T for repeated, {}T for a map with string keys",
        "# alias <message> []T: a message that is a bare array in JSON",
    ]
    lines += [f"kind {v} {k} {m}" for v, k, m in sorted(kinds + SUBRESOURCE_KINDS)]
    newer = []
    for full in sorted(reachable):
        m = messages[full]
        fields = m["fields"]
        if m["names"] is None and full.startswith("api."):
            items = [f for f in fields if f["name"] == "items" and f["label"] == "repeated"]
            if len(fields) == 1 and items:
                # A named Go slice (`type ExtraValue []string`): a bare array in JSON.
                lines.append(f"alias {full} {items[0]['type']}")
                continue
        lines.append(f"message {full}")
        by_norm = {norm(j): j for j in m["names"] or []}
        for f in fields:
            if (full, f["name"]) in inline:
                json = "-"
            elif norm(f["name"]) in by_norm:
                json = by_norm[norm(f["name"])]
            else:
                # Fields newer than 1.32, and apimachinery messages without an
                # OpenAPI type: the proto name in camelCase is the JSON name.
                json = re.sub(r"_([a-z0-9])", lambda x: x.group(1).upper(), f["name"])
                if m["names"] is not None:
                    newer.append(f"{full}.{f['name']}")
            lines.append(f"{f['tag']} {json} {f['type']}")
    lines += JSON_ONLY.split("\n")
    with open(OUT, "w") as out:
        out.write("\n".join(lines) + "\n")
    print(f"{len(newer)} fields newer than {OPENAPI_VERSION} named from their proto names")
    print(f"{OUT}: {len(reachable)} messages, {len(kinds)} kinds")


if __name__ == "__main__":
    main()

//! The resource metrics API's kinds (`metrics.k8s.io/v1beta1`): served,
//! never stored.

use schemars::r#gen::SchemaGenerator;
use schemars::schema::Schema;

use super::Resource;

/// A kind of the resource metrics API (`metrics.k8s.io`, what `kubectl
/// top` reads): read-only, made from the nodes' figures when asked, never
/// stored.
pub(super) const fn resource_metrics(
    kind: &'static str,
    plural: &'static str,
    singular: &'static str,
    namespaced: bool,
) -> Resource {
    Resource {
        group: "metrics.k8s.io",
        version: "v1beta1",
        kind,
        plural,
        singular,
        namespaced,
        short_names: &[],
        categories: &[],
        subresources: &[],
        schema: metrics_schema,
        schema_name: if namespaced {
            "io.k8s.metrics.pkg.apis.metrics.v1beta1.PodMetrics"
        } else {
            "io.k8s.metrics.pkg.apis.metrics.v1beta1.NodeMetrics"
        },
        decode: |_| Err("metrics are read, not written".into()),
        custom: None,
        view: None,
        verbs: &["get", "list"],
        stored: false,
    }
}

/// The resource metrics kinds' schemas (both, as definitions): objects
/// with a `timestamp`, a `window` and the `usage` of the node or of each
/// of the pod's `containers`, in quantities.
fn metrics_schema(g: &mut SchemaGenerator) -> Schema {
    let usage = serde_json::json!({"type": "object",
        "additionalProperties": {"$ref": "#/components/schemas/io.k8s.apimachinery.pkg.api.resource.Quantity"}});
    let with = |field: &str, schema: serde_json::Value| {
        let mut props = serde_json::json!({
            "apiVersion": {"type": "string"}, "kind": {"type": "string"},
            "metadata": {"$ref": "#/components/schemas/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"},
            "timestamp": {"type": "string", "format": "date-time"},
            "window": {"type": "string"},
        });
        props[field] = schema;
        serde_json::from_value::<Schema>(serde_json::json!({"type": "object", "properties": props}))
            .expect("a schema")
    };
    let containers = serde_json::json!({"type": "array", "items": {"type": "object",
        "properties": {"name": {"type": "string"}, "usage": usage.clone()}}});
    let node = with("usage", usage);
    let pod = with("containers", containers);
    let defs = g.definitions_mut();
    defs.insert(
        "io.k8s.metrics.pkg.apis.metrics.v1beta1.NodeMetrics".into(),
        node,
    );
    defs.insert(
        "io.k8s.metrics.pkg.apis.metrics.v1beta1.PodMetrics".into(),
        pod,
    );
    Schema::Bool(true)
}

//! Request validation: decoding against the kind's schema (type errors,
//! unknown fields for `fieldValidation`) and the semantic checks that give
//! `422 Invalid`.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use schemars::r#gen::{SchemaGenerator, SchemaSettings};
use serde_json::{Map, Value, json};

use crate::error::{ApiError, Cause, Result};
use crate::names::{is_dns_label, is_dns_subdomain, is_label_key, is_label_value};
use crate::resources::{RESOURCES, Resource};
use crate::selectors::LabelSelector;

/// The OpenAPI definitions of every served kind, keyed by definition name.
pub fn definitions() -> &'static BTreeMap<String, Value> {
    static DEFS: OnceLock<BTreeMap<String, Value>> = OnceLock::new();
    DEFS.get_or_init(|| {
        let mut g = SchemaGenerator::new(SchemaSettings::openapi3());
        for r in RESOURCES {
            (r.schema)(&mut g);
        }
        let mut defs: BTreeMap<String, Value> = g
            .take_definitions()
            .into_iter()
            .map(|(k, v)| (k, serde_json::to_value(v).unwrap_or(Value::Null)))
            .collect();
        add_patch_extensions(&mut defs);
        defs
    })
}

fn add_patch_extensions(defs: &mut BTreeMap<String, Value>) {
    for (def, prop, key) in crate::merge_keys::LISTS {
        if let Some(p) = defs
            .get_mut(*def)
            .and_then(|d| d.pointer_mut(&format!("/properties/{prop}")))
            .and_then(Value::as_object_mut)
        {
            p.insert(
                "x-kubernetes-patch-merge-key".into(),
                Value::String((*key).into()),
            );
            p.insert(
                "x-kubernetes-patch-strategy".into(),
                Value::String("merge".into()),
            );
            p.insert("x-kubernetes-list-type".into(), Value::String("map".into()));
            p.insert(
                "x-kubernetes-list-map-keys".into(),
                serde_json::json!([key]),
            );
        }
    }
    if let Some(p) = defs
        .get_mut("io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta")
        .and_then(|d| d.pointer_mut("/properties/finalizers"))
        .and_then(Value::as_object_mut)
    {
        p.insert(
            "x-kubernetes-patch-strategy".into(),
            Value::String("merge".into()),
        );
        p.insert("x-kubernetes-list-type".into(), Value::String("set".into()));
    }
}

fn resolve(schema: &Value) -> &Value {
    let mut s = schema;
    for _ in 0..8 {
        match s.get("$ref").and_then(Value::as_str) {
            Some(r) => match definitions().get(r.rsplit('/').next().unwrap_or(r)) {
                Some(d) => s = d,
                None => return s,
            },
            None => {
                if let Some(inner) = s
                    .get("allOf")
                    .and_then(Value::as_array)
                    .and_then(|a| a.first())
                {
                    s = inner;
                } else {
                    return s;
                }
            }
        }
    }
    s
}

fn unknown_fields(value: &Value, schema: &Value, path: &str, out: &mut Vec<String>) {
    let schema = resolve(schema);
    match value {
        Value::Object(map) => {
            if let Some(props) = schema.get("properties").and_then(Value::as_object) {
                for (k, v) in map {
                    let p = if path.is_empty() {
                        k.clone()
                    } else {
                        format!("{path}.{k}")
                    };
                    match props.get(k) {
                        Some(sub) => unknown_fields(v, sub, &p, out),
                        None => out.push(p),
                    }
                }
            } else if let Some(extra) = schema.get("additionalProperties").filter(|a| a.is_object())
            {
                for (k, v) in map {
                    unknown_fields(v, extra, &format!("{path}.{k}"), out);
                }
            }
        }
        Value::Array(items) => {
            if let Some(item_schema) = schema.get("items") {
                for (i, v) in items.iter().enumerate() {
                    unknown_fields(v, item_schema, &format!("{path}[{i}]"), out);
                }
            }
        }
        _ => {}
    }
}

/// How to treat fields the schema does not know (`?fieldValidation=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldValidation {
    /// Drop them silently.
    Ignore,
    /// Drop them with a `Warning` header.
    Warn,
    /// Reject the request.
    Strict,
}

impl FieldValidation {
    /// Parses the query value; kubectl's default is Strict, the server's Warn.
    pub fn parse(s: Option<&str>) -> Result<Self> {
        match s {
            None | Some("") | Some("Warn") => Ok(Self::Warn),
            Some("Ignore") => Ok(Self::Ignore),
            Some("Strict") => Ok(Self::Strict),
            Some(other) => Err(ApiError::bad_request(format!(
                "fieldValidation {other} is invalid: valid values are \"Ignore\", \"Warn\" and \"Strict\""
            ))),
        }
    }
}

/// Decodes `obj` as the resource's kind. Returns the warnings for unknown
/// fields (empty under Strict, which fails instead).
pub fn decode(r: &Resource, obj: &Value, mode: FieldValidation) -> Result<Vec<String>> {
    let cannot = |detail: String| {
        ApiError::bad_request(format!(
            "{} in version \"{}\" cannot be handled as a {}: {detail}",
            r.kind, r.version, r.kind
        ))
    };
    if !obj.is_object() {
        return Err(cannot("the object is not a JSON object".into()));
    }
    (r.decode)(obj).map_err(cannot)?;
    if mode == FieldValidation::Ignore {
        return Ok(Vec::new());
    }
    let mut unknown = Vec::new();
    if let Some(custom) = r.custom {
        crate::custom::schema::prune(&custom.schema, &mut obj.clone(), &mut unknown);
    } else if let Some(schema) = definitions().get(r.schema_name) {
        unknown_fields(obj, schema, "", &mut unknown);
    }
    unknown.retain(|f| f != "status" && !f.starts_with("metadata.managedFields"));
    if unknown.is_empty() {
        return Ok(Vec::new());
    }
    let list: Vec<String> = unknown
        .iter()
        .map(|f| format!("unknown field \"{f}\""))
        .collect();
    match mode {
        FieldValidation::Strict => Err(cannot(format!(
            "strict decoding error: {}",
            list.join(", ")
        ))),
        _ => Ok(list),
    }
}

struct Causes(Vec<Cause>);

impl Causes {
    fn required(&mut self, field: impl Into<String>, what: &str) {
        self.0.push(Cause {
            kind: "FieldValueRequired",
            field: field.into(),
            message: format!("Required value: {what}"),
        });
    }
    fn into_result(self, r: &Resource, obj: &Value) -> Result<()> {
        if self.0.is_empty() {
            return Ok(());
        }
        let name = obj
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or_default();
        Err(ApiError::invalid(r.group, r.kind, name, self.0))
    }
    fn invalid(&mut self, field: impl Into<String>, value: &Value, why: &str) {
        self.0.push(Cause {
            kind: "FieldValueInvalid",
            field: field.into(),
            message: format!("Invalid value: {value}: {why}"),
        });
    }
}

/// An APIService as the aggregator checks it: named `<version>.<group>`,
/// priorities in range, and a CA bundle only with a Service.
fn api_service(obj: &Value, name: &str, c: &mut Causes) {
    let spec = obj.get("spec").unwrap_or(&Value::Null);
    let text = |k: &str| spec.get(k).and_then(Value::as_str).unwrap_or_default();
    let (group, version) = (text("group"), text("version"));
    if version.is_empty() {
        c.required("spec.version", "");
    } else if !is_dns_label(version) {
        c.invalid(
            "spec.version",
            &json!(version),
            "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-'",
        );
    }
    if !group.is_empty() && !version.is_empty() && name != format!("{version}.{group}") {
        c.invalid(
            "metadata.name",
            &json!(name),
            &format!("must be {version}.{group}"),
        );
    }
    for (field, max) in [("groupPriorityMinimum", 20000), ("versionPriority", 1000)] {
        match spec.get(field).and_then(Value::as_i64) {
            Some(n) if (1..=max).contains(&n) => {}
            Some(n) => c.invalid(
                format!("spec.{field}"),
                &json!(n),
                &format!("must be positive and less than {}", max + 1),
            ),
            None if !group.is_empty() => c.invalid(
                format!("spec.{field}"),
                &json!(0),
                &format!("must be positive and less than {}", max + 1),
            ),
            None => {}
        }
    }
    let service = spec.get("service").filter(|s| !s.is_null());
    let skip_tls = spec.get("insecureSkipTLSVerify") == Some(&json!(true));
    let ca = !text("caBundle").is_empty();
    match service {
        None if skip_tls => c.invalid(
            "spec.insecureSkipTLSVerify",
            &json!(true),
            "local APIServices may not have insecureSkipTLSVerify",
        ),
        None if ca => c.invalid(
            "spec.caBundle",
            &json!(text("caBundle")),
            "local APIServices may not have a caBundle",
        ),
        Some(_) if skip_tls && ca => c.invalid(
            "spec.insecureSkipTLSVerify",
            &json!(true),
            "may not be true if caBundle is present",
        ),
        Some(s) => {
            for k in ["namespace", "name"] {
                if s.get(k).and_then(Value::as_str).is_none_or(str::is_empty) {
                    c.required(format!("spec.service.{k}"), "");
                }
            }
        }
        None => {}
    }
}

/// Semantic checks of an object about to be stored.
pub fn validate(r: &Resource, obj: &Value) -> Result<()> {
    let mut c = Causes(Vec::new());
    let name = obj
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let name_ok = match r.builtin_kind() {
        "Namespace" | "Service" => is_dns_label(name),
        _ => is_dns_subdomain(name),
    };
    if name.is_empty() {
        c.required("metadata.name", "name or generateName is required");
    } else if !name_ok {
        c.invalid("metadata.name", &Value::String(name.into()), "a lowercase RFC 1123 name must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character");
    }
    for field in ["labels", "annotations"] {
        if let Some(map) = obj
            .pointer(&format!("/metadata/{field}"))
            .and_then(Value::as_object)
        {
            for (k, v) in map {
                if !is_label_key(k) {
                    c.invalid(
                        format!("metadata.{field}"),
                        &Value::String(k.clone()),
                        "name part must consist of alphanumeric characters, '-', '_' or '.'",
                    );
                }
                if field == "labels" && !v.as_str().is_some_and(is_label_value) {
                    c.invalid("metadata.labels".to_string(), v, "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character");
                }
            }
        }
    }
    if let Some(custom) = r.custom {
        let causes = crate::custom::schema::validate(&custom.schema, obj);
        // Rules read values of the schema's types: only a well-typed
        // object is checked against them.
        if causes.is_empty() {
            c.0.extend(crate::custom::cel::check(&custom.schema, obj, None));
        }
        c.0.extend(causes);
    }
    match r.builtin_kind() {
        "CustomResourceDefinition" => c.0.extend(crate::custom::validate_definition(obj)),
        "APIService" => api_service(obj, name, &mut c),
        "Pod" => pod_spec(obj.get("spec"), "spec", &mut c),
        "Deployment" | "ReplicaSet" | "DaemonSet" | "StatefulSet" | "ReplicationController" => {
            let spec = obj.get("spec");
            if let Some(n) = spec
                .and_then(|s| s.get("replicas"))
                .filter(|n| n.as_i64().is_some_and(|n| n < 0))
            {
                c.invalid("spec.replicas", n, "must be greater than or equal to 0");
            }
            // A ReplicationController's selector is a plain label map.
            let plain = r.builtin_kind() == "ReplicationController";
            let labels = spec.and_then(|s| s.pointer("/template/metadata/labels"));
            match spec.and_then(|s| s.get("selector")) {
                None => c.required("spec.selector", ""),
                Some(sel) => {
                    let empty = if plain {
                        sel.as_object().is_none_or(Map::is_empty)
                    } else {
                        sel.get("matchLabels")
                            .and_then(Value::as_object)
                            .is_none_or(Map::is_empty)
                            && sel
                                .get("matchExpressions")
                                .and_then(Value::as_array)
                                .is_none_or(Vec::is_empty)
                    };
                    let selector = if plain {
                        LabelSelector::from_map(sel)
                    } else {
                        LabelSelector::from_object(sel)
                    };
                    if empty && plain {
                        c.required("spec.selector", "");
                    } else if empty {
                        c.invalid(
                            "spec.selector",
                            sel,
                            &format!("empty selector is invalid for {}", r.kind.to_lowercase()),
                        );
                    } else if !selector.matches(labels) {
                        c.invalid(
                            "spec.template.metadata.labels",
                            labels.unwrap_or(&Value::Null),
                            "`selector` does not match template `labels`",
                        );
                    }
                }
            }
            pod_spec(
                spec.and_then(|s| s.pointer("/template/spec")),
                "spec.template.spec",
                &mut c,
            );
        }
        "Job" => job_spec(obj.get("spec"), "spec", &mut c),
        "CronJob" => {
            let schedule = obj.pointer("/spec/schedule");
            match schedule.and_then(Value::as_str) {
                None | Some("") => c.required("spec.schedule", ""),
                Some(s) => {
                    if let Err(e) = crate::cron::parse_schedule(s) {
                        c.invalid("spec.schedule", schedule.unwrap_or(&Value::Null), &e);
                    }
                }
            }
            if let Err(e) = crate::cron::time_zone(obj) {
                c.invalid(
                    "spec.timeZone",
                    obj.pointer("/spec/timeZone").unwrap_or(&Value::Null),
                    &e,
                );
            }
            job_spec(
                obj.pointer("/spec/jobTemplate/spec"),
                "spec.jobTemplate.spec",
                &mut c,
            );
        }
        "NetworkPolicy" => {
            for dir in ["ingress", "egress"] {
                let peers_key = if dir == "ingress" { "from" } else { "to" };
                let rules = obj
                    .pointer(&format!("/spec/{dir}"))
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default();
                for (i, rule) in rules.iter().enumerate() {
                    let peers = rule
                        .get(peers_key)
                        .and_then(Value::as_array)
                        .cloned()
                        .unwrap_or_default();
                    for (j, peer) in peers.iter().enumerate() {
                        let Some(block) = peer.get("ipBlock") else {
                            continue;
                        };
                        let at = format!("spec.{dir}[{i}].{peers_key}[{j}].ipBlock");
                        let cidr = block
                            .get("cidr")
                            .and_then(Value::as_str)
                            .unwrap_or_default();
                        let Some(net) = parse_cidr(cidr) else {
                            c.invalid(
                                format!("{at}.cidr"),
                                &block["cidr"],
                                "must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)",
                            );
                            continue;
                        };
                        for (k, e) in block
                            .get("except")
                            .and_then(Value::as_array)
                            .into_iter()
                            .flatten()
                            .enumerate()
                        {
                            match e.as_str().and_then(parse_cidr) {
                                None => c.invalid(
                                    format!("{at}.except[{k}]"),
                                    e,
                                    "must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)",
                                ),
                                Some(ex) if !strict_subset(ex, net) => c.invalid(
                                    format!("{at}.except[{k}]"),
                                    e,
                                    "must be a strict subset of `cidr`",
                                ),
                                Some(_) => {}
                            }
                        }
                    }
                }
            }
        }
        "Service" => {
            let ports = obj
                .pointer("/spec/ports")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            let mut seen: Vec<(i64, &str)> = Vec::new();
            let mut names: Vec<&str> = Vec::new();
            for (i, p) in ports.iter().enumerate() {
                let port = p.get("port").and_then(Value::as_i64).unwrap_or(0);
                let protocol = p.get("protocol").and_then(Value::as_str).unwrap_or("TCP");
                if seen.contains(&(port, protocol)) {
                    c.0.push(Cause {
                        kind: "FieldValueDuplicate",
                        field: format!("spec.ports[{i}]"),
                        message: format!("Duplicate value: core.ServicePort{{Name:\"{}\", Protocol:\"{protocol}\", Port:{port}}}", p.get("name").and_then(Value::as_str).unwrap_or_default()),
                    });
                }
                seen.push((port, protocol));
                if let Some(name) = p.get("name").and_then(Value::as_str) {
                    if names.contains(&name) {
                        c.0.push(Cause {
                            kind: "FieldValueDuplicate",
                            field: format!("spec.ports[{i}].name"),
                            message: format!("Duplicate value: \"{name}\""),
                        });
                    }
                    names.push(name);
                } else if ports.len() > 1 {
                    c.required(format!("spec.ports[{i}].name"), "");
                }
                if !(1..=65535).contains(&port) {
                    c.invalid(
                        format!("spec.ports[{i}].port"),
                        &p["port"],
                        "must be between 1 and 65535, inclusive",
                    );
                }
                if let Some(np) = p.get("nodePort").and_then(Value::as_i64)
                    && np != 0
                    && !(30000..=32767).contains(&np)
                {
                    c.invalid(format!("spec.ports[{i}].nodePort"), &p["nodePort"], "provided port is not in the valid range. The range of valid ports is 30000-32767");
                }
            }
            let ty = obj
                .pointer("/spec/type")
                .and_then(Value::as_str)
                .unwrap_or("ClusterIP");
            if !["ClusterIP", "NodePort", "LoadBalancer", "ExternalName"].contains(&ty) {
                c.0.push(Cause { kind: "FieldValueNotSupported", field: "spec.type".into(), message: format!("Unsupported value: \"{ty}\": supported values: \"ClusterIP\", \"ExternalName\", \"LoadBalancer\", \"NodePort\"") });
            }
        }
        _ => {}
    }
    c.into_result(r, obj)
}

/// An IPv4 or IPv6 CIDR as (address bits, prefix length, IPv6).
fn parse_cidr(s: &str) -> Option<(u128, u32, bool)> {
    let (addr, len) = s.split_once('/')?;
    let len: u32 = len.parse().ok()?;
    match addr.parse::<std::net::IpAddr>().ok()? {
        std::net::IpAddr::V4(a) if len <= 32 => Some((u128::from(u32::from(a)), len, false)),
        std::net::IpAddr::V6(a) if len <= 128 => Some((u128::from(a), len, true)),
        _ => None,
    }
}

/// Whether `inner` is a strict subset of `outer`.
fn strict_subset(inner: (u128, u32, bool), outer: (u128, u32, bool)) -> bool {
    let bits = if outer.2 { 128 } else { 32 };
    if inner.2 != outer.2 || inner.1 <= outer.1 {
        return false;
    }
    let shift = bits - outer.1;
    shift >= 128 || (inner.0 >> shift) == (outer.0 >> shift)
}

/// A Job's spec at `path`; a CronJob's job template has no selector yet.
fn job_spec(spec: Option<&Value>, path: &str, c: &mut Causes) {
    let Some(spec) = spec else {
        return c.required(path, "");
    };
    for field in [
        "parallelism",
        "completions",
        "backoffLimit",
        "activeDeadlineSeconds",
        "ttlSecondsAfterFinished",
    ] {
        if let Some(v) = spec.get(field)
            && v.as_i64()
                .is_some_and(|n| n < 0 || (n == 0 && field == "activeDeadlineSeconds"))
        {
            let why = if field == "activeDeadlineSeconds" {
                "must be greater than 0"
            } else {
                "must be greater than or equal to 0"
            };
            c.invalid(format!("{path}.{field}"), v, why);
        }
    }
    let restart = spec.pointer("/template/spec/restartPolicy");
    if spec.get("podFailurePolicy").is_some_and(|p| !p.is_null())
        && let Some(r) = restart.filter(|r| r.as_str() != Some("Never"))
    {
        c.invalid(
            format!("{path}.template.spec.restartPolicy"),
            r,
            "only \"Never\" is supported when podFailurePolicy is specified",
        );
    }
    match spec.get("completionMode").and_then(Value::as_str) {
        None | Some("NonIndexed") => {}
        Some("Indexed") => {
            if spec.get("completions").is_none_or(Value::is_null) {
                c.required(
                    format!("{path}.completions"),
                    "when completion mode is Indexed",
                );
            }
        }
        Some(other) => c.0.push(Cause {
            kind: "FieldValueNotSupported",
            field: format!("{path}.completionMode"),
            message: format!(
                "Unsupported value: \"{other}\": supported values: \"NonIndexed\", \"Indexed\""
            ),
        }),
    }
    match spec
        .pointer("/template/spec/restartPolicy")
        .and_then(Value::as_str)
    {
        Some("Never" | "OnFailure") => {}
        Some(other) => c.0.push(Cause {
            kind: "FieldValueNotSupported",
            field: format!("{path}.template.spec.restartPolicy"),
            message: format!(
                "Unsupported value: \"{other}\": supported values: \"OnFailure\", \"Never\""
            ),
        }),
        None => c.required(
            "spec.template.spec.restartPolicy",
            "valid values: \"OnFailure\", \"Never\"",
        ),
    }
    if let Some(sel) = spec.get("selector") {
        let labels = spec.pointer("/template/metadata/labels");
        if !LabelSelector::from_object(sel).matches(labels) {
            c.invalid(
                format!("{path}.template.metadata.labels"),
                labels.unwrap_or(&Value::Null),
                "`selector` does not match template `labels`",
            );
        }
    } else if path == "spec" {
        c.required("spec.selector", "");
    }
    pod_spec(
        spec.pointer("/template/spec"),
        &format!("{path}.template.spec"),
        c,
    );
}

/// Fields an update may not change: 422 with `field is immutable`.
pub fn immutable(r: &Resource, old: &Value, new: &Value) -> Result<()> {
    if let Some(custom) = r.custom {
        // Transition rules (`oldSelf`) of the definition's schema.
        let causes = crate::custom::cel::check(&custom.schema, new, Some(old));
        return Causes(causes).into_result(r, new);
    }
    let fields: &[&str] = match r.builtin_kind() {
        "CustomResourceDefinition" => &["/spec/group", "/spec/names/plural", "/spec/scope"],
        "Job" => &["/spec/selector", "/spec/template", "/spec/completionMode"],
        _ => return Ok(()),
    };
    let mut c = Causes(Vec::new());
    for f in fields {
        if old.pointer(f) != new.pointer(f) {
            let path = f.trim_start_matches('/').replace('/', ".");
            c.invalid(
                path,
                new.pointer(f).unwrap_or(&Value::Null),
                "field is immutable",
            );
        }
    }
    c.into_result(r, new)
}

fn pod_spec(spec: Option<&Value>, path: &str, c: &mut Causes) {
    let containers = spec
        .and_then(|s| s.get("containers"))
        .and_then(Value::as_array);
    let Some(containers) = containers.filter(|v| !v.is_empty()) else {
        c.required(format!("{path}.containers"), "");
        return;
    };
    let mut seen = Vec::new();
    for (i, ct) in containers.iter().enumerate() {
        let name = ct.get("name").and_then(Value::as_str).unwrap_or_default();
        if name.is_empty() {
            c.required(format!("{path}.containers[{i}].name"), "");
        } else if !is_dns_label(name) {
            c.invalid(format!("{path}.containers[{i}].name"), &ct["name"], "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-'");
        } else if seen.contains(&name) {
            c.0.push(Cause {
                kind: "FieldValueDuplicate",
                field: format!("{path}.containers[{i}].name"),
                message: format!("Duplicate value: \"{name}\""),
            });
        }
        seen.push(name);
        if ct
            .get("image")
            .and_then(Value::as_str)
            .is_none_or(|s| s.trim().is_empty())
        {
            c.required(format!("{path}.containers[{i}].image"), "");
        }
    }
    if let Some(p) = spec
        .and_then(|s| s.get("restartPolicy"))
        .and_then(Value::as_str)
        && !["Always", "OnFailure", "Never"].contains(&p)
    {
        c.0.push(Cause {
            kind: "FieldValueNotSupported",
            field: format!("{path}.restartPolicy"),
            message: format!(
                "Unsupported value: \"{p}\": supported values: \"Always\", \"OnFailure\", \"Never\""
            ),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::by_kind;
    use serde_json::json;

    #[test]
    fn unknown_fields_per_mode() {
        let d = by_kind("apps", "Deployment").unwrap();
        let obj = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "a"},
            "spec": {"replica": 2, "selector": {"matchLabels": {"a": "b"}},
            "template": {"metadata": {"labels": {"a": "b"}}, "spec": {"containers": [{"name": "c", "image": "i", "bogus": 1}]}}}});
        let err = decode(d, &obj, FieldValidation::Strict).unwrap_err();
        assert_eq!(err.code, 400);
        assert!(
            err.message.contains("unknown field \"spec.replica\""),
            "{}",
            err.message
        );
        assert!(
            err.message
                .contains("spec.template.spec.containers[0].bogus"),
            "{}",
            err.message
        );
        assert_eq!(decode(d, &obj, FieldValidation::Warn).unwrap().len(), 2);
        assert!(decode(d, &obj, FieldValidation::Ignore).unwrap().is_empty());
    }

    #[test]
    fn type_errors_are_bad_requests() {
        let d = by_kind("apps", "Deployment").unwrap();
        let obj = json!({"metadata": {"name": "a"}, "spec": {"replicas": "two"}});
        assert_eq!(
            decode(d, &obj, FieldValidation::Ignore).unwrap_err().code,
            400
        );
    }

    #[test]
    fn semantic_checks() {
        let d = by_kind("apps", "Deployment").unwrap();
        let bad = json!({"metadata": {"name": "Bad_Name"}, "spec": {"selector": {"matchLabels": {"a": "b"}},
            "template": {"metadata": {"labels": {"a": "c"}}, "spec": {"containers": [{"name": "c"}]}}}});
        let err = validate(d, &bad).unwrap_err();
        assert_eq!(err.code, 422);
        let causes = err.details.unwrap()["causes"].as_array().unwrap().len();
        assert_eq!(causes, 3, "{}", err.message);
        let pod = by_kind("", "Pod").unwrap();
        assert!(validate(pod, &json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "i"}]}})).is_ok());
    }
}

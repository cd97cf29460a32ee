//! LimitRanger: a new pod's containers get the CPU and memory requests and
//! limits their namespace's LimitRanges default (`defaultRequest`,
//! `default`), noted in the `kubernetes.io/limit-ranger` annotation, and a
//! container or pod outside a range's `min`/`max` is refused (403) in
//! kube-apiserver's words.

use serde_json::{Value, json};

use super::{Admission, Attempt};
use crate::resources;
use shoal_machinery::error::{ApiError, Result};
use shoal_machinery::meta;
use shoal_store::Store;

/// The plugin, reading LimitRanges from the store.
pub struct LimitRanger(pub Store);

const RESOURCES: [&str; 2] = ["cpu", "memory"];

fn amount(resource: &str, q: &Value) -> Option<u64> {
    let q = q
        .as_str()
        .map(str::to_string)
        .unwrap_or_else(|| q.to_string());
    if resource == "cpu" {
        shoal_quantity::millicores(&q).map(u64::from)
    } else {
        shoal_quantity::bytes(&q)
    }
}

/// Fills a container's missing requests and limits from a `Container`
/// range; what was set, for the annotation.
fn fill(container: &mut Value, range: &Value) -> (Vec<&'static str>, Vec<&'static str>) {
    let (mut requests, mut limits) = (Vec::new(), Vec::new());
    // Admission sees objects before validation: anything may be here.
    let resources_ok = container.get("resources").is_none_or(|r| {
        r.is_object()
            && ["requests", "limits"]
                .iter()
                .all(|f| r.get(f).is_none_or(Value::is_object))
    });
    if !container.is_object() || !resources_ok {
        return (requests, limits);
    }
    for res in RESOURCES {
        let has =
            |c: &Value, field: &str| c.pointer(&format!("/resources/{field}/{res}")).is_some();
        let set = |c: &mut Value, field: &str, v: &Value| {
            if !c.get("resources").is_some_and(Value::is_object) {
                c["resources"] = json!({});
            }
            if !c["resources"].get(field).is_some_and(Value::is_object) {
                c["resources"][field] = json!({});
            }
            c["resources"][field][res] = v.clone();
        };
        if !has(container, "limits")
            && let Some(v) = range.pointer(&format!("/default/{res}"))
        {
            set(container, "limits", v);
            limits.push(res);
        }
        if !has(container, "requests") {
            // A request defaults to the range's default request, else to
            // the container's limit, as Kubernetes defaults it.
            let v = range
                .pointer(&format!("/defaultRequest/{res}"))
                .or_else(|| container.pointer(&format!("/resources/limits/{res}")))
                .cloned();
            if let Some(v) = v {
                set(container, "requests", &v);
                requests.push(res);
            }
        }
    }
    (requests, limits)
}

/// What a range's `min`/`max` refuse of an amount, in Kubernetes' words.
fn check(
    range: &Value,
    scope: &str,
    res: &str,
    request: Option<u64>,
    limit: Option<u64>,
    out: &mut Vec<String>,
) {
    let text = |q: &Value| {
        q.as_str()
            .map(str::to_string)
            .unwrap_or_else(|| q.to_string())
    };
    if let Some(min) = range.pointer(&format!("/min/{res}")) {
        let m = amount(res, min).unwrap_or(0);
        match request {
            None => out.push(format!(
                "minimum {res} usage per {scope} is {}.  No request is specified",
                text(min)
            )),
            Some(r) if r < m => out.push(format!(
                "minimum {res} usage per {scope} is {}, but request is {}",
                text(min),
                format(res, r)
            )),
            _ => {}
        }
    }
    if let Some(max) = range.pointer(&format!("/max/{res}")) {
        let m = amount(res, max).unwrap_or(u64::MAX);
        match limit {
            None => out.push(format!(
                "maximum {res} usage per {scope} is {}.  No limit is specified",
                text(max)
            )),
            Some(l) if l > m => out.push(format!(
                "maximum {res} usage per {scope} is {}, but limit is {}",
                text(max),
                format(res, l)
            )),
            _ => {}
        }
    }
}

fn format(res: &str, n: u64) -> String {
    if res == "cpu" {
        shoal_quantity::format_millicores(n)
    } else {
        shoal_quantity::format_bytes(n)
    }
}

impl Admission for LimitRanger {
    fn admit(&self, a: Attempt<'_>) -> Result<()> {
        if !a.creates_pod() {
            return Ok(());
        }
        let ns = meta::namespace(a.object).to_string();
        let Some(ranges_r) = resources::by_kind("", "LimitRange") else {
            return Ok(());
        };
        let (stored, _) = self.0.list(&ranges_r.prefix(Some(&ns)));
        if stored.is_empty() {
            return Ok(());
        }
        let ranges: Vec<Value> = stored
            .iter()
            .flat_map(|s| {
                s.value
                    .pointer("/spec/limits")
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default()
            })
            .collect();
        let of_type = |t: &'static str| {
            ranges
                .iter()
                .filter(move |r| meta::str_at(r, "/type") == Some(t))
        };
        let mut notes = Vec::new();
        let mut refused = Vec::new();
        let names: Vec<String> = a
            .object
            .pointer("/spec/containers")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .map(|c| meta::str_at(c, "/name").unwrap_or_default().to_string())
            .collect();
        for (i, cname) in names.iter().enumerate() {
            let Some(container) = a.object.pointer_mut(&format!("/spec/containers/{i}")) else {
                continue;
            };
            for range in of_type("Container") {
                let (requests, limits) = fill(container, range);
                if !requests.is_empty() {
                    notes.push(format!(
                        "{} request for container {cname}",
                        requests.join(", ")
                    ));
                }
                if !limits.is_empty() {
                    notes.push(format!("{} limit for container {cname}", limits.join(", ")));
                }
                for res in RESOURCES {
                    let get = |f: &str| {
                        container
                            .pointer(&format!("/resources/{f}/{res}"))
                            .and_then(|q| amount(res, q))
                    };
                    check(
                        range,
                        "Container",
                        res,
                        get("requests"),
                        get("limits"),
                        &mut refused,
                    );
                }
            }
        }
        for range in of_type("Pod") {
            for res in RESOURCES {
                let sum = |f: &str| -> Option<u64> {
                    let containers = a
                        .object
                        .pointer("/spec/containers")
                        .and_then(Value::as_array)?;
                    containers.iter().try_fold(0u64, |acc, c| {
                        c.pointer(&format!("/resources/{f}/{res}"))
                            .and_then(|q| amount(res, q))
                            .map(|n| acc.saturating_add(n))
                    })
                };
                check(
                    range,
                    "Pod",
                    res,
                    sum("requests"),
                    sum("limits"),
                    &mut refused,
                );
            }
        }
        if !refused.is_empty() {
            let name = meta::name(a.object);
            return Err(ApiError::forbidden(
                format!("pods \"{name}\" is forbidden: [{}]", refused.join(", ")),
                Some(("", "pods", name)),
            ));
        }
        if !notes.is_empty() {
            let m = meta::metadata(a.object);
            let annotations = m.entry("annotations").or_insert_with(|| json!({}));
            if let Some(map) = annotations.as_object_mut() {
                map.insert(
                    "kubernetes.io/limit-ranger".into(),
                    json!(format!("LimitRanger plugin set: {}", notes.join("; "))),
                );
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_fill_what_a_container_leaves_out() {
        let range = json!({"type": "Container", "default": {"cpu": "500m", "memory": "256Mi"},
            "defaultRequest": {"cpu": "100m"}, "max": {"memory": "1Gi"}});
        let mut c = json!({"name": "c", "resources": {"limits": {"memory": "512Mi"}}});
        let (requests, limits) = fill(&mut c, &range);
        assert_eq!(
            c["resources"]["limits"],
            json!({"memory": "512Mi", "cpu": "500m"})
        );
        assert_eq!(
            c["resources"]["requests"],
            json!({"cpu": "100m", "memory": "512Mi"})
        );
        assert_eq!((requests, limits), (vec!["cpu", "memory"], vec!["cpu"]));
        let mut out = Vec::new();
        check(
            &range,
            "Container",
            "memory",
            Some(1),
            Some(2 << 30),
            &mut out,
        );
        assert_eq!(
            out,
            ["maximum memory usage per Container is 1Gi, but limit is 2Gi"]
        );
    }
}

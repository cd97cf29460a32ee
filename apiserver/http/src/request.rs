//! What a request carries: its query parameters, its body (JSON, YAML or
//! protobuf, read to at most 3 MiB) and the delete options.

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Request, header};
use http_body_util::BodyExt;
use serde_json::{Value, json};

use shoal_machinery::error::{ApiError, Result};
use shoal_registry::objects::{DeleteOpts, Propagation, WriteOpts};
use shoal_registry::validation::FieldValidation;

/// Largest request body accepted.
pub(super) const MAX_BODY: usize = 3 * 1024 * 1024;

pub(super) const PROTOBUF: &str = "application/vnd.kubernetes.protobuf";

/// Query parameters.
#[derive(Clone)]
pub(super) struct Query(Vec<(String, String)>);

impl Query {
    pub(super) fn parse(q: Option<&str>) -> Self {
        Self(
            form_urlencoded::parse(q.unwrap_or_default().as_bytes())
                .into_owned()
                .collect(),
        )
    }
    pub(super) fn get(&self, k: &str) -> Option<&str> {
        self.0.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str())
    }
    pub(super) fn flag(&self, k: &str) -> bool {
        matches!(self.get(k), Some("true" | "1"))
    }
    /// Write options; the field manager is `fieldManager`, or else the
    /// client's User-Agent up to its first `/`, as Kubernetes derives it.
    pub(super) fn write_opts(&self, headers: &HeaderMap) -> Result<WriteOpts> {
        let agent = headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .and_then(|ua| ua.split('/').next())
            .filter(|m| !m.is_empty());
        let manager = self.get("fieldManager").filter(|m| !m.is_empty()).or(agent);
        Ok(WriteOpts {
            dry_run: self.get("dryRun") == Some("All"),
            field_validation: FieldValidation::parse(self.get("fieldValidation"))?,
            manager: manager.map(|m| m.chars().take(128).collect()),
            user: None,
        })
    }
}

/// The write options of `req`, with the user it was authenticated as.
pub(crate) fn write_opts(q: &Query, req: &Request<axum::body::Body>) -> Result<WriteOpts> {
    let mut opts = q.write_opts(req.headers())?;
    opts.user = req
        .extensions()
        .get::<crate::authn::Authenticated>()
        .and_then(|a| a.0.clone());
    Ok(opts)
}

pub(super) async fn read_body(req: Request<axum::body::Body>) -> Result<(HeaderMap, Bytes)> {
    let (mut parts, body) = req.into_parts();
    let ct = content_type(&parts.headers);
    let protobuf = ct.starts_with(PROTOBUF);
    let yaml = ct.starts_with("application/yaml");
    let limited = http_body_util::Limited::new(body, MAX_BODY);
    let bytes = limited.collect().await.map_err(|e| {
        if e.downcast_ref::<http_body_util::LengthLimitError>()
            .is_some()
        {
            ApiError::too_large()
        } else {
            ApiError::bad_request(format!("reading the body: {e}"))
        }
    })?;
    let mut bytes = bytes.to_bytes();
    if protobuf || yaml {
        // The rest of the apiserver sees the object as JSON.
        let object = if protobuf {
            shoal_wire::protobuf::decode(&bytes).map_err(|e| {
                ApiError::bad_request(format!("the protobuf body could not be decoded: {e}"))
            })?
        } else {
            yaml_to_json(&bytes)?
        };
        bytes = serde_json::to_vec(&object)
            .map_err(ApiError::internal)?
            .into();
        parts.headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
    }
    Ok((parts.headers, bytes))
}

/// A YAML document as JSON (the form Kubernetes converts YAML bodies to).
///
/// The parser keeps to a budget (nesting, aliases, events), so a hostile
/// document is an error, not a hang or an overflow.
pub fn yaml_to_json(bytes: &[u8]) -> Result<Value> {
    let mut options = serde_saphyr::Options::default();
    options.with_snippet = false;
    serde_saphyr::from_slice_with_options(bytes, options)
        .map_err(|e| ApiError::bad_request(format!("the YAML body could not be decoded: {e}")))
}

pub(super) fn content_type(headers: &HeaderMap) -> &str {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
}

pub(super) fn parse_json(bytes: &[u8]) -> Result<Value> {
    serde_json::from_slice(bytes)
        .map_err(|e| ApiError::bad_request(format!("the body is not valid JSON: {e}")))
}

pub(super) fn delete_opts(q: &Query, body: &[u8]) -> Result<DeleteOpts> {
    let b: Value = if body.is_empty() {
        json!({})
    } else {
        parse_json(body)?
    };
    let grace = q
        .get("gracePeriodSeconds")
        .and_then(|g| g.parse().ok())
        .or_else(|| b.get("gracePeriodSeconds").and_then(Value::as_i64));
    let policy = q
        .get("propagationPolicy")
        .or_else(|| b.get("propagationPolicy").and_then(Value::as_str));
    let orphan = q
        .get("orphanDependents")
        .map(|o| o == "true")
        .or_else(|| b.get("orphanDependents").and_then(Value::as_bool));
    let propagation = match (policy, orphan) {
        (Some(_), Some(_)) => {
            return Err(ApiError::bad_request(
                "orphanDependents and propagationPolicy may not both be set",
            ));
        }
        (Some(p), None) => Propagation::parse(p).ok_or_else(|| {
            ApiError::bad_request(format!(
                "propagationPolicy: Unsupported value: \"{p}\": supported values: \"Foreground\", \"Background\", \"Orphan\""
            ))
        })?,
        (None, Some(true)) => Propagation::Orphan,
        (None, _) => Propagation::Background,
    };
    Ok(DeleteOpts {
        propagation,
        grace_period: grace,
        uid: b
            .pointer("/preconditions/uid")
            .and_then(Value::as_str)
            .map(String::from),
        resource_version: b
            .pointer("/preconditions/resourceVersion")
            .and_then(Value::as_str)
            .and_then(|s| s.parse().ok()),
        dry_run: q.get("dryRun") == Some("All")
            || b.get("dryRun")
                .and_then(Value::as_array)
                .is_some_and(|a| a.contains(&json!("All"))),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn yaml_reads_as_the_json_kubernetes_makes_of_it() {
        let doc = b"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: web # a comment\n  labels: {app: web}\ndata:\n  port: \"8080\"\n  text: |\n    two\n    lines\nreplicas: 3\nratio: 0.5\nflag: true\nnothing: null\nlist:\n- a\n- 1\n";
        assert_eq!(
            yaml_to_json(doc).unwrap(),
            json!({"apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": "web", "labels": {"app": "web"}},
                "data": {"port": "8080", "text": "two\nlines\n"},
                "replicas": 3, "ratio": 0.5, "flag": true, "nothing": null, "list": ["a", 1]})
        );
        // Anchors and aliases expand as YAML defines them.
        assert_eq!(
            yaml_to_json(b"a: &x {k: v}\nb: *x\n").unwrap(),
            json!({"a": {"k": "v"}, "b": {"k": "v"}})
        );
    }

    #[test]
    fn bad_and_hostile_yaml_is_a_400() {
        for doc in [
            b"a: [1, 2\n".to_vec(),
            b"a: 1\na: 2\n".to_vec(),
            // Nesting far past any manifest's.
            format!("{}1{}", "[".repeat(100_000), "]".repeat(100_000)).into_bytes(),
            // Aliases that would expand to billions of nodes.
            (0..12)
                .map(|i| {
                    let prev = if i == 0 {
                        "[x]".to_string()
                    } else {
                        format!("[{}]", vec![format!("*a{}", i - 1); 10].join(","))
                    };
                    format!("a{i}: &a{i} {prev}\n")
                })
                .collect::<String>()
                .into_bytes(),
        ] {
            let e = yaml_to_json(&doc).unwrap_err();
            assert_eq!(e.code, 400, "{}", e.message);
            assert!(
                e.message.starts_with("the YAML body could not be decoded"),
                "{}",
                e.message
            );
        }
    }
}

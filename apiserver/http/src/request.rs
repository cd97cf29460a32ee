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
        })
    }
}

pub(super) async fn read_body(req: Request<hyper::body::Incoming>) -> Result<(HeaderMap, Bytes)> {
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
pub fn yaml_to_json(bytes: &[u8]) -> Result<Value> {
    serde_yaml::from_slice(bytes)
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

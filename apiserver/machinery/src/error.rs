//! API errors, rendered at the HTTP edge as `kind: Status` objects.

use serde_json::{Value, json};

/// A failed API call, with the Kubernetes reason and HTTP code.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct ApiError {
    /// HTTP status code.
    pub code: u16,
    /// Kubernetes reason (`NotFound`, `Conflict`, …).
    pub reason: &'static str,
    /// Human-readable message.
    pub message: String,
    /// `details`, if any.
    pub details: Option<Value>,
}

/// Result with an API error.
pub type Result<T, E = ApiError> = std::result::Result<T, E>;

/// A field-level cause of an `Invalid` error.
#[derive(Debug, Clone)]
pub struct Cause {
    /// `FieldValueRequired`, `FieldValueInvalid`, …
    pub kind: &'static str,
    /// The field path, e.g. `spec.containers[0].name`.
    pub field: String,
    /// What is wrong.
    pub message: String,
}

/// `pods` or `deployments.apps`, as Kubernetes names a resource in messages.
fn qualified(group: &str, resource: &str) -> String {
    if group.is_empty() {
        resource.to_string()
    } else {
        format!("{resource}.{group}")
    }
}

impl ApiError {
    pub(crate) fn new(code: u16, reason: &'static str, message: impl Into<String>) -> Self {
        Self {
            code,
            reason,
            message: message.into(),
            details: None,
        }
    }

    /// 400 BadRequest.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, "BadRequest", message)
    }

    /// 404 NotFound for `resource` (plural, with group) `name`.
    pub fn not_found(group: &str, plural: &str, name: &str) -> Self {
        let qualified = qualified(group, plural);
        let mut e = Self::new(404, "NotFound", format!("{qualified} \"{name}\" not found"));
        e.details = Some(json!({"name": name, "group": group, "kind": plural}));
        e
    }

    /// 404 for a path the server does not serve.
    pub fn no_route() -> Self {
        Self::new(
            404,
            "NotFound",
            "the server could not find the requested resource",
        )
    }

    /// 409 AlreadyExists.
    pub fn already_exists(group: &str, plural: &str, name: &str) -> Self {
        let qualified = qualified(group, plural);
        let mut e = Self::new(
            409,
            "AlreadyExists",
            format!("{qualified} \"{name}\" already exists"),
        );
        e.details = Some(json!({"name": name, "group": group, "kind": plural}));
        e
    }

    /// 409 Conflict on a stale resourceVersion.
    pub fn conflict(group: &str, plural: &str, name: &str) -> Self {
        let qualified = qualified(group, plural);
        let mut e = Self::new(
            409,
            "Conflict",
            format!(
                "Operation cannot be fulfilled on {qualified} \"{name}\": the object has been modified; please apply your changes to the latest version and try again"
            ),
        );
        e.details = Some(json!({"name": name, "group": group, "kind": plural}));
        e
    }

    /// 409 Conflict: the body names an object with another uid.
    pub fn uid_precondition(wanted: &str, actual: &str) -> Self {
        Self::new(
            409,
            "Conflict",
            format!(
                "Precondition failed: UID in precondition: {wanted}, UID in object meta: {actual}"
            ),
        )
    }

    /// 422 Invalid with field causes.
    pub fn invalid(group: &str, kind: &str, name: &str, causes: Vec<Cause>) -> Self {
        let qualified = qualified(group, kind);
        let list: Vec<String> = causes
            .iter()
            .map(|c| format!("{}: {}", c.field, c.message))
            .collect();
        let mut e = Self::new(
            422,
            "Invalid",
            format!("{qualified} \"{name}\" is invalid: {}", list.join(", ")),
        );
        e.details = Some(json!({
            "name": name, "group": group, "kind": kind,
            "causes": causes.iter().map(|c| json!({"reason": c.kind, "message": c.message, "field": c.field})).collect::<Vec<_>>(),
        }));
        e
    }

    /// 405 MethodNotAllowed.
    pub fn method_not_allowed() -> Self {
        Self::new(
            405,
            "MethodNotAllowed",
            "the server does not allow this method on the requested resource",
        )
    }

    /// 504 Timeout for a resourceVersion newer than the store's.
    pub fn too_large_resource_version(requested: u64, current: u64) -> Self {
        Self::new(
            504,
            "Timeout",
            format!("Too large resource version: {requested}, current: {current}"),
        )
    }

    /// 410 Expired for a resourceVersion older than the kept history.
    pub fn expired(message: impl Into<String>) -> Self {
        Self::new(410, "Expired", message)
    }

    /// 403 Forbidden, with the refused resource in `details` as
    /// Kubernetes gives it (`None` for a non-resource path).
    pub fn forbidden(message: impl Into<String>, resource: Option<(&str, &str, &str)>) -> Self {
        let mut e = Self::new(403, "Forbidden", message);
        if let Some((group, kind, name)) = resource {
            let mut d = serde_json::Map::new();
            if !name.is_empty() {
                d.insert("name".into(), Value::from(name));
            }
            if !group.is_empty() {
                d.insert("group".into(), Value::from(group));
            }
            d.insert("kind".into(), Value::from(kind));
            e.details = Some(Value::Object(d));
        }
        e
    }

    /// 401 Unauthorized.
    pub fn unauthorized() -> Self {
        Self::new(401, "Unauthorized", "Unauthorized")
    }

    /// 429 TooManyRequests: the server's budget of requests in flight is
    /// spent; the client retries after a second.
    pub fn too_many_requests() -> Self {
        let mut e = Self::new(
            429,
            "TooManyRequests",
            "Too many requests, please try again later.",
        );
        e.details = Some(json!({"retryAfterSeconds": 1}));
        e
    }

    /// 413 RequestEntityTooLarge.
    pub fn too_large() -> Self {
        Self::new(
            413,
            "RequestEntityTooLarge",
            "the request body is too large",
        )
    }

    /// 415 UnsupportedMediaType, naming the media types that are accepted.
    pub fn unsupported_media_type(ct: &str, accepted: &[&str]) -> Self {
        Self::new(
            415,
            "UnsupportedMediaType",
            format!(
                "the body of the request was in an unknown format - accepted media types include: {} (got {ct:?})",
                accepted.join(", ")
            ),
        )
    }

    /// 500 InternalError; the message is generic, details go to the log.
    pub fn internal(context: impl std::fmt::Display) -> Self {
        tracing::error!("internal error: {context}");
        Self::new(
            500,
            "InternalError",
            "an error on the server has prevented the request from succeeding",
        )
    }

    /// An error with `code` and the reason Kubernetes gives that code (a
    /// code it gives none of is 400 BadRequest), as a `Status` from
    /// outside the server (an admission webhook's) is answered.
    pub fn with_code(code: u16, message: impl Into<String>) -> Self {
        let (code, reason) = match code {
            401 => (401, "Unauthorized"),
            403 => (403, "Forbidden"),
            404 => (404, "NotFound"),
            409 => (409, "Conflict"),
            410 => (410, "Gone"),
            422 => (422, "Invalid"),
            429 => (429, "TooManyRequests"),
            500 => (500, "InternalError"),
            503 => (503, "ServiceUnavailable"),
            504 => (504, "Timeout"),
            _ => (400, "BadRequest"),
        };
        Self::new(code, reason, message)
    }

    /// 500 InternalError whose message the client sees (the cause is
    /// outside the server, as a failed admission webhook).
    pub fn internal_shown(message: impl std::fmt::Display) -> Self {
        Self::new(
            500,
            "InternalError",
            format!("Internal error occurred: {message}"),
        )
    }

    /// 503 ServiceUnavailable.
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(503, "ServiceUnavailable", message)
    }

    /// The `Status` object.
    pub fn to_status(&self) -> Value {
        let mut s = json!({
            "kind": "Status", "apiVersion": "v1", "metadata": {},
            "status": "Failure", "message": self.message, "reason": self.reason, "code": self.code,
        });
        if let Some(d) = &self.details {
            s["details"] = d.clone();
        }
        s
    }
}

/// The `Status` as kube-apiserver writes it: its fields in the order of
/// Go's `metav1.Status` (kind, apiVersion, metadata, status, message,
/// reason, details, code), `details`' in `StatusDetails`' (name, group,
/// kind, uid, causes, retryAfterSeconds) and each cause's in
/// `StatusCause`'s (reason, message, field), empty ones left out as Go's
/// `omitempty` does, and a trailing newline.
#[derive(serde::Serialize)]
struct StatusBody<'a> {
    kind: &'static str,
    #[serde(rename = "apiVersion")]
    api_version: &'static str,
    metadata: Empty,
    status: &'static str,
    #[serde(skip_serializing_if = "str::is_empty")]
    message: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    reason: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    details: Option<Details>,
    #[serde(skip_serializing_if = "is_zero")]
    code: u16,
}

fn is_zero(code: &u16) -> bool {
    *code == 0
}

impl StatusBody<'_> {
    fn to_json(&self) -> Vec<u8> {
        let mut out = serde_json::to_vec(self).unwrap_or_default();
        out.push(b'\n');
        out
    }
}

/// A `Success` Status (a binding made, a collection deleted), written as
/// kube-apiserver writes it; `code` 0 is left out.
pub fn success_status_json(code: u16) -> Vec<u8> {
    StatusBody {
        kind: "Status",
        api_version: "v1",
        metadata: Empty {},
        status: "Success",
        message: "",
        reason: "",
        details: None,
        code,
    }
    .to_json()
}

#[derive(serde::Serialize)]
struct Empty {}

#[derive(serde::Serialize)]
struct Details {
    #[serde(skip_serializing_if = "String::is_empty")]
    name: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    group: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    kind: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    uid: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    causes: Vec<StatusCause>,
    #[serde(rename = "retryAfterSeconds", skip_serializing_if = "Option::is_none")]
    retry_after_seconds: Option<i64>,
}

#[derive(serde::Serialize)]
struct StatusCause {
    #[serde(skip_serializing_if = "String::is_empty")]
    reason: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    message: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    field: String,
}

/// The string at `key` of `v`, empty if none.
fn text(v: &Value, key: &str) -> String {
    v.get(key)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

impl ApiError {
    /// The `Status` object's JSON, byte for byte as kube-apiserver's.
    pub fn status_json(&self) -> Vec<u8> {
        let details = self.details.as_ref().map(|d| Details {
            name: text(d, "name"),
            group: text(d, "group"),
            kind: text(d, "kind"),
            uid: text(d, "uid"),
            causes: d
                .get("causes")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .map(|c| StatusCause {
                    reason: text(c, "reason"),
                    message: text(c, "message"),
                    field: text(c, "field"),
                })
                .collect(),
            retry_after_seconds: d.get("retryAfterSeconds").and_then(Value::as_i64),
        });
        StatusBody {
            kind: "Status",
            api_version: "v1",
            metadata: Empty {},
            status: "Failure",
            message: &self.message,
            reason: self.reason,
            details,
            code: self.code,
        }
        .to_json()
    }
}

/// The causes of a 422 `Invalid`, collected field by field.
#[derive(Debug, Default)]
pub struct Causes(pub Vec<Cause>);

impl Causes {
    /// A required field is missing.
    pub fn required(&mut self, field: impl Into<String>, what: &str) {
        self.0.push(Cause {
            kind: "FieldValueRequired",
            field: field.into(),
            message: if what.is_empty() {
                "Required value".into()
            } else {
                format!("Required value: {what}")
            },
        });
    }

    /// A value appears twice where it must be unique.
    pub fn duplicate(&mut self, field: impl Into<String>, value: &Value) {
        self.0.push(Cause {
            kind: "FieldValueDuplicate",
            field: field.into(),
            message: format!("Duplicate value: {value}"),
        });
    }

    /// A reference to something that does not exist.
    pub fn not_found(&mut self, field: impl Into<String>, value: &Value) {
        self.0.push(Cause {
            kind: "FieldValueNotFound",
            field: field.into(),
            message: format!("Not found: {value}"),
        });
    }

    /// A field that may not be set (here, or together with another).
    pub fn forbidden(&mut self, field: impl Into<String>, why: &str) {
        self.0.push(Cause {
            kind: "FieldValueForbidden",
            field: field.into(),
            message: format!("Forbidden: {why}"),
        });
    }

    /// A value outside the supported set.
    pub fn not_supported(&mut self, field: impl Into<String>, value: &Value, supported: &[&str]) {
        let list: Vec<String> = supported.iter().map(|s| format!("\"{s}\"")).collect();
        self.0.push(Cause {
            kind: "FieldValueNotSupported",
            field: field.into(),
            message: format!(
                "Unsupported value: {value}: supported values: {}",
                list.join(", ")
            ),
        });
    }

    /// A field's value is not allowed.
    pub fn invalid(&mut self, field: impl Into<String>, value: &Value, why: &str) {
        self.0.push(Cause {
            kind: "FieldValueInvalid",
            field: field.into(),
            message: format!("Invalid value: {value}: {why}"),
        });
    }

    /// `Ok` without causes, otherwise 422 `Invalid` for the object `name`
    /// of `kind` in `group`.
    pub fn into_result(self, group: &str, kind: &str, name: &str) -> Result<()> {
        if self.0.is_empty() {
            return Ok(());
        }
        Err(ApiError::invalid(group, kind, name, self.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_bodies_read_as_kube_apiservers() {
        let nf = ApiError::not_found("", "pods", "web");
        assert_eq!(
            String::from_utf8(nf.status_json()).unwrap(),
            "{\"kind\":\"Status\",\"apiVersion\":\"v1\",\"metadata\":{},\"status\":\"Failure\",\"message\":\"pods \\\"web\\\" not found\",\"reason\":\"NotFound\",\"details\":{\"name\":\"web\",\"kind\":\"pods\"},\"code\":404}\n"
        );
        let invalid = ApiError::invalid(
            "apps",
            "Deployment",
            "d",
            vec![Cause {
                kind: "FieldValueRequired",
                field: "spec.selector".into(),
                message: "Required value".into(),
            }],
        );
        let text = String::from_utf8(invalid.status_json()).unwrap();
        assert!(
            text.contains("\"details\":{\"name\":\"d\",\"group\":\"apps\",\"kind\":\"Deployment\",\"causes\":[{\"reason\":\"FieldValueRequired\",\"message\":\"Required value\",\"field\":\"spec.selector\"}]},\"code\":422}\n"),
            "{text}"
        );
        assert_eq!(
            success_status_json(201),
            b"{\"kind\":\"Status\",\"apiVersion\":\"v1\",\"metadata\":{},\"status\":\"Success\",\"code\":201}\n"
        );
        // The same content as the `Status` value.
        let parsed: Value = serde_json::from_slice(&invalid.status_json()).unwrap();
        assert_eq!(parsed, invalid.to_status());
    }
}

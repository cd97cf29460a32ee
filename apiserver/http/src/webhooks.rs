//! Admission webhooks, as kube-apiserver calls them: every create and
//! update is matched against the stored MutatingWebhookConfigurations and
//! ValidatingWebhookConfigurations (rules, scope, namespace and object
//! selectors); each matching webhook gets an `admission.k8s.io/v1`
//! AdmissionReview over TLS (its `caBundle`, at a URL or a Service's
//! endpoint) within its timeout. Mutating webhooks run one after another
//! and may answer a JSON patch; validating ones run together after the
//! object is validated. A denial is the webhook's `Status`; a webhook that
//! cannot be called fails the write or is skipped, as its `failurePolicy`
//! says.
//!
//! May import: `aggregator` (a Service's endpoint address).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};

use shoal_machinery::error::{ApiError, Result};
use shoal_machinery::meta;
use shoal_machinery::selectors::LabelSelector;
use shoal_machinery::user::User;
use shoal_registry::admission::{Answer, Operation, Review, Webhooks};
use shoal_registry::resources::{self, Resource};
use shoal_store::Store;

/// The largest answer read from a webhook.
const MAX_RESPONSE: usize = 3 << 20;

/// The webhooks of the stored configurations.
pub struct WebhookAdmission(pub Store);

/// A phase of admission.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Mutating,
    Validating,
}

impl Phase {
    fn kind(self) -> &'static str {
        match self {
            Phase::Mutating => "MutatingWebhookConfiguration",
            Phase::Validating => "ValidatingWebhookConfiguration",
        }
    }
}

/// Where a webhook is called.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Target {
    /// An `https` URL.
    Url(String),
    /// A Service's port, at a path.
    Service {
        namespace: String,
        name: String,
        port: i64,
        path: String,
    },
}

/// One webhook of a configuration.
#[derive(Debug, Clone)]
struct Hook {
    name: String,
    rules: Vec<Value>,
    fail_open: bool,
    timeout: Duration,
    namespace_selector: LabelSelector,
    object_selector: LabelSelector,
    target: Target,
    ca: Option<String>,
}

impl Hook {
    fn parse(h: &Value) -> Option<Self> {
        let config = h.get("clientConfig")?;
        let target = match (
            config.get("url").and_then(Value::as_str),
            config.get("service"),
        ) {
            (Some(url), _) => Target::Url(url.to_string()),
            (None, Some(s)) if s.is_object() => Target::Service {
                namespace: meta::str_at(s, "/namespace")?.to_string(),
                name: meta::str_at(s, "/name")?.to_string(),
                port: s.get("port").and_then(Value::as_i64).unwrap_or(443),
                path: meta::str_at(s, "/path").unwrap_or("/").to_string(),
            },
            _ => return None,
        };
        let ca = meta::str_at(config, "/caBundle")
            .filter(|b| !b.is_empty())
            .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
            .and_then(|b| String::from_utf8(b).ok());
        let selector = |k: &str| h.get(k).map(LabelSelector::from_object).unwrap_or_default();
        Some(Self {
            name: meta::str_at(h, "/name")?.to_string(),
            rules: h
                .get("rules")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default(),
            fail_open: meta::str_at(h, "/failurePolicy") == Some("Ignore"),
            timeout: Duration::from_secs(
                h.get("timeoutSeconds")
                    .and_then(Value::as_u64)
                    .unwrap_or(10)
                    .clamp(1, 30),
            ),
            namespace_selector: selector("namespaceSelector"),
            object_selector: selector("objectSelector"),
            target,
            ca,
        })
    }
}

/// Whether a rule's list holds `value` or `*`.
fn listed(rule: &Value, key: &str, value: &str) -> bool {
    meta::strings(rule, key)
        .iter()
        .any(|v| v == "*" || v == value)
}

/// Whether one of `rules` takes a write of `resource`/`subresource` by
/// `operation`, with Kubernetes' wildcards (`*`, `*/*`, `pods/*`, `*/status`)
/// and scopes.
fn rules_match(rules: &[Value], operation: Operation, r: &Resource, sub: Option<&str>) -> bool {
    let op = match operation {
        Operation::Create => "CREATE",
        Operation::Update => "UPDATE",
    };
    rules.iter().any(|rule| {
        let scope_ok = match meta::str_at(rule, "/scope").unwrap_or("*") {
            "Cluster" => !r.namespaced,
            "Namespaced" => r.namespaced,
            _ => true,
        };
        let resource_ok = meta::strings(rule, "resources").iter().any(|pattern| {
            let (res, sub_pattern) = match pattern.split_once('/') {
                Some((a, b)) => (a, Some(b)),
                None => (pattern.as_str(), None),
            };
            (res == "*" || res == r.plural)
                && match (sub_pattern, sub) {
                    (None, None) => true,
                    (Some("*"), _) => true,
                    (Some(p), Some(s)) => p == s,
                    _ => false,
                }
        });
        scope_ok
            && resource_ok
            && listed(rule, "operations", op)
            && listed(rule, "apiGroups", r.group)
            && listed(rule, "apiVersions", r.version)
    })
}

/// The AdmissionReview sent for a write.
fn review_body(uid: &str, review: &Review<'_>, object: &Value, user: &User) -> Value {
    let r = review.resource;
    let kind = json!({"group": r.group, "version": r.version, "kind": r.kind});
    let resource = json!({"group": r.group, "version": r.version, "resource": r.plural});
    let (operation, options) = match review.operation {
        Operation::Create => ("CREATE", "CreateOptions"),
        Operation::Update => ("UPDATE", "UpdateOptions"),
    };
    let typed = |o: &Value| {
        let mut o = r.served_as(o).into_owned();
        if let Some(m) = o.as_object_mut() {
            let api_version = if r.group.is_empty() {
                r.version.to_string()
            } else {
                format!("{}/{}", r.group, r.version)
            };
            m.entry("apiVersion").or_insert(json!(api_version));
            m.entry("kind").or_insert(json!(r.kind));
        }
        o
    };
    let mut request = json!({
        "uid": uid, "kind": kind, "resource": resource,
        "requestKind": kind, "requestResource": resource,
        "name": meta::name(object), "operation": operation,
        "userInfo": {"username": user.name, "groups": user.groups},
        "object": typed(object),
        "oldObject": review.old.map(typed).unwrap_or(Value::Null),
        "dryRun": review.dry_run,
        "options": {"apiVersion": "meta.k8s.io/v1", "kind": options},
    });
    if r.namespaced {
        request["namespace"] = json!(meta::namespace(object));
    }
    if let Some(sub) = review.subresource {
        request["subResource"] = json!(sub);
        request["requestSubResource"] = json!(sub);
    }
    json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": request})
}

/// What a webhook's answer means: `Ok(Some(patch))` allowed with a JSON
/// patch, `Ok(None)` allowed, `Err(Ok(e))` denied with `e`, `Err(Err(why))`
/// an answer that is not a valid review (a failure to call).
fn verdict(
    hook: &str,
    uid: &str,
    answer: &Value,
    phase: Phase,
) -> std::result::Result<Option<Value>, std::result::Result<ApiError, String>> {
    let response = answer
        .get("response")
        .ok_or_else(|| Err("the answer holds no response".to_string()))?;
    if meta::str_at(response, "/uid") != Some(uid) {
        return Err(Err(format!(
            "expected response.uid={uid:?}, got {:?}",
            meta::str_at(response, "/uid").unwrap_or_default()
        )));
    }
    if response.get("allowed").and_then(Value::as_bool) != Some(true) {
        let status = response.get("status").unwrap_or(&Value::Null);
        let message = meta::str_at(status, "/message").unwrap_or_default();
        let text = if message.is_empty() {
            format!("admission webhook {hook:?} denied the request without explanation")
        } else {
            format!("admission webhook {hook:?} denied the request: {message}")
        };
        let code = status.get("code").and_then(Value::as_u64).unwrap_or(400);
        return Err(Ok(ApiError::with_code(
            u16::try_from(code).unwrap_or(400),
            text,
        )));
    }
    let Some(patch) = meta::str_at(response, "/patch") else {
        return Ok(None);
    };
    if phase == Phase::Validating {
        return Err(Err("a validating webhook may not answer a patch".into()));
    }
    if meta::str_at(response, "/patchType") != Some("JSONPatch") {
        return Err(Err(format!(
            "unsupported patch type {:?}",
            meta::str_at(response, "/patchType").unwrap_or_default()
        )));
    }
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(patch)
        .map_err(|e| Err(format!("the patch is not base64: {e}")))?;
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|e| Err(format!("the patch is not JSON: {e}")))
}

impl WebhookAdmission {
    /// The webhooks of `phase` that take this write, in the order of their
    /// configurations' names.
    fn matching(&self, phase: Phase, review: &Review<'_>, object: &Value) -> Vec<Hook> {
        let r = review.resource;
        // Webhooks never see the objects that configure them.
        if r.group == "admissionregistration.k8s.io" {
            return Vec::new();
        }
        let Some(configs) = resources::by_kind("admissionregistration.k8s.io", phase.kind()) else {
            return Vec::new();
        };
        let (stored, _) = self.0.list(&configs.prefix(None));
        if stored.is_empty() {
            return Vec::new();
        }
        let namespace_labels = if r.group.is_empty() && r.kind == "Namespace" {
            object.pointer("/metadata/labels").cloned()
        } else if r.namespaced {
            resources::by_kind("", "Namespace")
                .and_then(|n| self.0.get(&n.key("", meta::namespace(object))))
                .and_then(|n| n.value.pointer("/metadata/labels").cloned())
        } else {
            None
        };
        let namespaced = r.namespaced || (r.group.is_empty() && r.kind == "Namespace");
        let mut hooks = Vec::new();
        for config in &stored {
            for h in config
                .value
                .get("webhooks")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let Some(hook) = Hook::parse(h) else { continue };
                let labels = |o: &Value| o.pointer("/metadata/labels").cloned();
                let takes = rules_match(&hook.rules, review.operation, r, review.subresource)
                    && (!namespaced || hook.namespace_selector.matches(namespace_labels.as_ref()))
                    && (hook.object_selector.matches(labels(object).as_ref())
                        || review
                            .old
                            .is_some_and(|o| hook.object_selector.matches(labels(o).as_ref())));
                if takes {
                    hooks.push(hook);
                }
            }
        }
        hooks
    }

    /// Calls `hook` about the write; `Ok(patch)` when it allows it.
    async fn call(
        &self,
        hook: &Hook,
        phase: Phase,
        review: &Review<'_>,
        object: &Value,
    ) -> Result<Option<Value>> {
        let uid = uuid::Uuid::new_v4().to_string();
        let control_plane = User {
            name: "system:kube-controller-manager".into(),
            groups: vec![shoal_machinery::user::AUTHENTICATED.into()],
        };
        let body = review_body(&uid, review, object, review.user.unwrap_or(&control_plane));
        let failed = |why: String| {
            if hook.fail_open {
                tracing::warn!(
                    "admission webhook {:?} failed and is ignored: {why}",
                    hook.name
                );
                Ok(None)
            } else {
                Err(ApiError::internal_shown(format!(
                    "failed calling webhook {:?}: {why}",
                    hook.name
                )))
            }
        };
        let answer = match tokio::time::timeout(hook.timeout, self.post(hook, &body)).await {
            Ok(Ok(answer)) => answer,
            Ok(Err(why)) => return failed(why),
            Err(_) => {
                return failed(format!(
                    "the webhook did not answer within {}s",
                    hook.timeout.as_secs()
                ));
            }
        };
        match verdict(&hook.name, &uid, &answer, phase) {
            Ok(patch) => Ok(patch),
            Err(Ok(denied)) => Err(denied),
            Err(Err(why)) => failed(why),
        }
    }

    /// Posts the review to the webhook and reads its JSON answer.
    async fn post(&self, hook: &Hook, body: &Value) -> std::result::Result<Value, String> {
        let (addr, host, path) = self.address(hook).await?;
        let roots = match &hook.ca {
            Some(pem) => shoal_pki::roots(pem).map_err(|e| format!("the caBundle: {e}"))?,
            None => {
                let mut roots = rustls::RootCertStore::empty();
                for c in rustls_native_certs::load_native_certs().certs {
                    let _ = roots.add(c);
                }
                roots
            }
        };
        let tls = shoal_pki::trusting(roots).map_err(|e| e.to_string())?;
        let name = rustls::pki_types::ServerName::try_from(host.clone())
            .map_err(|e| format!("{host:?}: {e}"))?;
        let tcp = tokio::net::TcpStream::connect(addr)
            .await
            .map_err(|e| format!("dial tcp {addr}: {e}"))?;
        let _ = tcp.set_nodelay(true);
        let stream = tokio_rustls::TlsConnector::from(Arc::new(tls))
            .connect(name, tcp)
            .await
            .map_err(|e| format!("tls: {e}"))?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| e.to_string())?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        let req = http::Request::post(format!(
            "{path}{}timeout={}s",
            if path.contains('?') { "&" } else { "?" },
            hook.timeout.as_secs()
        ))
        .header(http::header::HOST, host)
        .header(http::header::CONTENT_TYPE, "application/json")
        .header(http::header::ACCEPT, "application/json")
        .body(Full::new(bytes::Bytes::from(body.to_string())))
        .map_err(|e| e.to_string())?;
        let resp = sender
            .send_request(req)
            .await
            .map_err(|e| format!("Post: {e}"))?;
        let status = resp.status();
        let limited = http_body_util::Limited::new(resp.into_body(), MAX_RESPONSE);
        let bytes = limited
            .collect()
            .await
            .map_err(|e| format!("reading the answer: {e}"))?
            .to_bytes();
        if !status.is_success() {
            return Err(format!("the webhook answered {status}"));
        }
        serde_json::from_slice(&bytes).map_err(|e| format!("the answer is not JSON: {e}"))
    }

    /// The address, TLS name and path of a webhook.
    async fn address(
        &self,
        hook: &Hook,
    ) -> std::result::Result<(SocketAddr, String, String), String> {
        match &hook.target {
            Target::Url(url) => {
                let uri: http::Uri = url.parse().map_err(|e| format!("url {url:?}: {e}"))?;
                let host = uri.host().ok_or("the url has no host")?;
                let host = host
                    .trim_start_matches('[')
                    .trim_end_matches(']')
                    .to_string();
                let port = uri.port_u16().unwrap_or(443);
                let addr = tokio::net::lookup_host((host.as_str(), port))
                    .await
                    .map_err(|e| format!("looking up {host}: {e}"))?
                    .next()
                    .ok_or_else(|| format!("{host} has no address"))?;
                let path = uri.path_and_query().map_or("/", |p| p.as_str()).to_string();
                Ok((addr, host, path))
            }
            Target::Service {
                namespace,
                name,
                port,
                path,
            } => {
                let get = |kind: &str| {
                    resources::by_kind("", kind)
                        .and_then(|r| self.0.get(&r.key(namespace, name)))
                        .map(|s| s.value)
                };
                let spec = json!({"spec": {"service": {"namespace": namespace, "name": name, "port": port}}});
                let backend = crate::aggregator::backend(
                    &spec,
                    get("Service").as_deref(),
                    get("Endpoints").as_deref(),
                )?;
                Ok((backend.addr, backend.host, path.clone()))
            }
        }
    }
}

impl Webhooks for WebhookAdmission {
    fn mutate<'a>(&'a self, review: Review<'a>, object: &'a mut Value) -> Answer<'a> {
        Box::pin(async move {
            for hook in self.matching(Phase::Mutating, &review, object) {
                if let Some(patch) = self.call(&hook, Phase::Mutating, &review, object).await? {
                    let patched = shoal_machinery::patch::json(object, &patch).map_err(|e| {
                        ApiError::internal_shown(format!(
                            "failed calling webhook {:?}: its patch cannot be applied: {}",
                            hook.name, e.message
                        ))
                    })?;
                    *object = patched;
                }
            }
            Ok(())
        })
    }

    fn validate<'a>(&'a self, review: Review<'a>, object: &'a Value) -> Answer<'a> {
        Box::pin(async move {
            let hooks = self.matching(Phase::Validating, &review, object);
            let calls = hooks
                .iter()
                .map(|h| self.call(h, Phase::Validating, &review, object));
            for result in futures::future::join_all(calls).await {
                result?;
            }
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pods() -> &'static Resource {
        resources::by_kind("", "Pod").unwrap()
    }

    #[test]
    fn rules_take_resources_subresources_and_scopes_as_kubernetes_does() {
        let rule = |resources: Value, scope: &str| {
            vec![
                json!({"operations": ["CREATE"], "apiGroups": [""], "apiVersions": ["v1"],
                "resources": resources, "scope": scope}),
            ]
        };
        let create = Operation::Create;
        assert!(rules_match(
            &rule(json!(["pods"]), "*"),
            create,
            pods(),
            None
        ));
        assert!(!rules_match(
            &rule(json!(["pods"]), "*"),
            create,
            pods(),
            Some("status")
        ));
        assert!(!rules_match(
            &rule(json!(["pods"]), "*"),
            Operation::Update,
            pods(),
            None
        ));
        assert!(rules_match(
            &rule(json!(["pods/*"]), "*"),
            create,
            pods(),
            Some("status")
        ));
        assert!(rules_match(
            &rule(json!(["*/status"]), "*"),
            create,
            pods(),
            Some("status")
        ));
        assert!(rules_match(&rule(json!(["*"]), "*"), create, pods(), None));
        assert!(!rules_match(
            &rule(json!(["*"]), "*"),
            create,
            pods(),
            Some("status")
        ));
        assert!(rules_match(
            &rule(json!(["*/*"]), "*"),
            create,
            pods(),
            Some("binding")
        ));
        assert!(!rules_match(
            &rule(json!(["services"]), "*"),
            create,
            pods(),
            None
        ));
        assert!(!rules_match(
            &rule(json!(["pods"]), "Cluster"),
            create,
            pods(),
            None
        ));
        assert!(rules_match(
            &rule(json!(["pods"]), "Namespaced"),
            create,
            pods(),
            None
        ));
        let deployments = resources::by_kind("apps", "Deployment").unwrap();
        assert!(!rules_match(
            &rule(json!(["*"]), "*"),
            create,
            deployments,
            None
        ));
    }

    #[test]
    fn answers_are_allowed_denied_patched_or_invalid() {
        let allow = json!({"response": {"uid": "u", "allowed": true}});
        assert!(matches!(
            verdict("h", "u", &allow, Phase::Validating),
            Ok(None)
        ));
        let deny = json!({"response": {"uid": "u", "allowed": false,
            "status": {"code": 403, "message": "no pods named evil"}}});
        let Err(Ok(e)) = verdict("h.example.com", "u", &deny, Phase::Validating) else {
            panic!()
        };
        assert_eq!(e.code, 403);
        assert_eq!(
            e.message,
            "admission webhook \"h.example.com\" denied the request: no pods named evil"
        );
        let bare = json!({"response": {"uid": "u", "allowed": false}});
        let Err(Ok(e)) = verdict("h", "u", &bare, Phase::Validating) else {
            panic!()
        };
        assert_eq!(e.code, 400);
        assert!(e.message.ends_with("without explanation"));
        let patch = base64::engine::general_purpose::STANDARD
            .encode(r#"[{"op":"add","path":"/metadata/labels","value":{"a":"b"}}]"#);
        let patched = json!({"response": {"uid": "u", "allowed": true,
            "patchType": "JSONPatch", "patch": patch}});
        assert!(matches!(
            verdict("h", "u", &patched, Phase::Mutating),
            Ok(Some(_))
        ));
        assert!(matches!(
            verdict("h", "u", &patched, Phase::Validating),
            Err(Err(_))
        ));
        let wrong = json!({"response": {"uid": "other", "allowed": true}});
        assert!(matches!(
            verdict("h", "u", &wrong, Phase::Validating),
            Err(Err(_))
        ));
        assert!(matches!(
            verdict("h", "u", &json!({}), Phase::Validating),
            Err(Err(_))
        ));
    }

    #[test]
    fn the_review_names_the_write_and_its_user() {
        let pod = json!({"metadata": {"name": "p", "namespace": "n"}, "spec": {}});
        let user = User {
            name: "alice".into(),
            groups: vec!["devs".into()],
        };
        let review = Review {
            operation: Operation::Create,
            resource: pods(),
            subresource: None,
            old: None,
            user: Some(&user),
            dry_run: true,
        };
        let body = review_body("u1", &review, &pod, &user);
        let req = &body["request"];
        assert_eq!(body["kind"], "AdmissionReview");
        assert_eq!(req["uid"], "u1");
        assert_eq!(req["operation"], "CREATE");
        assert_eq!(req["namespace"], "n");
        assert_eq!(req["resource"]["resource"], "pods");
        assert_eq!(req["userInfo"]["username"], "alice");
        assert_eq!(req["object"]["kind"], "Pod");
        assert_eq!(req["object"]["apiVersion"], "v1");
        assert_eq!(req["dryRun"], true);
        assert!(req["oldObject"].is_null());
    }
}

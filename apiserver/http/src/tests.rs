//! The request path driven without a socket: requests with in-memory
//! bodies through the layers and the handlers, over a real store.

use std::sync::{Arc, Mutex};

use axum::body::Body;
use http::{Method, Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;

use crate::aggregator::Aggregator;
use crate::authn::User;
use crate::{
    AllowAll, ApiService, ApiState, Attributes, Authenticated, Authorizer, layers, service,
};
use shoal_machinery::error::ApiError;
use shoal_pki::Pki;
use shoal_registry::admission::{Admission, Attempt, Operation};
use shoal_registry::objects::{Objects, WriteOpts};
use shoal_registry::resources;
use shoal_store::Store;

struct Api {
    svc: ApiService,
    objects: Objects,
    inflight: Arc<crate::Inflight>,
    _dir: tempfile::TempDir,
}

async fn api(authorizer: Arc<dyn Authorizer>) -> Api {
    admitted(authorizer, Vec::new()).await
}

async fn admitted(authorizer: Arc<dyn Authorizer>, plugins: Vec<Arc<dyn Admission>>) -> Api {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::load_or_create(&dir.path().join("pki"), &[]).unwrap();
    let store = Store::open_single(&dir.path().join("store"), 1, "127.0.0.1:0")
        .await
        .unwrap();
    let objects = Objects::new(store).with_admission(plugins);
    let state = ApiState {
        objects: objects.clone(),
        kubelet_client: pki.client_config(&pki.apiserver_kubelet_client).unwrap(),
        metrics: Arc::default(),
        aggregator: Arc::new(Aggregator::new(&pki)),
        authorizer,
        tokens: None,
        inflight: Arc::default(),
        audit: None,
        peers: None,
    };
    let inflight = state.inflight.clone();
    Api {
        svc: service(state),
        objects,
        inflight,
        _dir: dir,
    }
}

fn user(name: &str) -> Option<Arc<User>> {
    Some(Arc::new(User {
        name: name.into(),
        groups: vec!["system:authenticated".into()],
    }))
}

fn alice() -> Option<Arc<User>> {
    user("alice")
}

impl Api {
    /// Sends one request as `user` and reads the answer's status and JSON.
    async fn call(
        &self,
        user: Option<Arc<User>>,
        method: Method,
        path: &str,
        content_type: &str,
        body: &str,
    ) -> (StatusCode, Value) {
        let mut req = Request::builder()
            .method(method)
            .uri(path)
            .header("content-type", content_type)
            .body(Body::from(body.to_string()))
            .unwrap();
        req.extensions_mut().insert(Authenticated(user));
        let resp = self
            .svc
            .clone()
            .oneshot(req)
            .await
            .unwrap_or_else(layers::refusal);
        let status = resp.status();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        let value = serde_json::from_slice(&bytes)
            .unwrap_or(Value::String(String::from_utf8_lossy(&bytes).into_owned()));
        (status, value)
    }

    async fn json(&self, method: Method, path: &str, body: Value) -> (StatusCode, Value) {
        self.call(alice(), method, path, "application/json", &body.to_string())
            .await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anonymous_requests_reach_only_the_health_checks() {
    let api = api(Arc::new(AllowAll)).await;
    let (code, body) = api
        .call(None, Method::GET, "/api/v1/namespaces", "", "")
        .await;
    assert_eq!(code, StatusCode::UNAUTHORIZED);
    assert_eq!(body["kind"], "Status");
    assert_eq!(body["reason"], "Unauthorized");
    let (code, body) = api.call(None, Method::GET, "/healthz", "", "").await;
    assert_eq!((code, body), (StatusCode::OK, json!("ok")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn objects_are_created_read_and_listed_through_the_handlers() {
    let api = api(Arc::new(AllowAll)).await;
    let (code, _) = api
        .json(
            Method::POST,
            "/api/v1/namespaces",
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team"}}),
        )
        .await;
    assert_eq!(code, StatusCode::CREATED);
    // A YAML body is read as the JSON Kubernetes makes of it.
    let (code, created) = api
        .call(
            alice(),
            Method::POST,
            "/api/v1/namespaces/team/configmaps",
            "application/yaml",
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: settings}\ndata: {mode: fast}\n",
        )
        .await;
    assert_eq!(code, StatusCode::CREATED, "{created}");
    assert!(created["metadata"]["uid"].is_string());
    let (code, got) = api
        .json(
            Method::GET,
            "/api/v1/namespaces/team/configmaps/settings",
            Value::Null,
        )
        .await;
    assert_eq!(
        (code, &got["data"]),
        (StatusCode::OK, &json!({"mode": "fast"}))
    );
    let (code, list) = api
        .json(
            Method::GET,
            "/api/v1/namespaces/team/configmaps",
            Value::Null,
        )
        .await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!(list["kind"], "ConfigMapList");
    assert_eq!(list["items"].as_array().map(Vec::len), Some(1));

    // Errors are Status bodies with Kubernetes' reasons.
    let (code, missing) = api
        .json(
            Method::GET,
            "/api/v1/namespaces/team/configmaps/absent",
            Value::Null,
        )
        .await;
    assert_eq!(
        (code, &missing["reason"]),
        (StatusCode::NOT_FOUND, &json!("NotFound"))
    );
    let (code, none) = api
        .json(
            Method::GET,
            "/apis/nowhere.example.com/v1/things",
            Value::Null,
        )
        .await;
    assert_eq!(
        (code, &none["kind"]),
        (StatusCode::NOT_FOUND, &json!("Status"))
    );
    let huge = format!(
        "{{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\",\"metadata\":{{\"name\":\"big\"}},\"data\":{{\"x\":\"{}\"}}}}",
        "a".repeat(4 << 20)
    );
    let (code, _) = api
        .call(
            alice(),
            Method::POST,
            "/api/v1/namespaces/team/configmaps",
            "application/json",
            &huge,
        )
        .await;
    assert_eq!(code, StatusCode::PAYLOAD_TOO_LARGE);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn field_selectors_name_only_the_fields_a_kind_offers() {
    let api = api(Arc::new(AllowAll)).await;
    let ns = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team"}});
    api.json(Method::POST, "/api/v1/namespaces", ns).await;
    for name in ["a", "b"] {
        let (code, _) = api
            .json(
                Method::POST,
                "/api/v1/namespaces/team/secrets",
                json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name},
                    "type": if name == "a" { "Opaque" } else { "example.com/token" }}),
            )
            .await;
        assert_eq!(code, StatusCode::CREATED);
    }
    let (code, list) = api
        .json(
            Method::GET,
            "/api/v1/namespaces/team/secrets?fieldSelector=type%3Dexample.com%2Ftoken",
            Value::Null,
        )
        .await;
    assert_eq!(code, StatusCode::OK, "{list}");
    assert_eq!(list["items"][0]["metadata"]["name"], "b");
    assert_eq!(list["items"].as_array().map(Vec::len), Some(1));
    for path in [
        "/api/v1/namespaces/team/secrets?fieldSelector=data.x%3Dy",
        "/api/v1/namespaces/team/configmaps?fieldSelector=type%3Dx&watch=1",
        "/api/v1/namespaces/team/configmaps?fieldSelector=metadata.labels%3Dx",
    ] {
        let (code, status) = api.json(Method::GET, path, Value::Null).await;
        assert_eq!(code, StatusCode::BAD_REQUEST, "{path}");
        assert!(
            status["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("field label not supported: ")),
            "{status}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spent_budget_of_writes_answers_429_and_reads_go_on() {
    let api = api(Arc::new(AllowAll)).await;
    let held = api.inflight.exhaust_writes();
    let ns = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "busy"}});
    let (code, status) = api
        .json(Method::POST, "/api/v1/namespaces", ns.clone())
        .await;
    assert_eq!(code, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(status["reason"], "TooManyRequests");
    assert_eq!(status["details"]["retryAfterSeconds"], 1);
    let (code, _) = api
        .json(Method::GET, "/api/v1/namespaces", Value::Null)
        .await;
    assert_eq!(code, StatusCode::OK, "reads have their own budget");
    drop(held);
    let (code, _) = api.json(Method::POST, "/api/v1/namespaces", ns).await;
    assert_eq!(code, StatusCode::CREATED);
}

/// Refuses writes of Secrets, and records what it was asked.
#[derive(Default)]
struct NoSecretWrites(Mutex<Vec<Attributes>>);

impl Authorizer for NoSecretWrites {
    fn authorize(&self, user: &User, a: &Attributes) -> Result<(), ApiError> {
        self.0.lock().unwrap().push(a.clone());
        let secret = a.resource.as_ref().is_some_and(|r| r.resource == "secrets");
        if secret && a.verb != "get" {
            return Err(ApiError {
                code: 403,
                reason: "Forbidden",
                message: format!("{} may not {} secrets", user.name, a.verb),
                details: None,
            });
        }
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_authorizer_decides_before_any_handler_runs() {
    let authorizer = Arc::new(NoSecretWrites::default());
    let api = api(authorizer.clone()).await;
    let (code, body) = api
        .json(
            Method::POST,
            "/api/v1/namespaces/default/secrets",
            json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}}),
        )
        .await;
    assert_eq!(code, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(body["message"], "alice may not create secrets");
    let secrets = resources::by_kind("", "Secret").unwrap();
    assert!(
        api.objects.get(secrets, "default", "s").is_err(),
        "nothing was written"
    );

    let _ = api
        .json(
            Method::GET,
            "/api/v1/namespaces/default/secrets/s",
            Value::Null,
        )
        .await;
    let asked = authorizer.0.lock().unwrap().last().cloned().unwrap();
    assert_eq!(asked.verb, "get");
    let r = asked.resource.unwrap();
    assert_eq!(
        (
            r.group.as_str(),
            r.resource.as_str(),
            r.namespace.as_str(),
            r.name.as_str()
        ),
        ("", "secrets", "default", "s")
    );
    // `kubectl auth can-i` asks the same authorizer.
    let can_i = |verb: &str| {
        json!({"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview",
            "spec": {"resourceAttributes": {"verb": verb, "resource": "secrets", "namespace": "default"}}})
    };
    let path = "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews";
    let (code, review) = api.json(Method::POST, path, can_i("create")).await;
    assert_eq!(code, StatusCode::CREATED, "{review}");
    assert_eq!(
        review["status"],
        json!({"allowed": false, "reason": "alice may not create secrets"})
    );
    let (_, review) = api.json(Method::POST, path, can_i("get")).await;
    assert_eq!(review["status"], json!({"allowed": true}));
    let _ = api.json(Method::GET, "/version", Value::Null).await;
    let asked = authorizer.0.lock().unwrap().last().cloned().unwrap();
    assert_eq!(
        (asked.verb.as_str(), asked.resource, asked.path.as_str()),
        ("get", None, "/version")
    );
}

/// Labels new ConfigMaps with who made them and refuses mallory's updates.
struct Stamp;

impl Admission for Stamp {
    fn admit(&self, a: Attempt<'_>) -> Result<(), ApiError> {
        if a.resource.kind != "ConfigMap" {
            return Ok(());
        }
        let who = a.user.map_or("control-plane", |u| u.name.as_str());
        match a.operation {
            Operation::Create => {
                a.object["metadata"]["labels"]["made-by"] = json!(who);
                Ok(())
            }
            Operation::Update if who == "mallory" => Err(ApiError {
                code: 403,
                reason: "Forbidden",
                message: "mallory may not change configmaps".into(),
                details: None,
            }),
            Operation::Update => {
                assert!(a.old.is_some(), "an update sees the stored object");
                Ok(())
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admission_sees_every_write_with_its_user() {
    let api = admitted(Arc::new(AllowAll), vec![Arc::new(Stamp)]).await;
    let ns = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "default"}});
    assert_eq!(
        api.json(Method::POST, "/api/v1/namespaces", ns).await.0,
        StatusCode::CREATED
    );
    let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"k": "v"}});
    let (code, created) = api
        .json(
            Method::POST,
            "/api/v1/namespaces/default/configmaps",
            cm.clone(),
        )
        .await;
    assert_eq!(code, StatusCode::CREATED, "{created}");
    assert_eq!(created["metadata"]["labels"]["made-by"], "alice");

    let patch = r#"{"data":{"k":"w"}}"#;
    let path = "/api/v1/namespaces/default/configmaps/c";
    let (code, body) = api
        .call(
            user("mallory"),
            Method::PATCH,
            path,
            "application/merge-patch+json",
            patch,
        )
        .await;
    assert_eq!(code, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(body["message"], "mallory may not change configmaps");
    let (code, body) = api
        .call(
            alice(),
            Method::PATCH,
            path,
            "application/merge-patch+json",
            patch,
        )
        .await;
    assert_eq!((code, &body["data"]["k"]), (StatusCode::OK, &json!("w")));

    // The control plane's own writes carry no user.
    let configmaps = resources::by_kind("", "ConfigMap").unwrap();
    let mut own = cm;
    own["metadata"]["name"] = json!("own");
    let written = api
        .objects
        .create(configmaps, "default", own, WriteOpts::default())
        .await
        .unwrap();
    assert_eq!(
        written.object["metadata"]["labels"]["made-by"],
        "control-plane"
    );
}

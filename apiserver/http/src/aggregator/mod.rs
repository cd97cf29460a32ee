//! The aggregation layer: a group-version an `APIService` backs with a
//! Service is served by that Service's endpoints. Requests for it are
//! proxied there over TLS (the APIService's `caBundle`, or none checked with
//! `insecureSkipTLSVerify`), presenting the front-proxy client certificate
//! and naming the requester in `X-Remote-User` and `X-Remote-Group`, as
//! kube-aggregator does; `kube-system/extension-apiserver-authentication`
//! tells extension servers which CA and headers to trust. A checker fetches
//! each backend's discovery document every few seconds, for the
//! `Available` condition and for the API discovery this server answers.
//!
//! May import: `authn`, `controllers::api_services` (the condition),
//! `error`, `meta`, `objects`, `pki`, `resources`.

mod proxy;

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use base64::Engine as _;
use serde_json::{Value, json};

pub use proxy::forward;

use shoal_machinery::conditions::condition_patch;
use shoal_machinery::meta::{self, str_at};
use shoal_pki::{self as pki, Pair, Pki};
use shoal_registry::objects::{Objects, PatchType, WriteOpts};
use shoal_registry::resources::{self, Resource, Sub};

/// How often every backend's discovery is fetched.
const CHECK_PERIOD: Duration = Duration::from_secs(5);
/// How long a backend has to answer a discovery check.
const CHECK_TIMEOUT: Duration = Duration::from_secs(5);

/// What the aggregation layer keeps: its client pair and what each backend
/// last said it serves.
pub struct Aggregator {
    client: Pair,
    /// `APIResourceList`s by `(group, version)`, of backends that answered
    /// their last check.
    discovered: RwLock<BTreeMap<(String, String), Value>>,
}

/// Where a group-version is served from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backend {
    /// An endpoint of the Service.
    pub addr: SocketAddr,
    /// `<service>.<namespace>.svc`, the name its certificate is checked for.
    pub host: String,
    /// PEM the backend's certificate must chain to; `None` checks nothing.
    pub ca: Option<String>,
}

impl Aggregator {
    /// The layer, presenting the front-proxy client pair of `pki`.
    pub fn new(pki: &Pki) -> Self {
        Self {
            client: pki.front_proxy_client.clone(),
            discovered: RwLock::default(),
        }
    }

    /// The resources a backend serves for `group`/`version`, as its last
    /// check found them.
    pub fn discovered(&self) -> BTreeMap<(String, String), Value> {
        self.discovered.read().expect("discovery lock").clone()
    }

    fn tls(&self, backend: &Backend) -> Result<Arc<rustls::ClientConfig>, String> {
        pki::proxy_client_config(&self.client, backend.ca.as_deref()).map_err(|e| e.to_string())
    }
}

fn api_services() -> &'static Resource {
    resources::by_kind("apiregistration.k8s.io", "APIService").expect("APIServices are served")
}

/// The APIService serving `group`/`version` from a Service, when this
/// server does not serve it itself.
pub fn remote(objects: &Objects, group: &str, version: &str) -> Option<Arc<Value>> {
    // Most requests name a group no APIService backs: one lookup says so.
    let a = objects
        .get(api_services(), "", &format!("{version}.{group}"))
        .ok()?
        .value;
    let backed = a.pointer("/spec/service").is_some_and(Value::is_object);
    // What this server serves of its own, unless it is only a default an
    // APIService may replace (the resource metrics, as metrics-server
    // replaces them).
    let local = || {
        let registry = objects.resources();
        registry.group_versions().contains(&(group, version))
            && !registry.replaceable(group, version)
    };
    (backed && !local()).then_some(a)
}

/// The groups APIServices back with Services, each with its versions,
/// for `/apis`.
pub fn remote_groups(objects: &Objects) -> Vec<(String, Vec<String>)> {
    let registry = objects.resources();
    let local = registry.group_versions();
    let (items, _) = objects.list(
        api_services(),
        None,
        &Default::default(),
        &Default::default(),
    );
    let mut out: Vec<(String, Vec<String>)> = Vec::new();
    let mut backed: Vec<_> = items
        .iter()
        .map(|s| &*s.value)
        .filter(|a| a.pointer("/spec/service").is_some_and(Value::is_object))
        .filter_map(|a| {
            let (g, v) = (str_at(a, "/spec/group")?, str_at(a, "/spec/version")?);
            let priority = a.pointer("/spec/versionPriority").and_then(Value::as_i64);
            let own = local.contains(&(g, v)) && !registry.replaceable(g, v);
            (!own).then_some((g, v, priority.unwrap_or(0)))
        })
        .collect();
    // Versions by descending priority, the preferred first.
    backed.sort_by(|a, b| a.0.cmp(b.0).then(b.2.cmp(&a.2)).then(a.1.cmp(b.1)));
    for (g, v, _) in backed {
        match out.iter_mut().find(|(name, _)| name == g) {
            Some((_, vs)) => vs.push(v.to_string()),
            None => out.push((g.to_string(), vec![v.to_string()])),
        }
    }
    out
}

/// The backend an APIService names: an address of the Service's
/// endpoints for the APIService's port. `Err` says why there is none.
pub fn backend(
    api_service: &Value,
    service: Option<&Value>,
    endpoints: Option<&Value>,
) -> Result<Backend, String> {
    let spec = &api_service["spec"];
    let (ns, name) = (
        str_at(spec, "/service/namespace").unwrap_or_default(),
        str_at(spec, "/service/name").unwrap_or_default(),
    );
    let port = spec
        .pointer("/service/port")
        .and_then(Value::as_i64)
        .unwrap_or(443);
    let service = service.ok_or_else(|| format!("service/{name} in {ns:?} is not present"))?;
    let service_port = service
        .pointer("/spec/ports")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .find(|p| p.get("port").and_then(Value::as_i64) == Some(port))
        .ok_or_else(|| format!("service/{name} in {ns:?} has no port {port}"))?;
    let port_name = str_at(service_port, "/name").unwrap_or_default();
    let mut addrs = Vec::new();
    for subset in endpoints
        .and_then(|e| e.get("subsets"))
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let ports = subset.get("ports").and_then(Value::as_array);
        let Some(target) = ports
            .into_iter()
            .flatten()
            .find(|p| str_at(p, "/name").unwrap_or_default() == port_name)
            .and_then(|p| p.get("port").and_then(Value::as_u64))
            .and_then(|p| u16::try_from(p).ok())
        else {
            continue;
        };
        for a in subset
            .get("addresses")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if let Some(ip) = str_at(a, "/ip").and_then(|ip| ip.parse::<IpAddr>().ok()) {
                addrs.push(SocketAddr::new(ip, target));
            }
        }
    }
    if addrs.is_empty() {
        return Err(format!(
            "endpoints for service/{name} in {ns:?} have no addresses with port name {port_name:?}"
        ));
    }
    let addr = addrs[rand::random_range(0..addrs.len())];
    let insecure = spec
        .get("insecureSkipTLSVerify")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let ca = if insecure {
        None
    } else {
        let bundle = str_at(spec, "/caBundle").unwrap_or_default();
        let pem = base64::engine::general_purpose::STANDARD
            .decode(bundle)
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .unwrap_or_default();
        Some(pem)
    };
    Ok(Backend {
        addr,
        host: format!("{name}.{ns}.svc"),
        ca,
    })
}

/// The backend of `api_service` as the store holds it now.
pub fn resolve(objects: &Objects, api_service: &Value) -> Result<Backend, String> {
    let (ns, name) = (
        str_at(api_service, "/spec/service/namespace").unwrap_or_default(),
        str_at(api_service, "/spec/service/name").unwrap_or_default(),
    );
    let get = |kind: &str| {
        let r = resources::by_kind("", kind).expect("core kinds are served");
        objects.get(r, ns, name).ok().map(|s| s.value)
    };
    backend(
        api_service,
        get("Service").as_deref(),
        get("Endpoints").as_deref(),
    )
}

/// Checks every Service-backed APIService's discovery until the task is
/// dropped: what a backend serves is remembered for discovery, and its
/// `Available` condition says whether it answered. (APIServices whose
/// Service or endpoints are missing are the controllers' to report.)
pub async fn run(objects: Objects, aggregator: Arc<Aggregator>) {
    loop {
        let (items, _) = objects.list(
            api_services(),
            None,
            &Default::default(),
            &Default::default(),
        );
        let mut found = BTreeMap::new();
        for a in items.iter().map(|s| &s.value) {
            if !a.pointer("/spec/service").is_some_and(Value::is_object) {
                continue;
            }
            let (g, v) = (
                str_at(a, "/spec/group").unwrap_or_default().to_string(),
                str_at(a, "/spec/version").unwrap_or_default().to_string(),
            );
            let Ok(backend) = resolve(&objects, a) else {
                continue;
            };
            let url = format!("https://{}/apis/{g}/{v}", backend.addr);
            let checked = tokio::time::timeout(CHECK_TIMEOUT, check(&aggregator, &backend, &g, &v))
                .await
                .unwrap_or_else(|_| Err("the discovery check timed out".into()));
            let (status, reason, message) = match checked {
                Ok(list) => {
                    found.insert((g, v), list);
                    ("True", "Passed", "all checks passed".to_string())
                }
                Err(e) => (
                    "False",
                    "FailedDiscoveryCheck",
                    format!("failing or missing response from {url}: {e}"),
                ),
            };
            let now = jiff::Timestamp::now();
            if let Some(patch) = condition_patch(a, "Available", status, reason, &message, now) {
                let written = objects
                    .patch(
                        api_services(),
                        "",
                        meta::name(a),
                        PatchType::Merge,
                        &patch,
                        Some(Sub::Status),
                        WriteOpts::default(),
                    )
                    .await;
                if let Err(e) = written {
                    tracing::debug!("APIService {}: {}", meta::name(a), e.message);
                }
            }
        }
        *aggregator.discovered.write().expect("discovery lock") = found;
        tokio::time::sleep(CHECK_PERIOD).await;
    }
}

/// `GET /apis/<group>/<version>` from the backend, as the aggregator.
async fn check(
    aggregator: &Aggregator,
    backend: &Backend,
    group: &str,
    version: &str,
) -> Result<Value, String> {
    let req = http::Request::get(format!("/apis/{group}/{version}"))
        .header(http::header::HOST, &backend.host)
        .header(http::header::ACCEPT, "application/json")
        .header(proxy::REMOTE_USER, "system:kube-aggregator")
        .header(proxy::REMOTE_GROUP, "system:masters")
        .body(http_body_util::Empty::<bytes::Bytes>::new())
        .map_err(|e| e.to_string())?;
    let resp = proxy::send(aggregator, backend, req).await?;
    let status = resp.status();
    let body =
        http_body_util::BodyExt::collect(http_body_util::Limited::new(resp.into_body(), 4 << 20))
            .await
            .map_err(|e| e.to_string())?
            .to_bytes();
    if !status.is_success() {
        return Err(format!("bad status from the server: {}", status.as_u16()));
    }
    let list: Value = serde_json::from_slice(&body).map_err(|e| format!("the response: {e}"))?;
    if list.get("resources").and_then(Value::as_array).is_none() {
        return Err("the response is not an APIResourceList".into());
    }
    Ok(list)
}

/// The `kube-system/extension-apiserver-authentication` ConfigMap's data:
/// the CAs and headers an extension API server trusts, as kube-apiserver
/// publishes them.
pub fn authentication_config(pki: &Pki) -> Value {
    json!({
        "client-ca-file": pki.ca,
        "requestheader-client-ca-file": pki.front_proxy_ca,
        "requestheader-allowed-names": json!([pki::FRONT_PROXY_CLIENT]).to_string(),
        "requestheader-username-headers": json!([proxy::REMOTE_USER]).to_string(),
        "requestheader-group-headers": json!([proxy::REMOTE_GROUP]).to_string(),
        "requestheader-extra-headers-prefix": json!([proxy::REMOTE_EXTRA]).to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api_service(port: Option<i64>, insecure: bool) -> Value {
        let mut a = json!({"metadata": {"name": "v1beta1.metrics.k8s.io"},
            "spec": {"group": "metrics.k8s.io", "version": "v1beta1",
                "service": {"namespace": "kube-system", "name": "metrics"},
                "caBundle": base64::engine::general_purpose::STANDARD.encode("PEM")}});
        if let Some(p) = port {
            a["spec"]["service"]["port"] = json!(p);
        }
        if insecure {
            a["spec"]["insecureSkipTLSVerify"] = json!(true);
        }
        a
    }

    #[test]
    fn the_backend_is_an_endpoint_for_the_named_port() {
        let svc = json!({"spec": {"ports": [
            {"name": "other", "port": 80, "targetPort": 8080},
            {"name": "https", "port": 443, "targetPort": "secure"}]}});
        let eps = json!({"subsets": [
            {"addresses": [{"ip": "10.244.0.9"}], "ports": [{"name": "other", "port": 8080}]},
            {"addresses": [{"ip": "10.244.0.7"}], "notReadyAddresses": [{"ip": "10.244.0.8"}],
             "ports": [{"name": "https", "port": 4443}]}]});
        let b = backend(&api_service(None, false), Some(&svc), Some(&eps)).unwrap();
        assert_eq!(b.addr, "10.244.0.7:4443".parse().unwrap());
        assert_eq!(b.host, "metrics.kube-system.svc");
        assert_eq!(b.ca.as_deref(), Some("PEM"));
        let b = backend(&api_service(Some(80), true), Some(&svc), Some(&eps)).unwrap();
        assert_eq!((b.addr, b.ca), ("10.244.0.9:8080".parse().unwrap(), None));
    }

    #[test]
    fn missing_pieces_say_what_is_missing() {
        let svc = json!({"spec": {"ports": [{"port": 443}]}});
        let a = api_service(None, false);
        assert!(backend(&a, None, None).unwrap_err().contains("not present"));
        assert!(
            backend(&api_service(Some(8443), false), Some(&svc), None)
                .unwrap_err()
                .contains("no port 8443")
        );
        let only_unready = json!({"subsets": [{"notReadyAddresses": [{"ip": "10.0.0.1"}], "ports": [{"port": 1}]}]});
        assert!(
            backend(&a, Some(&svc), Some(&only_unready))
                .unwrap_err()
                .contains("no addresses")
        );
    }
}

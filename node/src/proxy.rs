//! The in-agent service proxy: a listener per NodePort forwarding HTTP to
//! a Service's ready endpoints, round-robin, straight into the Wasm HTTP
//! instances of pods on this node.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, combinators::UnsyncBoxBody};
use hyper_util::rt::{TokioIo, TokioTimer};
use k8s_openapi::api::core::v1::{Endpoints, Service};
use kube::api::Api;
use kube::runtime::{WatchStreamExt, reflector, watcher};
use shoal_runtime_wasm::{CommandSpec, Workload};
use tokio::sync::watch;

use crate::agent::Shared;

type Body = UnsyncBoxBody<Bytes, Box<dyn std::error::Error + Send + Sync>>;

/// HTTP instances of pods on this node, by pod IP and port, and the
/// listeners on those addresses (where pod IPs are live).
#[derive(Default)]
pub(crate) struct HttpTargets {
    inner: Mutex<HashMap<(String, u16), Target>>,
    listeners: Mutex<HashMap<String, Vec<tokio_util::task::AbortOnDropHandle<()>>>>,
}

#[derive(Clone)]
struct Target {
    uid: String,
    runtime: Arc<shoal_runtime_wasm::Runtime>,
    workload: Arc<Workload>,
    spec: CommandSpec,
    /// Held by every request in flight, until its response body ends.
    in_flight: Arc<()>,
    /// Set when the pod's instances must stop at once.
    stop: Arc<watch::Sender<bool>>,
}

impl HttpTargets {
    pub fn add(
        &self,
        runtime: &Arc<shoal_runtime_wasm::Runtime>,
        uid: &str,
        ip: &str,
        ports: &[u16],
        workload: Arc<Workload>,
        spec: CommandSpec,
    ) {
        let mut m = self.inner.lock().expect("targets lock");
        let in_flight = Arc::new(());
        let stop = Arc::new(watch::channel(false).0);
        for p in ports {
            m.insert(
                (ip.to_string(), *p),
                Target {
                    uid: uid.to_string(),
                    runtime: runtime.clone(),
                    workload: workload.clone(),
                    spec: spec.clone(),
                    in_flight: in_flight.clone(),
                    stop: stop.clone(),
                },
            );
        }
    }

    /// Takes a pod's instances out of service and stops the requests they
    /// are still serving.
    pub fn remove_pod(&self, uid: &str) {
        if let Some(t) = self.take(uid) {
            t.stop.send_replace(true);
        }
    }

    fn take(&self, uid: &str) -> Option<Target> {
        // New connections stop at once; those open finish their requests.
        self.listeners.lock().expect("listeners lock").remove(uid);
        let mut taken = None;
        self.inner.lock().expect("targets lock").retain(|_, t| {
            if t.uid == uid {
                taken = Some(t.clone());
            }
            t.uid != uid
        });
        taken
    }

    /// Takes a pod out of service and waits, at most `grace`, for the
    /// requests it is serving to finish; those still running then are
    /// stopped. Returns how many were stopped.
    pub async fn drain(&self, uid: &str, grace: Duration) -> usize {
        match self.take(uid) {
            Some(t) => finish(t, grace).await,
            None => 0,
        }
    }

    /// Takes one container's ports out of service (a restart: the pod's
    /// listeners stay, answering 503 until it serves again) and lets its
    /// requests finish within `grace`.
    pub async fn stop_ports(&self, ip: &str, ports: &[u16], grace: Duration) {
        let mut taken = None;
        {
            let mut m = self.inner.lock().expect("targets lock");
            for p in ports {
                taken = m.remove(&(ip.to_string(), *p)).or(taken);
            }
        }
        if let Some(t) = taken {
            finish(t, grace).await;
        }
    }

    fn get(&self, ip: &str, port: u16) -> Option<Target> {
        self.inner
            .lock()
            .expect("targets lock")
            .get(&(ip.to_string(), port))
            .cloned()
    }
}

impl crate::probes::InProcess for HttpTargets {
    fn serves(&self, ip: &str, port: u16) -> bool {
        self.get(ip, port).is_some()
    }

    fn probe(
        &self,
        ip: &str,
        port: u16,
        req: crate::probes::ProbeRequest,
        read_body: bool,
    ) -> futures::future::BoxFuture<'_, Result<crate::probes::Answer, String>> {
        let target = self.get(ip, port);
        let addr = format!("{ip}:{port}");
        Box::pin(probe(target, addr, req, read_body))
    }
}

/// A probe's request, served in-process by a fresh instance of `target`.
async fn probe(
    target: Option<Target>,
    addr: String,
    req: crate::probes::ProbeRequest,
    read_body: bool,
) -> Result<crate::probes::Answer, String> {
    let Some(t) = target else {
        return Err(format!("dial tcp {addr}: connect: connection refused"));
    };
    // The instance ends with the probe: answered, timed out or the pod
    // stopping, whichever comes first.
    let (_probing, probe_ended) = tokio::sync::oneshot::channel::<()>();
    let pod_stopped = stopped(t.stop.subscribe());
    let stop = async move {
        tokio::select! {
            () = pod_stopped => {}
            _ = probe_ended => {}
        }
    };
    let resp = t
        .runtime
        .serve_http(&t.workload, &t.spec, req, stop)
        .await?;
    crate::probes::answer(resp, read_body).await
}

/// Waits, at most `grace`, for a target's requests in flight to finish,
/// then stops those left: how many. They are stopped however the wait
/// ends, even when it is itself cancelled.
async fn finish(t: Target, grace: Duration) -> usize {
    struct StopOnDrop(Arc<watch::Sender<bool>>);
    impl Drop for StopOnDrop {
        fn drop(&mut self) {
            self.0.send_replace(true);
        }
    }
    let _stop = StopOnDrop(t.stop.clone());
    let deadline = tokio::time::Instant::now() + grace;
    // The target itself holds one reference.
    while Arc::strong_count(&t.in_flight) > 1 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Arc::strong_count(&t.in_flight) - 1
}

/// Serves an HTTP pod's ports at its IP: a listener per port, each
/// connection's requests served in-process by a fresh instance.
pub(crate) async fn listen_at_pod_ip(
    shared: &Arc<Shared>,
    uid: &str,
    ip: &str,
    ports: &[u16],
    guard: Arc<crate::policy::PodGuard>,
) {
    let Ok(addr) = ip.parse::<std::net::IpAddr>() else {
        return;
    };
    let mut handles = Vec::new();
    for port in ports {
        let listener = match tokio::net::TcpListener::bind((addr, *port)).await {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!("pod {uid}: cannot listen on {ip}:{port}: {e}");
                continue;
            }
        };
        let (shared, ip, port, guard) = (shared.clone(), ip.to_string(), *port, guard.clone());
        handles.push(tokio_util::task::AbortOnDropHandle::new(tokio::spawn(
            async move {
                let mut listener = listener;
                loop {
                    // Within the process's budget of connections; accept
                    // errors are logged and waited out.
                    let (tcp, from, slot) = shoal_listen::accept(&mut listener).await;
                    // NetworkPolicy: a peer the pod may not hear from is
                    // closed on, as a dropped connection.
                    if !guard.admits(from, port, "TCP") {
                        continue;
                    }
                    let (shared, ip) = (shared.clone(), ip.clone());
                    tokio::spawn(async move {
                        let _slot = slot;
                        let svc = hyper::service::service_fn(move |req| {
                            let target = shared.http.get(&ip, port);
                            async move {
                                Ok::<_, Infallible>(match target {
                                    Some(t) => serve(t, req).await,
                                    None => text(
                                        StatusCode::SERVICE_UNAVAILABLE,
                                        "the pod is stopping\n",
                                    ),
                                })
                            }
                        });
                        let _ = hyper::server::conn::http1::Builder::new()
                            .timer(TokioTimer::new())
                            .keep_alive(true)
                            .serve_connection(TokioIo::new(tcp), svc)
                            .await;
                    });
                }
            },
        )));
    }
    // The pod may have been taken out of service while the listeners were
    // bound: then they go at once.
    let serving = shared
        .http
        .inner
        .lock()
        .expect("targets lock")
        .values()
        .any(|t| t.uid == uid);
    if serving {
        shared
            .http
            .listeners
            .lock()
            .expect("listeners lock")
            .insert(uid.to_string(), handles);
    }
}

impl HttpTargets {
    /// Whether a pod's HTTP instances serve `ip:port` in this process.
    pub fn serves(&self, ip: &str, port: u16) -> bool {
        self.get(ip, port).is_some()
    }
}

/// Serves one HTTP/1 connection that reached a pod's port some other way
/// than a socket (a forwarded port) to its instances, in this process.
pub(crate) async fn serve_connection(
    shared: Arc<Shared>,
    ip: String,
    port: u16,
    io: impl tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static,
) {
    let svc = hyper::service::service_fn(move |req| {
        let target = shared.http.get(&ip, port);
        async move {
            Ok::<_, Infallible>(match target {
                Some(t) => serve(t, req).await,
                None => text(StatusCode::SERVICE_UNAVAILABLE, "the pod is stopping\n"),
            })
        }
    });
    let _ = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .keep_alive(true)
        .serve_connection(TokioIo::new(io), svc)
        .await;
}

/// Serves one request with a fresh instance of `t`.
async fn serve(t: Target, req: Request<hyper::body::Incoming>) -> Response<Body> {
    let runtime = t.runtime.clone();
    match runtime
        .serve_http(&t.workload, &t.spec, req, stopped(t.stop.subscribe()))
        .await
    {
        Ok(resp) => {
            let in_flight = t.in_flight;
            resp.map(move |b| {
                b.map_frame(move |f| {
                    let _held = &in_flight;
                    f
                })
                .map_err(|e| Box::new(e) as Box<dyn std::error::Error + Send + Sync>)
                .boxed_unsync()
            })
        }
        Err(e) => {
            tracing::warn!("pod {}: {e}", t.uid);
            text(StatusCode::BAD_GATEWAY, "the backend failed to answer\n")
        }
    }
}

/// Completes when the pod's instances must stop.
async fn stopped(mut stop: watch::Receiver<bool>) {
    if stop.wait_for(|s| *s).await.is_err() {
        // The pod is gone without a stop: nothing will ever stop it, so
        // the request runs to its end.
        std::future::pending::<()>().await;
    }
}

fn text(code: StatusCode, s: impl Into<String>) -> Response<Body> {
    let mut r = Response::new(
        Full::new(Bytes::from(s.into()))
            .map_err(|never: Infallible| match never {})
            .boxed_unsync(),
    );
    *r.status_mut() = code;
    r
}

/// Serves NodePorts from the agent (when the kernel does not: see
/// `services`): a listener per NodePort, HTTP forwarded to the endpoints
/// that are HTTP pods of this node.
pub(crate) async fn run(shared: Arc<Shared>) {
    if shared.kernel_services {
        return;
    }
    let (services, svc_writer) = reflector::store::<Service>();
    let (endpoints, ep_writer) = reflector::store::<Endpoints>();
    let svc_stream = reflector(
        svc_writer,
        watcher(
            Api::<Service>::all(shared.client.clone()),
            watcher::Config::default(),
        ),
    )
    .default_backoff()
    .touched_objects();
    let ep_stream = reflector(
        ep_writer,
        watcher(
            Api::<Endpoints>::all(shared.client.clone()),
            watcher::Config::default(),
        ),
    )
    .default_backoff()
    .touched_objects();
    tokio::spawn(svc_stream.for_each(|_| async {}));
    tokio::spawn(ep_stream.for_each(|_| async {}));
    let rr = Arc::new(AtomicUsize::new(0));
    let mut listeners: HashMap<u16, tokio::task::JoinHandle<()>> = HashMap::new();
    loop {
        let mut wanted: HashMap<u16, ()> = HashMap::new();
        for svc in services.state() {
            for p in svc
                .spec
                .as_ref()
                .and_then(|s| s.ports.clone())
                .unwrap_or_default()
            {
                if let Some(np) = p.node_port {
                    wanted.insert(np as u16, ());
                }
            }
        }
        listeners.retain(|port, task| {
            let keep = wanted.contains_key(port);
            if !keep {
                task.abort();
            }
            keep
        });
        for port in wanted.keys() {
            if listeners.contains_key(port) {
                continue;
            }
            let addr = std::net::SocketAddr::new(shared.config.node_ip, *port);
            match tokio::net::TcpListener::bind(addr).await {
                Ok(mut l) => {
                    let (shared, services, endpoints, rr, port) = (
                        shared.clone(),
                        services.clone(),
                        endpoints.clone(),
                        rr.clone(),
                        *port,
                    );
                    listeners.insert(
                        port,
                        tokio::spawn(async move {
                            loop {
                                // Within the process's budget of
                                // connections; accept errors are waited out.
                                let (tcp, _, slot) = shoal_listen::accept(&mut l).await;
                                let (shared, services, endpoints, rr) = (
                                    shared.clone(),
                                    services.clone(),
                                    endpoints.clone(),
                                    rr.clone(),
                                );
                                tokio::spawn(async move {
                                    let _slot = slot;
                                    let svc = hyper::service::service_fn(move |req| {
                                        let (shared, services, endpoints, rr) = (
                                            shared.clone(),
                                            services.clone(),
                                            endpoints.clone(),
                                            rr.clone(),
                                        );
                                        async move {
                                            Ok::<_, Infallible>(
                                                forward(
                                                    &shared, &services, &endpoints, &rr, port, req,
                                                )
                                                .await,
                                            )
                                        }
                                    });
                                    let _ = hyper::server::conn::http1::Builder::new()
                                        .timer(TokioTimer::new())
                                        .keep_alive(true)
                                        .serve_connection(TokioIo::new(tcp), svc)
                                        .await;
                                });
                            }
                        }),
                    );
                }
                Err(e) => tracing::warn!("NodePort {port}: cannot listen on {addr}: {e}"),
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn forward(
    shared: &Shared,
    services: &reflector::Store<Service>,
    endpoints: &reflector::Store<Endpoints>,
    rr: &AtomicUsize,
    node_port: u16,
    req: Request<hyper::body::Incoming>,
) -> Response<Body> {
    let found = services.state().into_iter().find_map(|s| {
        let port = s
            .spec
            .as_ref()?
            .ports
            .as_ref()?
            .iter()
            .find(|p| p.node_port == Some(i32::from(node_port)))?
            .clone();
        Some((s, port))
    });
    let Some((svc, port)) = found else {
        return text(StatusCode::SERVICE_UNAVAILABLE, "no service on this port\n");
    };
    let (ns, name) = (
        svc.metadata.namespace.clone().unwrap_or_default(),
        svc.metadata.name.clone().unwrap_or_default(),
    );
    let ep = endpoints.state().into_iter().find(|e| {
        e.metadata.namespace.as_deref() == Some(ns.as_str())
            && e.metadata.name.as_deref() == Some(name.as_str())
    });
    let mut backends: Vec<(String, u16)> = Vec::new();
    for subset in ep.and_then(|e| e.subsets.clone()).unwrap_or_default() {
        let ports = subset.ports.unwrap_or_default();
        let target = ports
            .iter()
            .find(|p| p.name == port.name)
            .or(ports.first())
            .map(|p| p.port as u16);
        let Some(target) = target else { continue };
        for a in subset.addresses.unwrap_or_default() {
            backends.push((a.ip, target));
        }
    }
    if backends.is_empty() {
        return text(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("no ready endpoints for service {ns}/{name}\n"),
        );
    }
    let (ip, target_port) = backends[rr.fetch_add(1, Ordering::Relaxed) % backends.len()].clone();
    match shared.http.get(&ip, target_port) {
        Some(t) => serve(t, req).await,
        None => text(
            StatusCode::BAD_GATEWAY,
            format!("endpoint {ip}:{target_port} is not an HTTP workload on this node\n"),
        ),
    }
}

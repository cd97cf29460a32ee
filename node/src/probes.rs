//! Container probes, as the kubelet runs them: a startup probe first (the
//! others wait for it; failing it restarts the container), then liveness
//! (failing it restarts the container) and readiness (the container's
//! `ready`, and so the pod's endpoints), each on the schedule its timing
//! fields give, each result counted against its thresholds.
//!
//! An `httpGet` on an HTTP component is served in-process by a fresh
//! instance, as the proxy serves requests (no socket); on a guest that
//! listens with `wasi:sockets` it is a real HTTP/1.1 request, and a
//! `tcpSocket` a real connection. A `grpc` probe is gRPC's health check
//! (`grpc.health.v1.Health/Check`), in-process or over HTTP/2 to the
//! guest's listener; an `exec` probe runs its command in the container's
//! sandbox as `kubectl exec` does, and passes when it exits 0.
//!
//! May import: nothing of the agent's; the HTTP components it probes in
//! process come as [`InProcess`], the commands it runs as [`Commands`].

use std::net::IpAddr;
use std::time::Duration;

use bytes::Bytes;
use futures::future::BoxFuture;
use http_body_util::{BodyExt, Full};
use serde_json::Value;
use tokio::time::Instant;

/// A probe's request, as the node sends it.
pub(crate) type ProbeRequest = http::Request<Full<Bytes>>;

/// What a probe's request was answered.
#[derive(Debug, Default)]
pub(crate) struct Answer {
    pub status: http::StatusCode,
    /// The body, when asked for (at most [`MAX_BODY`]).
    pub body: Bytes,
    /// `grpc-status`, from the headers or the trailers.
    pub grpc_status: Option<String>,
}

/// The most of a response's body a probe reads.
pub(crate) const MAX_BODY: usize = 10 * 1024;

/// Reads a probe's response: its status, and its body and `grpc-status`
/// when `read_body`.
pub(crate) async fn answer<B>(resp: http::Response<B>, read_body: bool) -> Result<Answer, String>
where
    B: hyper::body::Body<Data = Bytes> + Unpin,
    B::Error: std::fmt::Display,
{
    let status = resp.status();
    let grpc = |h: &http::HeaderMap| {
        h.get("grpc-status")
            .and_then(|v| v.to_str().ok())
            .map(String::from)
    };
    let mut grpc_status = grpc(resp.headers());
    let mut body = Vec::new();
    if read_body {
        let mut b = resp.into_body();
        while let Some(frame) = b.frame().await {
            let frame = frame.map_err(|e| e.to_string())?;
            match frame.into_data() {
                Ok(d) => {
                    let room = MAX_BODY.saturating_sub(body.len());
                    body.extend_from_slice(&d[..d.len().min(room)]);
                }
                Err(frame) => {
                    if let Some(t) = frame.trailers_ref() {
                        grpc_status = grpc_status.or_else(|| grpc(t));
                    }
                }
            }
        }
    }
    Ok(Answer {
        status,
        body: body.into(),
        grpc_status,
    })
}

/// Commands run in the probed container (`exec` probes and hooks).
pub(crate) trait Commands: Send + Sync {
    /// Runs `argv` in the container to its end: its exit code and its
    /// output (stdout and stderr as they came, at most [`MAX_BODY`]).
    fn run(&self, argv: Vec<String>) -> BoxFuture<'_, Result<(i32, String), String>>;
    /// Readies what running `argv` needs (the toolbox compiled on a node's
    /// first use), so that a probe's timeout measures the command alone.
    fn prepare<'a>(&'a self, argv: &'a [String]) -> BoxFuture<'a, ()>;
}

/// The HTTP components a node serves in-process, by pod IP and port.
pub(crate) trait InProcess: Send + Sync {
    /// Whether an instance serves `ip:port`.
    fn serves(&self, ip: &str, port: u16) -> bool;
    /// `req` served by a fresh instance of what serves `ip:port`: the
    /// answer (with its body when `read_body`).
    fn probe(
        &self,
        ip: &str,
        port: u16,
        req: ProbeRequest,
        read_body: bool,
    ) -> BoxFuture<'_, Result<Answer, String>>;
}

/// Which probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Startup,
    Liveness,
    Readiness,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Startup => "Startup",
            Kind::Liveness => "Liveness",
            Kind::Readiness => "Readiness",
        }
    }

    fn field(self) -> &'static str {
        match self {
            Kind::Startup => "startupProbe",
            Kind::Liveness => "livenessProbe",
            Kind::Readiness => "readinessProbe",
        }
    }
}

/// What a probe does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Check {
    Http {
        https: bool,
        host: Option<String>,
        port: u16,
        path: String,
        headers: Vec<(String, String)>,
    },
    Tcp {
        host: Option<String>,
        port: u16,
    },
    /// gRPC's health check of `service` (empty: the server as a whole).
    Grpc {
        port: u16,
        service: String,
    },
    /// A command in the container.
    Exec(Vec<String>),
    /// A probe that cannot run as written: why, reported as its failure.
    Invalid(String),
}

/// One probe of a container, with its timing.
#[derive(Debug, Clone)]
pub(crate) struct Probe {
    pub kind: Kind,
    pub check: Check,
    pub initial_delay: Duration,
    pub period: Duration,
    pub timeout: Duration,
    pub success_threshold: u32,
    pub failure_threshold: u32,
    /// The probe's own `terminationGracePeriodSeconds`, for the restart it
    /// causes.
    pub grace: Option<Duration>,
}

/// A container's probes.
#[derive(Debug, Clone, Default)]
pub(crate) struct Probes {
    pub startup: Option<Probe>,
    pub liveness: Option<Probe>,
    pub readiness: Option<Probe>,
}

fn seconds(probe: &Value, field: &str, default: u64, least: u64) -> Duration {
    let n = probe
        .get(field)
        .and_then(Value::as_u64)
        .unwrap_or(default)
        .max(least);
    Duration::from_secs(n)
}

fn count(probe: &Value, field: &str, default: u32) -> u32 {
    probe
        .get(field)
        .and_then(Value::as_u64)
        .and_then(|n| u32::try_from(n).ok())
        .unwrap_or(default)
        .max(1)
}

/// A probe's port: a number, or the name of one of the container's ports.
fn port(container: &Value, port: Option<&Value>) -> Result<u16, String> {
    match port {
        Some(Value::Number(n)) => n
            .as_u64()
            .and_then(|n| u16::try_from(n).ok())
            .filter(|n| *n > 0)
            .ok_or_else(|| format!("invalid port number: {n}")),
        Some(Value::String(name)) => {
            if let Ok(n) = name.parse::<u16>() {
                return Ok(n);
            }
            container
                .get("ports")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .find(|p| p.get("name").and_then(Value::as_str) == Some(name))
                .and_then(|p| p.get("containerPort").and_then(Value::as_u64))
                .and_then(|n| u16::try_from(n).ok())
                .ok_or_else(|| {
                    format!(
                        "couldn't find port: {name} in {}",
                        container_name(container)
                    )
                })
        }
        _ => Err("the probe names no port".into()),
    }
}

fn container_name(container: &Value) -> &str {
    container
        .get("name")
        .and_then(Value::as_str)
        .unwrap_or_default()
}

/// What a probe or lifecycle handler (`httpGet`, `tcpSocket`, `exec`,
/// `grpc`) of `container` does.
pub(crate) fn check(container: &Value, probe: &Value) -> Check {
    let host = |h: &Value| {
        h.get("host")
            .and_then(Value::as_str)
            .filter(|h| !h.is_empty())
            .map(String::from)
    };
    if let Some(h) = probe.get("httpGet") {
        let port = match port(container, h.get("port")) {
            Ok(p) => p,
            Err(e) => return Check::Invalid(e),
        };
        let path = h.get("path").and_then(Value::as_str).unwrap_or("/");
        let headers = h
            .get("httpHeaders")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|kv| {
                Some((
                    kv.get("name")?.as_str()?.to_string(),
                    kv.get("value")?.as_str().unwrap_or_default().to_string(),
                ))
            })
            .collect();
        return Check::Http {
            https: h.get("scheme").and_then(Value::as_str) == Some("HTTPS"),
            host: host(h),
            port,
            path: if path.starts_with('/') {
                path.to_string()
            } else {
                format!("/{path}")
            },
            headers,
        };
    }
    if let Some(t) = probe.get("tcpSocket") {
        return match port(container, t.get("port")) {
            Ok(port) => Check::Tcp {
                host: host(t),
                port,
            },
            Err(e) => Check::Invalid(e),
        };
    }
    if let Some(e) = probe.get("exec") {
        let command: Vec<String> = e
            .get("command")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|a| a.as_str().map(String::from))
            .collect();
        return if command.is_empty() {
            Check::Invalid("the exec handler has no command".into())
        } else {
            Check::Exec(command)
        };
    }
    if let Some(g) = probe.get("grpc") {
        // grpc ports are numbers only.
        return match g
            .get("port")
            .and_then(Value::as_u64)
            .and_then(|p| u16::try_from(p).ok())
        {
            Some(port) if port > 0 => Check::Grpc {
                port,
                service: g
                    .get("service")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string(),
            },
            _ => Check::Invalid("the grpc probe needs a port number".into()),
        };
    }
    Check::Invalid("the probe has no handler".into())
}

impl Probe {
    /// The probe of `kind` a container's spec asks for.
    fn of(kind: Kind, container: &Value) -> Option<Probe> {
        let p = container.get(kind.field()).filter(|p| p.is_object())?;
        // Liveness and startup probes count one success as enough
        // (Kubernetes refuses any other value for them).
        let success_threshold = match kind {
            Kind::Readiness => count(p, "successThreshold", 1),
            _ => 1,
        };
        Some(Probe {
            kind,
            check: check(container, p),
            initial_delay: seconds(p, "initialDelaySeconds", 0, 0),
            period: seconds(p, "periodSeconds", 10, 1),
            timeout: seconds(p, "timeoutSeconds", 1, 1),
            success_threshold,
            failure_threshold: count(p, "failureThreshold", 3),
            grace: p
                .get("terminationGracePeriodSeconds")
                .and_then(Value::as_u64)
                .map(Duration::from_secs),
        })
    }
}

impl Probes {
    /// The probes of a container's spec.
    pub fn of(container: &Value) -> Self {
        Self {
            startup: Probe::of(Kind::Startup, container),
            liveness: Probe::of(Kind::Liveness, container),
            readiness: Probe::of(Kind::Readiness, container),
        }
    }

    /// The grace period a restart by the probe of `kind` gives, when the
    /// probe sets its own.
    pub fn grace(&self, kind: Kind) -> Option<Duration> {
        match kind {
            Kind::Startup => self.startup.as_ref(),
            Kind::Liveness => self.liveness.as_ref(),
            Kind::Readiness => self.readiness.as_ref(),
        }
        .and_then(|p| p.grace)
    }

    /// The container's standing as it starts: started unless a startup
    /// probe must pass first; ready once started, unless a readiness probe
    /// must pass first.
    pub fn at_start(&self) -> Standing {
        let started = self.startup.is_none();
        Standing {
            started,
            ready: started && self.readiness.is_none(),
        }
    }
}

/// What the probes say of a running container.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Standing {
    pub started: bool,
    pub ready: bool,
}

/// A probe's consecutive results and where they leave it.
#[derive(Debug)]
struct Tracker {
    passing: bool,
    successes: u32,
    failures: u32,
}

impl Tracker {
    fn new(passing: bool) -> Self {
        Self {
            passing,
            successes: 0,
            failures: 0,
        }
    }

    /// Counts one result; the new state when it changes.
    fn record(&mut self, ok: bool, probe: &Probe) -> Option<bool> {
        if ok {
            self.failures = 0;
            self.successes = self.successes.saturating_add(1);
        } else {
            self.successes = 0;
            self.failures = self.failures.saturating_add(1);
        }
        let now = if self.passing {
            self.failures < probe.failure_threshold
        } else {
            self.successes >= probe.success_threshold
        };
        (now != self.passing).then(|| {
            self.passing = now;
            now
        })
    }
}

/// Where the probes of one container go.
pub(crate) struct Runner<'a> {
    pub http: &'a dyn InProcess,
    /// Where `exec` handlers run.
    pub commands: &'a dyn Commands,
    /// The pod's IP (the HTTP targets' key).
    pub pod_ip: String,
    /// The address a socket probe connects to when the probe names no
    /// host: the pod's IP where pod IPs are live, else the node's loopback
    /// (guests listen on the node's addresses then).
    pub reach: IpAddr,
    /// The container is an HTTP component served in-process.
    pub in_process: bool,
}

impl Runner<'_> {
    /// Runs one check within `timeout`: `Err` with the kubelet's words
    /// when it fails.
    pub async fn run(&self, check: &Check, timeout: Duration) -> Result<(), String> {
        match check {
            Check::Invalid(why) => Err(why.clone()),
            Check::Exec(argv) => {
                let shown = argv.join(" ");
                match tokio::time::timeout(timeout, self.commands.run(argv.clone())).await {
                    Ok(Ok((0, _))) => Ok(()),
                    Ok(Ok((code, output))) if output.trim().is_empty() => {
                        Err(format!("command '{shown}' exited with {code}"))
                    }
                    Ok(Ok((_, output))) => Err(output),
                    Ok(Err(e)) => Err(e),
                    Err(_) => Err(format!("command \"{shown}\" timed out")),
                }
            }
            Check::Grpc { port, service } => {
                let target = self.reach.to_string();
                let in_process = self.in_process && self.http.serves(&self.pod_ip, *port);
                let req = grpc_request(&target, *port, service)?;
                let answer = tokio::time::timeout(timeout, async {
                    if in_process {
                        self.http.probe(&self.pod_ip, *port, req, true).await
                    } else {
                        h2c(&target, *port, req).await
                    }
                })
                .await
                .map_err(|_| {
                    format!(
                        "timeout: health rpc did not complete within {}s",
                        timeout.as_secs()
                    )
                })?
                .map_err(|e| {
                    format!(
                        "timeout: failed to connect service \"{target}:{port}\" within {}s: {e}",
                        timeout.as_secs()
                    )
                })?;
                grpc_verdict(&answer)
            }
            Check::Tcp { host, port } => {
                let host = host.clone().unwrap_or_else(|| self.reach.to_string());
                if self.in_process && host == self.reach.to_string() {
                    return if self.http.serves(&self.pod_ip, *port) {
                        Ok(())
                    } else {
                        Err(format!(
                            "dial tcp {host}:{port}: connect: connection refused"
                        ))
                    };
                }
                match tokio::time::timeout(
                    timeout,
                    tokio::net::TcpStream::connect((host.as_str(), *port)),
                )
                .await
                {
                    Ok(Ok(_)) => Ok(()),
                    Ok(Err(e)) => Err(format!(
                        "dial tcp {host}:{port}: connect: {}",
                        dial_error(&e)
                    )),
                    Err(_) => Err(format!("dial tcp {host}:{port}: i/o timeout")),
                }
            }
            Check::Http {
                https,
                host,
                port,
                path,
                headers,
            } => {
                let target = host.clone().unwrap_or_else(|| self.reach.to_string());
                let scheme = if *https { "https" } else { "http" };
                let url = format!("{scheme}://{target}:{port}{path}");
                let mut req = http::Request::get(path.as_str())
                    .header(http::header::HOST, format!("{target}:{port}"))
                    .header(http::header::USER_AGENT, "kube-probe/1.32")
                    .header(http::header::ACCEPT, "*/*");
                for (k, v) in headers {
                    req = req.header(k.as_str(), v.as_str());
                }
                let req = req
                    .body(Full::<Bytes>::default())
                    .map_err(|e| format!("Get \"{url}\": {e}"))?;
                let in_process = self.in_process && host.is_none();
                let answer = tokio::time::timeout(timeout, async {
                    if in_process {
                        self.http
                            .probe(&self.pod_ip, *port, req, false)
                            .await
                            .map(|a| a.status)
                    } else if *https {
                        Err("HTTPS probes reach HTTP components only".into())
                    } else {
                        http_get(&target, *port, req).await
                    }
                })
                .await;
                match answer {
                    Ok(Ok(code)) if (200..400).contains(&code.as_u16()) => Ok(()),
                    Ok(Ok(code)) => Err(format!(
                        "HTTP probe failed with statuscode: {}",
                        code.as_u16()
                    )),
                    Ok(Err(e)) => Err(format!("Get \"{url}\": {e}")),
                    Err(_) => Err(format!(
                        "Get \"{url}\": context deadline exceeded (Client.Timeout exceeded while awaiting headers)"
                    )),
                }
            }
        }
    }
}

/// A failed connection in the words Go's net package (and so the
/// kubelet's events) uses.
fn dial_error(e: &std::io::Error) -> String {
    use std::io::ErrorKind;
    match e.kind() {
        ErrorKind::ConnectionRefused => "connection refused".into(),
        ErrorKind::TimedOut => "i/o timeout".into(),
        ErrorKind::HostUnreachable => "no route to host".into(),
        ErrorKind::NetworkUnreachable => "network is unreachable".into(),
        _ => e.to_string(),
    }
}

/// gRPC's `Health/Check` request for `service`: one length-prefixed
/// `HealthCheckRequest` (field 1, the service's name).
fn grpc_request(host: &str, port: u16, service: &str) -> Result<ProbeRequest, String> {
    let name = service.as_bytes();
    if name.len() > 127 {
        return Err(format!(
            "the grpc service name {service:?} is longer than 127 bytes"
        ));
    }
    let mut message = Vec::new();
    if !name.is_empty() {
        message.extend([0x0a, name.len() as u8]);
        message.extend_from_slice(name);
    }
    let mut frame = vec![0u8];
    frame.extend((message.len() as u32).to_be_bytes());
    frame.extend(message);
    http::Request::post(format!("http://{host}:{port}/grpc.health.v1.Health/Check"))
        .header(http::header::CONTENT_TYPE, "application/grpc")
        .header(http::header::TE, "trailers")
        .header(http::header::USER_AGENT, "kube-probe/1.32")
        .body(Full::new(Bytes::from(frame)))
        .map_err(|e| e.to_string())
}

/// Whether a health check's answer says SERVING, in the kubelet's words
/// when it does not.
fn grpc_verdict(a: &Answer) -> Result<(), String> {
    match a.grpc_status.as_deref() {
        Some("0") => {}
        Some(code) => {
            return Err(format!(
                "rpc error: code = {} desc = health rpc failed",
                grpc_code(code)
            ));
        }
        None if !a.status.is_success() => {
            return Err(format!(
                "rpc error: code = Unknown desc = unexpected HTTP status code received from server: {}",
                a.status.as_u16()
            ));
        }
        None => {
            return Err("rpc error: code = Internal desc = the server sent no grpc-status".into());
        }
    }
    // HealthCheckResponse { status (field 1, varint) }.
    let status = match a.body.get(5..) {
        Some([0x08, s, ..]) => *s,
        _ => 0,
    };
    match status {
        1 => Ok(()),
        2 => Err("service unhealthy (responded with \"NOT_SERVING\")".into()),
        3 => Err("service unhealthy (responded with \"SERVICE_UNKNOWN\")".into()),
        _ => Err("service unhealthy (responded with \"UNKNOWN\")".into()),
    }
}

/// A gRPC status code's name.
fn grpc_code(code: &str) -> &str {
    const NAMES: [&str; 17] = [
        "OK",
        "Canceled",
        "Unknown",
        "InvalidArgument",
        "DeadlineExceeded",
        "NotFound",
        "AlreadyExists",
        "PermissionDenied",
        "ResourceExhausted",
        "FailedPrecondition",
        "Aborted",
        "OutOfRange",
        "Unimplemented",
        "Internal",
        "Unavailable",
        "DataLoss",
        "Unauthenticated",
    ];
    code.parse::<usize>()
        .ok()
        .and_then(|n| NAMES.get(n).copied())
        .unwrap_or(code)
}

/// One gRPC call over a new HTTP/2 connection without TLS (as the
/// kubelet's probe makes it).
async fn h2c(host: &str, port: u16, req: ProbeRequest) -> Result<Answer, String> {
    let tcp = tokio::net::TcpStream::connect((host, port))
        .await
        .map_err(|e| format!("dial tcp {host}:{port}: connect: {}", dial_error(&e)))?;
    let (mut send, conn) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(tcp),
    )
    .await
    .map_err(|e| e.to_string())?;
    let conn = tokio::spawn(conn);
    let answer = match send.send_request(req).await {
        Ok(resp) => answer(resp, true).await,
        Err(e) => Err(e.to_string()),
    };
    conn.abort();
    answer
}

/// One HTTP/1.1 GET over a new connection.
async fn http_get(host: &str, port: u16, req: ProbeRequest) -> Result<http::StatusCode, String> {
    let tcp = tokio::net::TcpStream::connect((host, port))
        .await
        .map_err(|e| format!("dial tcp {host}:{port}: connect: {}", dial_error(&e)))?;
    let (mut send, conn) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tcp))
        .await
        .map_err(|e| e.to_string())?;
    let conn = tokio::spawn(conn);
    let answer = send.send_request(req).await.map_err(|e| e.to_string());
    conn.abort();
    answer.map(|r| r.status())
}

/// Runs a running container's probes: reports its standing as it changes
/// and records the kubelet's events; returns which probe failed when the
/// container must be restarted (startup or liveness), or never.
pub(crate) async fn supervise<F: Future<Output = ()>>(
    probes: &Probes,
    runner: &Runner<'_>,
    container: &str,
    mut report: impl FnMut(Standing) -> F,
    event: impl Fn(&'static str, &str, &str),
) -> Kind {
    let start = Instant::now();
    let mut standing = probes.at_start();
    report(standing).await;
    for p in [&probes.startup, &probes.liveness, &probes.readiness]
        .into_iter()
        .flatten()
    {
        if let Check::Exec(argv) = &p.check {
            runner.commands.prepare(argv).await;
        }
    }
    let failed = |p: &Probe, why: &str| {
        event(
            "Warning",
            "Unhealthy",
            &format!("{} probe failed: {why}", p.kind.name()),
        );
    };
    let killing = |p: &Probe| {
        let what = format!(
            "Container {container} failed {} probe, will be restarted",
            p.kind.name().to_lowercase()
        );
        event("Normal", "Killing", &what);
        p.kind
    };
    if let Some(p) = &probes.startup {
        let mut tracker = Tracker::new(false);
        tokio::time::sleep_until(start + p.initial_delay).await;
        loop {
            let result = runner.run(&p.check, p.timeout).await;
            if let Err(why) = &result {
                failed(p, why);
            }
            if tracker.record(result.is_ok(), p) == Some(true) {
                break;
            }
            if tracker.failures >= p.failure_threshold {
                return killing(p);
            }
            tokio::time::sleep(p.period).await;
        }
        standing = Standing {
            started: true,
            ready: probes.readiness.is_none(),
        };
        report(standing).await;
    }
    // Liveness and readiness, each on its own schedule from the container's
    // start (and not before the startup probe passed).
    let now = Instant::now();
    let first = |p: &Option<Probe>| p.as_ref().map(|p| (start + p.initial_delay).max(now));
    let (mut next_live, mut next_ready) = (first(&probes.liveness), first(&probes.readiness));
    let (mut live, mut ready) = (Tracker::new(true), Tracker::new(false));
    loop {
        let Some(wake) = [next_live, next_ready].into_iter().flatten().min() else {
            return std::future::pending().await;
        };
        tokio::time::sleep_until(wake).await;
        let now = Instant::now();
        if let (Some(p), Some(at)) = (&probes.liveness, next_live)
            && at <= now
        {
            let result = runner.run(&p.check, p.timeout).await;
            if let Err(why) = &result {
                failed(p, why);
            }
            if live.record(result.is_ok(), p) == Some(false) {
                return killing(p);
            }
            next_live = Some(at + p.period);
        }
        if let (Some(p), Some(at)) = (&probes.readiness, next_ready)
            && at <= now
        {
            let result = runner.run(&p.check, p.timeout).await;
            if let Err(why) = &result {
                failed(p, why);
            }
            if let Some(now_ready) = ready.record(result.is_ok(), p) {
                standing.ready = now_ready;
                report(standing).await;
            }
            next_ready = Some(at + p.period);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn probe(kind: Kind, container: Value) -> Probe {
        Probe::of(kind, &container).expect("a probe")
    }

    #[test]
    fn probes_take_kubernetes_defaults_and_resolve_named_ports() {
        let c = json!({
            "name": "web",
            "ports": [{"name": "http", "containerPort": 8080}],
            "readinessProbe": {"httpGet": {"path": "healthz", "port": "http",
                "httpHeaders": [{"name": "X-Probe", "value": "1"}]}},
            "livenessProbe": {"tcpSocket": {"port": 9000}, "periodSeconds": 3,
                "failureThreshold": 5, "successThreshold": 4, "timeoutSeconds": 0},
        });
        let r = probe(Kind::Readiness, c.clone());
        assert_eq!(
            r.check,
            Check::Http {
                https: false,
                host: None,
                port: 8080,
                path: "/healthz".into(),
                headers: vec![("X-Probe".into(), "1".into())],
            }
        );
        assert_eq!(
            (r.initial_delay, r.period, r.timeout),
            (
                Duration::ZERO,
                Duration::from_secs(10),
                Duration::from_secs(1)
            )
        );
        assert_eq!((r.success_threshold, r.failure_threshold), (1, 3));
        let l = probe(Kind::Liveness, c.clone());
        assert_eq!(
            l.check,
            Check::Tcp {
                host: None,
                port: 9000
            }
        );
        assert_eq!(l.period, Duration::from_secs(3));
        assert_eq!(l.timeout, Duration::from_secs(1), "at least a second");
        assert_eq!(
            (l.success_threshold, l.failure_threshold),
            (1, 5),
            "liveness needs one success"
        );
        assert!(Probe::of(Kind::Startup, &c).is_none());
    }

    #[test]
    fn unknown_ports_and_missing_handlers_fail_with_a_reason() {
        let c = json!({"name": "web",
            "readinessProbe": {"httpGet": {"port": "admin"}},
            "livenessProbe": {"periodSeconds": 1},
            "startupProbe": {"exec": {"command": ["true"]}}});
        assert_eq!(
            probe(Kind::Readiness, c.clone()).check,
            Check::Invalid("couldn't find port: admin in web".into())
        );
        assert_eq!(
            probe(Kind::Liveness, c.clone()).check,
            Check::Invalid("the probe has no handler".into())
        );
        assert_eq!(
            probe(Kind::Startup, c).check,
            Check::Exec(vec!["true".into()])
        );
    }

    #[test]
    fn thresholds_count_consecutive_results() {
        let c = json!({"readinessProbe": {"tcpSocket": {"port": 1},
            "successThreshold": 2, "failureThreshold": 3}});
        let p = probe(Kind::Readiness, c);
        let mut t = Tracker::new(false);
        assert_eq!(t.record(true, &p), None, "one success of two");
        assert_eq!(t.record(false, &p), None);
        assert_eq!(t.record(true, &p), None, "the count starts again");
        assert_eq!(t.record(true, &p), Some(true));
        assert_eq!(t.record(false, &p), None);
        assert_eq!(t.record(false, &p), None);
        assert_eq!(t.record(true, &p), None, "a success breaks the failures");
        for _ in 0..2 {
            assert_eq!(t.record(false, &p), None);
        }
        assert_eq!(t.record(false, &p), Some(false), "the third in a row");
    }

    #[test]
    fn a_container_starts_ready_only_without_startup_or_readiness_probes() {
        let none = Probes::of(&json!({}));
        assert_eq!(
            none.at_start(),
            Standing {
                started: true,
                ready: true
            }
        );
        let ready = Probes::of(&json!({"readinessProbe": {"tcpSocket": {"port": 1}}}));
        assert_eq!(
            ready.at_start(),
            Standing {
                started: true,
                ready: false
            }
        );
        let startup = Probes::of(&json!({"startupProbe": {"tcpSocket": {"port": 1}}}));
        assert_eq!(
            startup.at_start(),
            Standing {
                started: false,
                ready: false
            }
        );
    }
}

//! A `wasi:http/proxy` component: answers every request with a greeting,
//! the request's method and path, and the pod that served it (`HOSTNAME`, which
//! the node sets to the pod's name).
//!
//! `GET /fetch?http://host:port/path` instead makes that outgoing request
//! and answers with its status, or with the error the host gave.
//! `GET /sleep?MS` answers after MS milliseconds. `GET /status?CODE`
//! answers with that status; `GET /exists?PATH` with 200 when the file at
//! PATH (in a volume the pod mounts) exists, 503 when it does not: health
//! endpoints for probes.
//!
//! `POST /grpc.health.v1.Health/Check` is gRPC's health check (what a
//! `grpc` probe calls): the empty service is SERVING; a service named by a
//! file path is SERVING while that file exists, NOT_SERVING when it does
//! not.

use wasip2::http::outgoing_handler;
use wasip2::http::types::{
    Fields, IncomingRequest, Method, OutgoingBody, OutgoingRequest, OutgoingResponse,
    ResponseOutparam, Scheme,
};

/// Sends `GET url` and returns the response status.
fn fetch(url: &str) -> Result<u16, String> {
    let rest = url.strip_prefix("http://").ok_or("only http:// URLs")?;
    let (authority, path) = match rest.split_once('/') {
        Some((a, p)) => (a, format!("/{p}")),
        None => (rest, "/".to_string()),
    };
    let request = OutgoingRequest::new(Fields::new());
    let _ = request.set_scheme(Some(&Scheme::Http));
    let _ = request.set_authority(Some(authority));
    let _ = request.set_path_with_query(Some(&path));
    let body = request.body().map_err(|_| "request body")?;
    let pending = outgoing_handler::handle(request, None).map_err(|e| format!("{e:?}"))?;
    let _ = OutgoingBody::finish(body, None);
    pending.subscribe().block();
    match pending.get() {
        Some(Ok(Ok(response))) => Ok(response.status()),
        Some(Ok(Err(e))) => Err(format!("{e:?}")),
        _ => Err("no response".into()),
    }
}

/// The request's body, at most `limit` bytes.
fn read_body(request: IncomingRequest, limit: usize) -> Vec<u8> {
    let mut data = Vec::new();
    let Ok(body) = request.consume() else {
        return data;
    };
    if let Ok(stream) = body.stream() {
        while data.len() < limit {
            match stream.blocking_read((limit - data.len()) as u64) {
                Ok(chunk) => data.extend(chunk),
                Err(_) => break,
            }
        }
    }
    data
}

/// Answers a gRPC health check: the service is the request message's
/// field 1 (`HealthCheckRequest.service`).
fn health_check(request: IncomingRequest, response_out: ResponseOutparam) {
    let frame = read_body(request, 4096);
    let message = frame.get(5..).unwrap_or_default();
    let service = match message {
        [0x0a, len, rest @ ..] => {
            String::from_utf8_lossy(rest.get(..usize::from(*len)).unwrap_or_default()).into_owned()
        }
        _ => String::new(),
    };
    // HealthCheckResponse.status: 1 SERVING, 2 NOT_SERVING.
    let status = if service.is_empty() || std::fs::metadata(&service).is_ok() {
        1
    } else {
        2
    };
    let headers = Fields::new();
    let _ = headers.set("content-type", &[b"application/grpc".to_vec()]);
    let response = OutgoingResponse::new(headers);
    let Ok(body) = response.body() else { return };
    ResponseOutparam::set(response_out, Ok(response));
    if let Ok(out) = body.write() {
        let _ = out.blocking_write_and_flush(&[0, 0, 0, 0, 2, 0x08, status]);
    }
    let trailers = Fields::new();
    let _ = trailers.set("grpc-status", &[b"0".to_vec()]);
    let _ = OutgoingBody::finish(body, Some(trailers));
}

struct Hello;

impl wasip2::exports::http::incoming_handler::Guest for Hello {
    fn handle(request: IncomingRequest, response_out: ResponseOutparam) {
        let path = request.path_with_query().unwrap_or_else(|| "/".into());
        if path == "/grpc.health.v1.Health/Check" {
            return health_check(request, response_out);
        }
        let method = match request.method() {
            Method::Get => "GET".to_string(),
            Method::Head => "HEAD".to_string(),
            Method::Post => "POST".to_string(),
            Method::Put => "PUT".to_string(),
            Method::Delete => "DELETE".to_string(),
            Method::Patch => "PATCH".to_string(),
            Method::Options => "OPTIONS".to_string(),
            other => format!("{other:?}"),
        };
        let greeting = std::env::var("GREETING").unwrap_or_else(|_| "Hello from shoal".into());
        let pod = std::env::var("HOSTNAME").unwrap_or_else(|_| "unknown".into());
        if let Some(ms) = path
            .strip_prefix("/sleep?")
            .and_then(|ms| ms.parse::<u64>().ok())
        {
            std::thread::sleep(std::time::Duration::from_millis(ms));
        }
        let mut status = 200;
        if let Some(code) = path
            .strip_prefix("/status?")
            .and_then(|c| c.parse::<u16>().ok())
        {
            status = code;
        }
        if let Some(file) = path.strip_prefix("/exists?")
            && std::fs::metadata(file).is_err()
        {
            status = 503;
        }
        let body_text = match path.strip_prefix("/fetch?") {
            Some(url) => match fetch(url) {
                Ok(status) => format!("fetch {url}: status {status}\n"),
                Err(e) => format!("fetch {url}: error: {e}\n"),
            },
            None => format!("{greeting}! {method} {path} (served by {pod})\n"),
        };
        let headers = Fields::new();
        let _ = headers.set("content-type", &[b"text/plain; charset=utf-8".to_vec()]);
        let response = OutgoingResponse::new(headers);
        let _ = response.set_status_code(status);
        let Ok(body) = response.body() else { return };
        ResponseOutparam::set(response_out, Ok(response));
        if let Ok(out) = body.write() {
            let _ = out.blocking_write_and_flush(body_text.as_bytes());
        }
        let _ = OutgoingBody::finish(body, None);
    }
}

wasip2::http::proxy::export!(Hello);

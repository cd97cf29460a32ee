//! The guestbook's frontend: a `wasi:http/proxy` component that keeps
//! nothing itself and calls the backend Service by its DNS name (`BACKEND`,
//! `http://backend` by default) for every request.
//!
//! `GET /` shows the book; `POST /` with a body signs it.

use wasip2::http::outgoing_handler;
use wasip2::http::types::{
    Fields, IncomingRequest, Method, OutgoingBody, OutgoingRequest, OutgoingResponse,
    ResponseOutparam, Scheme,
};

/// Sends `method` to the backend's `/entries` with `body`, and returns the
/// status and body of its answer.
fn call_backend(method: Method, body: &[u8]) -> Result<(u16, String), String> {
    let base = std::env::var("BACKEND").unwrap_or_else(|_| "http://backend".into());
    let authority = base
        .strip_prefix("http://")
        .ok_or("BACKEND must be an http:// URL")?;
    let authority = authority.trim_end_matches('/');
    let headers = Fields::new();
    if !body.is_empty() {
        let _ = headers.set("content-length", &[body.len().to_string().into_bytes()]);
    }
    let request = OutgoingRequest::new(headers);
    let _ = request.set_method(&method);
    let _ = request.set_scheme(Some(&Scheme::Http));
    let _ = request.set_authority(Some(authority));
    let _ = request.set_path_with_query(Some("/entries"));
    let out = request.body().map_err(|_| "request body")?;
    let pending = outgoing_handler::handle(request, None).map_err(|e| format!("{e:?}"))?;
    {
        let stream = out.write().map_err(|_| "request stream")?;
        for chunk in body.chunks(4096) {
            stream
                .blocking_write_and_flush(chunk)
                .map_err(|e| format!("{e:?}"))?;
        }
    }
    let _ = OutgoingBody::finish(out, None);
    pending.subscribe().block();
    let response = match pending.get() {
        Some(Ok(Ok(r))) => r,
        Some(Ok(Err(e))) => return Err(format!("{e:?}")),
        _ => return Err("no response".into()),
    };
    let status = response.status();
    let incoming = response.consume().map_err(|_| "response body")?;
    let stream = incoming.stream().map_err(|_| "response stream")?;
    let mut text = Vec::new();
    while let Ok(chunk) = stream.blocking_read(64 * 1024) {
        text.extend_from_slice(&chunk);
    }
    Ok((status, String::from_utf8_lossy(&text).into_owned()))
}

/// The request's body, at most 1 KiB of it.
fn read_body(request: &IncomingRequest) -> Vec<u8> {
    let Ok(body) = request.consume() else {
        return Vec::new();
    };
    let Ok(stream) = body.stream() else {
        return Vec::new();
    };
    let mut out = Vec::new();
    while out.len() <= 1024 {
        match stream.blocking_read(1024) {
            Ok(chunk) => out.extend_from_slice(&chunk),
            Err(_) => break,
        }
    }
    out.truncate(1024);
    out
}

struct Frontend;

impl wasip2::exports::http::incoming_handler::Guest for Frontend {
    fn handle(request: IncomingRequest, response_out: ResponseOutparam) {
        let pod = std::env::var("HOSTNAME").unwrap_or_else(|_| "unknown".into());
        let (status, text) = match request.method() {
            Method::Post => {
                let body = read_body(&request);
                match call_backend(Method::Post, &body) {
                    Ok((s, t)) => (s, format!("signed: {t}")),
                    Err(e) => (502, format!("the backend failed: {e}\n")),
                }
            }
            _ => match call_backend(Method::Get, &[]) {
                Ok((s, t)) => (s, format!("Guestbook (frontend {pod})\n{t}")),
                Err(e) => (502, format!("the backend failed: {e}\n")),
            },
        };
        let headers = Fields::new();
        let _ = headers.set("content-type", &[b"text/plain; charset=utf-8".to_vec()]);
        let response = OutgoingResponse::new(headers);
        let _ = response.set_status_code(status);
        let Ok(body) = response.body() else { return };
        ResponseOutparam::set(response_out, Ok(response));
        if let Ok(out) = body.write() {
            let _ = out.blocking_write_and_flush(text.as_bytes());
        }
        let _ = OutgoingBody::finish(body, None);
    }
}

wasip2::http::proxy::export!(Frontend);

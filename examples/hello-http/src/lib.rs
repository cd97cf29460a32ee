//! A `wasi:http/proxy` component: answers every request with a greeting,
//! the request's method and path, and the pod that served it (`HOSTNAME`, which
//! the node sets to the pod's name).

use wasip2::http::types::{Fields, Method, IncomingRequest, OutgoingBody, OutgoingResponse, ResponseOutparam};

struct Hello;

impl wasip2::exports::http::incoming_handler::Guest for Hello {
    fn handle(request: IncomingRequest, response_out: ResponseOutparam) {
        let path = request.path_with_query().unwrap_or_else(|| "/".into());
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
        let body_text = format!("{greeting}! {method} {path} (served by {pod})\n");
        let headers = Fields::new();
        let _ = headers.set("content-type", &[b"text/plain; charset=utf-8".to_vec()]);
        let response = OutgoingResponse::new(headers);
        let _ = response.set_status_code(200);
        let Ok(body) = response.body() else { return };
        ResponseOutparam::set(response_out, Ok(response));
        if let Ok(out) = body.write() {
            let _ = out.blocking_write_and_flush(body_text.as_bytes());
        }
        let _ = OutgoingBody::finish(body, None);
    }
}

wasip2::http::proxy::export!(Hello);

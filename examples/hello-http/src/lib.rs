//! A `wasi:http/proxy` component: answers every request with a greeting,
//! the request's method and path, and the pod that served it (`POD_NAME`,
//! from the downward API, or the instance's hostname variable).

use wasip2::http::types::{Fields, IncomingRequest, OutgoingBody, OutgoingResponse, ResponseOutparam};

struct Hello;

impl wasip2::exports::http::incoming_handler::Guest for Hello {
    fn handle(request: IncomingRequest, response_out: ResponseOutparam) {
        let path = request.path_with_query().unwrap_or_else(|| "/".into());
        let method = format!("{:?}", request.method()).to_uppercase();
        let greeting = std::env::var("GREETING").unwrap_or_else(|_| "Hello from shoal".into());
        let body_text = format!("{greeting}! {method} {path}\n");
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

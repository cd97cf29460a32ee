//! `pods/{name}/log`: proxied to the node agent serving the pod.

use axum::body::Body;
use http::{Response, StatusCode, header};
use http_body_util::BodyExt;
use serde_json::Value;

use super::{ApiState, Query, kubelet};
use shoal_machinery::error::{ApiError, Result};
use shoal_machinery::meta;

pub(super) async fn proxy(state: &ApiState, pod: &Value, q: &Query) -> Result<Response<Body>> {
    let name = meta::name(pod);
    let container = kubelet::container(pod, q)?;
    let query = {
        let mut query = form_urlencoded::Serializer::new(String::new());
        for k in [
            "follow",
            "timestamps",
            "tailLines",
            "previous",
            "sinceSeconds",
            "limitBytes",
        ] {
            if let Some(v) = q.get(k) {
                query.append_pair(k, v);
            }
        }
        query.finish()
    };
    let path = format!(
        "/containerLogs/{}/{}/{}?{}",
        meta::namespace(pod),
        name,
        container,
        query
    );
    let (mut sender, addr) = kubelet::connect(state, pod, "logs").await?;
    let resp = kubelet::get(&mut sender, &addr, &path)
        .await?
        .map_err(|e| ApiError::unavailable(format!("cannot reach the node for logs: {e}")))?;
    let status = resp.status();
    if status != StatusCode::OK {
        let body = resp
            .into_body()
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        return Err(ApiError {
            code: status.as_u16(),
            reason: "BadRequest",
            message: String::from_utf8_lossy(&body).trim().to_string(),
            details: None,
        });
    }
    let mut out = Response::new(Body::new(resp.into_body()));
    out.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/plain"),
    );
    Ok(out)
}

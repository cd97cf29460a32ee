//! The `pods/binding` subresource: a pod's placement on a node, written by
//! the scheduler and by clients that bind pods themselves.

use serde_json::json;

use crate::objects::Objects;
use crate::resources;
use shoal_machinery::conditions::set_condition;
use shoal_machinery::error::{ApiError, Result};
use shoal_machinery::meta::str_at;

/// Binds a pod to a node (sets `spec.nodeName` and the PodScheduled condition).
pub async fn bind(objects: &Objects, ns: &str, name: &str, node: &str) -> Result<()> {
    let pods = resources::by_kind("", "Pod").expect("pods are served");
    let cur = objects.get(pods, ns, name)?;
    if str_at(&cur.value, "/spec/nodeName").is_some() {
        return Err(ApiError::conflict("", "pods", name));
    }
    let mut pod = (*cur.value).clone();
    pod["spec"]["nodeName"] = json!(node);
    set_condition(&mut pod, "PodScheduled", "True", None, None);
    objects.replace_at(pods, pod, cur.revision).await?;
    Ok(())
}

//! Service addresses: a ClusterIP and NodePorts unique in the cluster,
//! allocated on create and kept on update.

use serde_json::{Value, json};

use super::Objects;
use crate::resources;
use shoal_machinery::error::{ApiError, Result};
use shoal_machinery::meta::{self, default_key};

impl Objects {
    /// Allocates a ClusterIP and NodePorts the spec leaves open, keeping
    /// those of `previous`.
    pub(super) fn allocate_service(&self, obj: &mut Value, previous: Option<&Value>) -> Result<()> {
        let svc = resources::by_kind("", "Service").expect("services are served");
        let (all, _) = self.store.list(&svc.prefix(None));
        let own_uid = meta::uid(obj).to_string();
        let others: Vec<&Value> = all
            .iter()
            .map(|s| &*s.value)
            .filter(|v| meta::uid(v) != own_uid)
            .collect();
        let spec = obj
            .get_mut("spec")
            .and_then(Value::as_object_mut)
            .ok_or_else(|| ApiError::bad_request("a Service needs a spec"))?;
        let ty = spec
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or("ClusterIP")
            .to_string();
        if ty != "ExternalName" {
            if let Some(ip) = previous
                .and_then(|p| p.pointer("/spec/clusterIP"))
                .filter(|v| v.is_string())
            {
                default_key(spec, "clusterIP", ip.clone());
            }
            let requested = spec
                .get("clusterIP")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string();
            let used: Vec<&str> = others
                .iter()
                .filter_map(|v| meta::str_at(v, "/spec/clusterIP"))
                .collect();
            let ip = if requested.is_empty() {
                (10u32..4094)
                    .map(|n| format!("10.96.{}.{}", n / 256, n % 256))
                    .find(|ip| !used.contains(&ip.as_str()))
                    .ok_or_else(|| ApiError::internal("service IP range exhausted"))?
            } else {
                let unchanged = previous.and_then(|p| meta::str_at(p, "/spec/clusterIP"))
                    == Some(requested.as_str());
                if requested != "None" && !unchanged {
                    let problem = match requested.parse::<std::net::Ipv4Addr>() {
                        Err(_) => Some(
                            "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)"
                                .to_string(),
                        ),
                        Ok(a) if a.octets()[0] != 10 || (a.octets()[1] & 0xf0) != 96 => {
                            Some(format!(
                                "failed to allocate IP {requested}: the provided IP ({requested}) is not in the valid range. The range of valid IPs is 10.96.0.0/12"
                            ))
                        }
                        Ok(_) if used.contains(&requested.as_str()) => Some(format!(
                            "failed to allocate IP {requested}: provided IP is already allocated"
                        )),
                        Ok(_) => None,
                    };
                    if let Some(message) = problem {
                        return Err(invalid(
                            "spec.clusterIPs".into(),
                            format!("Invalid value: []string{{\"{requested}\"}}: {message}"),
                        ));
                    }
                }
                requested
            };
            spec.insert("clusterIP".into(), json!(ip));
            spec.insert("clusterIPs".into(), json!([ip]));
        }
        if ty == "NodePort" || ty == "LoadBalancer" {
            let mut used: Vec<i64> = others
                .iter()
                .flat_map(|v| {
                    v.pointer("/spec/ports")
                        .and_then(Value::as_array)
                        .cloned()
                        .unwrap_or_default()
                })
                .filter_map(|p| p.get("nodePort").and_then(Value::as_i64))
                .collect();
            let prev_ports = previous
                .and_then(|p| p.pointer("/spec/ports"))
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            if let Some(ports) = spec.get_mut("ports").and_then(Value::as_array_mut) {
                for (i, p) in ports
                    .iter_mut()
                    .filter_map(Value::as_object_mut)
                    .enumerate()
                {
                    let keep = prev_ports
                        .iter()
                        .find(|q| q.get("port") == p.get("port"))
                        .and_then(|q| q.get("nodePort"))
                        .cloned();
                    if let Some(k) = keep {
                        default_key(p, "nodePort", k);
                    }
                    match p
                        .get("nodePort")
                        .and_then(Value::as_i64)
                        .filter(|n| *n != 0)
                    {
                        Some(n) if used.contains(&n) => {
                            return Err(invalid(
                                format!("spec.ports[{i}].nodePort"),
                                format!("Invalid value: {n}: provided port is already allocated"),
                            ));
                        }
                        Some(n) => used.push(n),
                        None => {
                            let start = 30000 + rand::random_range(0..2768);
                            let n = (0..2768)
                                .map(|i| 30000 + (start - 30000 + i) % 2768)
                                .find(|n| !used.contains(n))
                                .ok_or_else(|| ApiError::internal("node port range exhausted"))?;
                            used.push(n);
                            p.insert("nodePort".into(), json!(n));
                        }
                    }
                }
            }
        }
        Ok(())
    }
}

/// A Service refused for an address it asks for: 422 with the one cause.
fn invalid(field: String, message: String) -> ApiError {
    ApiError::invalid(
        "",
        "Service",
        "",
        vec![shoal_machinery::error::Cause {
            kind: "FieldValueInvalid",
            field,
            message,
        }],
    )
}

//! ResourceQuota enforcement: a create that would take a namespace past a
//! quota's `hard` amount of anything it counts is refused (403), in
//! kube-apiserver's words, and so is a pod that does not say how much of
//! a quota'd compute resource it requests or limits. Usage is counted
//! from the store at the write (the registry's `quota`), so a quota holds
//! from its creation, before the controller has reported any usage.

use std::sync::Arc;

use serde_json::Value;

use super::{Admission, Attempt, Operation};
use crate::quota;
use crate::resources;
use shoal_machinery::error::{ApiError, Result};
use shoal_machinery::meta;
use shoal_store::Store;

/// The plugin, reading quotas and usage from the store.
pub struct ResourceQuotas(pub Store);

impl Admission for ResourceQuotas {
    fn admit(&self, a: Attempt<'_>) -> Result<()> {
        if a.operation != Operation::Create || !a.resource.namespaced {
            return Ok(());
        }
        let ns = meta::namespace(a.object);
        let Some(quotas_r) = resources::by_kind("", "ResourceQuota") else {
            return Ok(());
        };
        let (quotas, _) = self.0.list(&quotas_r.prefix(Some(ns)));
        if quotas.is_empty() {
            return Ok(());
        }
        let objects = |r: &'static resources::Resource| -> Vec<Arc<Value>> {
            self.0
                .list(&r.prefix(Some(ns)))
                .0
                .into_iter()
                .map(|s| s.value)
                .collect()
        };
        let plural = a.resource.plural;
        let name = meta::name(a.object);
        let refuse = |message: String| {
            Err(ApiError::forbidden(
                format!("{plural} \"{name}\" is forbidden: {message}"),
                Some((a.resource.group, plural, name)),
            ))
        };
        for q in &quotas {
            let hard = q
                .value
                .pointer("/spec/hard")
                .and_then(Value::as_object)
                .cloned()
                .unwrap_or_default();
            let (mut requested, mut used, mut limited) = (Vec::new(), Vec::new(), Vec::new());
            let mut unspecified = Vec::new();
            for (key, limit) in &hard {
                let Some(m) = quota::measure(key) else {
                    continue;
                };
                let Some(demand) = quota::demand(m, a.resource, a.object) else {
                    unspecified.push(key.clone());
                    continue;
                };
                if demand == 0 {
                    continue;
                }
                let limit_text = limit
                    .as_str()
                    .map(str::to_string)
                    .unwrap_or_else(|| limit.to_string());
                let Some(max) = quota::parse(m, &limit_text) else {
                    continue;
                };
                let now = quota::usage(m, &objects);
                if now.saturating_add(demand) > max {
                    requested.push(format!("{key}={}", quota::format(m, demand)));
                    used.push(format!("{key}={}", quota::format(m, now)));
                    limited.push(format!("{key}={limit_text}"));
                }
            }
            let qname = meta::name(&q.value);
            if !unspecified.is_empty() {
                unspecified.sort();
                return refuse(format!(
                    "failed quota: {qname}: must specify {}",
                    unspecified.join(",")
                ));
            }
            if !requested.is_empty() {
                return refuse(format!(
                    "exceeded quota: {qname}, requested: {}, used: {}, limited: {}",
                    requested.join(","),
                    used.join(","),
                    limited.join(",")
                ));
            }
        }
        Ok(())
    }
}

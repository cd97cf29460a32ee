//! `/metrics` in Prometheus' text format: requests by verb, resource and
//! code as kube-apiserver counts them (`apiserver_request_total`), and the
//! process's resident memory and open descriptors.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;

/// What a request did, as its metric labels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct RequestLabels {
    /// `get`, `list`, `watch`, `create`, `update`, `patch`, `delete`, …
    pub verb: &'static str,
    /// The API group (empty for core).
    pub group: &'static str,
    /// The API version.
    pub version: &'static str,
    /// The resource's plural name.
    pub resource: &'static str,
    /// The subresource (`status`, `scale`, …) or empty.
    pub subresource: &'static str,
}

/// The API's counters.
#[derive(Default)]
pub struct Metrics {
    requests: Mutex<BTreeMap<(RequestLabels, u16), u64>>,
}

impl Metrics {
    /// Counts a request answered with `code`.
    pub fn request(&self, labels: RequestLabels, code: u16) {
        *self
            .requests
            .lock()
            .expect("metrics lock")
            .entry((labels, code))
            .or_default() += 1;
    }

    /// The metrics in Prometheus' text exposition format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        out.push_str("# HELP apiserver_request_total Counter of apiserver requests broken out for each verb, group, version, resource, subresource and HTTP response code.\n");
        out.push_str("# TYPE apiserver_request_total counter\n");
        for ((l, code), n) in self.requests.lock().expect("metrics lock").iter() {
            let _ = writeln!(
                out,
                "apiserver_request_total{{code=\"{code}\",group=\"{}\",resource=\"{}\",subresource=\"{}\",verb=\"{}\",version=\"{}\"}} {n}",
                l.group,
                l.resource,
                l.subresource,
                metric_verb(l.verb),
                l.version
            );
        }
        if let Some(rss) = resident_bytes() {
            out.push_str("# HELP process_resident_memory_bytes Resident memory size in bytes.\n");
            out.push_str("# TYPE process_resident_memory_bytes gauge\n");
            let _ = writeln!(out, "process_resident_memory_bytes {rss}");
        }
        if let Ok(fds) = std::fs::read_dir("/proc/self/fd") {
            out.push_str("# HELP process_open_fds Number of open file descriptors.\n");
            out.push_str("# TYPE process_open_fds gauge\n");
            let _ = writeln!(out, "process_open_fds {}", fds.count());
        }
        out
    }
}

/// A verb as kube-apiserver's metrics name it: the HTTP method, but LIST
/// and WATCH for reads of collections.
fn metric_verb(verb: &str) -> &'static str {
    match verb {
        "list" => "LIST",
        "watch" => "WATCH",
        "create" => "POST",
        "update" => "PUT",
        "patch" => "PATCH",
        "delete" | "deletecollection" => "DELETE",
        _ => "GET",
    }
}

/// The process's resident set in bytes (Linux).
fn resident_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    Some(kib * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_counted_by_labels_and_code() {
        let m = Metrics::default();
        let l = RequestLabels {
            verb: "patch",
            group: "",
            version: "v1",
            resource: "pods",
            subresource: "status",
        };
        m.request(l, 200);
        m.request(l, 200);
        m.request(l, 404);
        let text = m.render();
        assert!(text.contains(
            "apiserver_request_total{code=\"200\",group=\"\",resource=\"pods\",subresource=\"status\",verb=\"PATCH\",version=\"v1\"} 2\n"
        ), "{text}");
        assert!(text.contains("code=\"404\""));
        assert!(text.contains("process_resident_memory_bytes "));
    }
}

//! The audit log: one `audit.k8s.io/v1` Event a request, as JSON lines,
//! written by a thread of its own so requests never wait on the disk. A
//! policy (kube-apiserver's `--audit-policy-file` format) picks each
//! request's level by its first matching rule: `None` leaves it out; any
//! other level writes who asked what of which object and the answer's
//! code (the Metadata level: request and response bodies are not
//! recorded). The file is rotated at a size, keeping one earlier file.
//!
//! May import: `authn` (the user).

use std::io::Write;
use std::path::PathBuf;
use std::sync::mpsc::{SyncSender, TrySendError};

use serde_json::{Value, json};

use shoal_machinery::meta::strings;

use crate::authn::User;
use shoal_machinery::user::Attributes;

/// A policy rule's level.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// Not recorded.
    None,
    /// Who, what, when and the answer's code.
    Metadata,
}

/// One rule: the level for the requests it matches (empty lists match
/// everything).
#[derive(Debug, Clone)]
struct Rule {
    level: Level,
    users: Vec<String>,
    groups: Vec<String>,
    verbs: Vec<String>,
    resources: Vec<(String, Vec<String>)>,
    namespaces: Vec<String>,
    non_resource_urls: Vec<String>,
}

/// A policy: rules in order; a request no rule matches is not recorded.
#[derive(Debug, Clone)]
pub struct Policy(Vec<Rule>);

impl Default for Policy {
    /// Everything at the Metadata level.
    fn default() -> Self {
        Policy(vec![Rule {
            level: Level::Metadata,
            users: vec![],
            groups: vec![],
            verbs: vec![],
            resources: vec![],
            namespaces: vec![],
            non_resource_urls: vec![],
        }])
    }
}

impl Policy {
    /// A policy from its document (`audit.k8s.io/v1` Policy, YAML or JSON).
    pub fn parse(text: &str) -> Result<Self, String> {
        let doc = crate::request::yaml_to_json(text.as_bytes()).map_err(|e| e.message)?;
        if doc.get("kind").and_then(Value::as_str) != Some("Policy") {
            return Err("the audit policy must be an audit.k8s.io/v1 Policy".into());
        }
        let mut rules = Vec::new();
        for (i, r) in doc
            .get("rules")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .enumerate()
        {
            let level = match r.get("level").and_then(Value::as_str) {
                Some("None") => Level::None,
                Some("Metadata" | "Request" | "RequestResponse") => Level::Metadata,
                other => return Err(format!("rules[{i}].level: unknown level {other:?}")),
            };
            rules.push(Rule {
                level,
                users: strings(r, "users"),
                groups: strings(r, "userGroups"),
                verbs: strings(r, "verbs"),
                resources: r
                    .get("resources")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .map(|g| {
                        (
                            g.get("group")
                                .and_then(Value::as_str)
                                .unwrap_or_default()
                                .to_string(),
                            strings(g, "resources"),
                        )
                    })
                    .collect(),
                namespaces: strings(r, "namespaces"),
                non_resource_urls: strings(r, "nonResourceURLs"),
            });
        }
        Ok(Policy(rules))
    }

    /// The level of a request.
    pub fn level(&self, user: Option<&User>, a: &Attributes) -> Level {
        let matches = |r: &Rule| {
            let name = user.map_or("system:anonymous", |u| u.name.as_str());
            (r.users.is_empty() || r.users.iter().any(|u| u == name))
                && (r.groups.is_empty()
                    || user.is_some_and(|u| u.groups.iter().any(|g| r.groups.contains(g))))
                && (r.verbs.is_empty() || r.verbs.contains(&a.verb))
                && match &a.resource {
                    Some(res) => {
                        r.non_resource_urls.is_empty()
                            && (r.namespaces.is_empty() || r.namespaces.contains(&res.namespace))
                            && (r.resources.is_empty()
                                || r.resources.iter().any(|(g, rs)| {
                                    *g == res.group
                                        && (rs.is_empty()
                                            || rs.contains(&res.resource)
                                            || rs.contains(&format!(
                                                "{}/{}",
                                                res.resource, res.subresource
                                            )))
                                }))
                    }
                    None => {
                        r.resources.is_empty()
                            && r.namespaces.is_empty()
                            && (r.non_resource_urls.is_empty()
                                || r.non_resource_urls.iter().any(|u| {
                                    u == &a.path
                                        || u.strip_suffix('*')
                                            .is_some_and(|p| a.path.starts_with(p))
                                }))
                    }
                }
        };
        self.0
            .iter()
            .find(|r| matches(r))
            .map_or(Level::None, |r| r.level)
    }
}

/// The log: a policy and the writer thread's queue.
pub struct Audit {
    policy: Policy,
    lines: SyncSender<Vec<u8>>,
}

impl std::fmt::Debug for Audit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Audit")
            .field("policy", &self.policy)
            .finish()
    }
}

/// Events waiting for the writer; more are dropped (with a warning).
const QUEUE: usize = 65_536;

impl Audit {
    /// Starts writing to `path`, rotated past `max_bytes`.
    pub fn start(path: PathBuf, policy: Policy, max_bytes: u64) -> std::io::Result<Self> {
        let open = |p: &PathBuf| {
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(p)
        };
        let mut file = open(&path)?;
        let mut written = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        let (lines, rx) = std::sync::mpsc::sync_channel::<Vec<u8>>(QUEUE);
        std::thread::Builder::new()
            .name("shoal-audit".into())
            .spawn(move || {
                // Whole lines in one write each, so a reader never sees half
                // an event: what is waiting goes out together.
                while let Ok(first) = rx.recv() {
                    let mut batch = first;
                    while batch.len() < 1 << 16 {
                        match rx.try_recv() {
                            Ok(more) => batch.extend_from_slice(&more),
                            Err(_) => break,
                        }
                    }
                    if written + batch.len() as u64 > max_bytes && written > 0 {
                        let _ = std::fs::rename(&path, path.with_extension("log.1"));
                        match open(&path) {
                            Ok(f) => file = f,
                            Err(e) => tracing::warn!("audit log {}: {e}", path.display()),
                        }
                        written = 0;
                    }
                    written += batch.len() as u64;
                    if let Err(e) = file.write_all(&batch) {
                        tracing::warn!("writing the audit log {}: {e}", path.display());
                    }
                }
            })?;
        Ok(Self { policy, lines })
    }

    /// Records one request, if the policy asks for it.
    pub(crate) fn record(
        &self,
        user: Option<&User>,
        a: &Attributes,
        request: &RequestFacts,
        code: u16,
    ) {
        if self.policy.level(user, a) == Level::None {
            return;
        }
        let mut event = json!({
            "kind": "Event",
            "apiVersion": "audit.k8s.io/v1",
            "level": "Metadata",
            "auditID": uuid::Uuid::new_v4().to_string(),
            "stage": "ResponseComplete",
            "requestURI": request.uri,
            "verb": a.verb,
            "user": match user {
                Some(u) => json!({"username": u.name, "groups": u.groups}),
                None => json!({"username": "system:anonymous", "groups": ["system:unauthenticated"]}),
            },
            "sourceIPs": [request.source_ip],
            "userAgent": request.user_agent,
            "responseStatus": {"metadata": {}, "code": code},
            "requestReceivedTimestamp": request.received,
            "stageTimestamp": timestamp(),
        });
        if let Some(as_user) = &request.impersonated {
            event["impersonatedUser"] = json!({"username": as_user});
        }
        if let Some(r) = &a.resource {
            let mut object = serde_json::Map::new();
            for (k, v) in [
                ("resource", &r.resource),
                ("namespace", &r.namespace),
                ("name", &r.name),
                ("apiGroup", &r.group),
                ("apiVersion", &r.version),
                ("subresource", &r.subresource),
            ] {
                if !v.is_empty() {
                    object.insert(k.into(), json!(v));
                }
            }
            event["objectRef"] = Value::Object(object);
        }
        let mut line = serde_json::to_vec(&event).unwrap_or_default();
        line.push(b'\n');
        if let Err(TrySendError::Full(_)) = self.lines.try_send(line) {
            tracing::warn!("the audit log's writer is behind; an event was dropped");
        }
    }
}

/// What the audit log keeps of a request, read before it is handled.
pub(crate) struct RequestFacts {
    pub uri: String,
    pub source_ip: String,
    pub user_agent: String,
    pub impersonated: Option<String>,
    pub received: String,
}

/// Now, with microseconds, as audit events give times.
pub(crate) fn timestamp() -> String {
    jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%S%.6fZ")
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use shoal_machinery::user::ResourceAttributes;

    #[test]
    fn the_first_matching_rule_decides() {
        let policy = Policy::parse(
            "apiVersion: audit.k8s.io/v1\nkind: Policy\nrules:\n\
             - level: None\n  users: [system:node:a]\n\
             - level: None\n  resources: [{group: \"\", resources: [events]}]\n\
             - level: Metadata\n  resources: [{group: \"\", resources: [secrets]}]\n\
             - level: None\n  nonResourceURLs: [/healthz*]\n",
        )
        .unwrap();
        let user = |n: &str| User {
            name: n.into(),
            groups: vec![],
        };
        let res = |r: &str| Attributes {
            verb: "get".into(),
            resource: Some(ResourceAttributes {
                group: String::new(),
                version: "v1".into(),
                resource: r.into(),
                subresource: String::new(),
                namespace: "d".into(),
                name: "x".into(),
            }),
            path: String::new(),
        };
        assert_eq!(
            policy.level(Some(&user("alice")), &res("secrets")),
            Level::Metadata
        );
        assert_eq!(
            policy.level(Some(&user("system:node:a")), &res("secrets")),
            Level::None
        );
        assert_eq!(
            policy.level(Some(&user("alice")), &res("events")),
            Level::None
        );
        assert_eq!(
            policy.level(Some(&user("alice")), &res("pods")),
            Level::None,
            "no rule matches"
        );
        assert!(Policy::parse("kind: Policy\nrules: [{level: Loud}]").is_err());
        assert_eq!(Policy::default().level(None, &res("pods")), Level::Metadata);
    }
}

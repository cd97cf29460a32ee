//! One [`Strategy`] per built-in kind: what the kind adds to what every
//! object gets, as kube-apiserver's registry strategies do. A new object's
//! starting status, its defaults, the status fields Go always writes, its
//! name rule, its semantic checks, the fields an update may not change and
//! the columns `kubectl get` prints. Generic code asks [`of`] and never
//! matches on a kind's name; one file holds each family of kinds.
//!
//! May import: `custom` (a definition's defaults and checks), the machinery.
//! Must not import: `resources` beyond [`Resource`], `objects`,
//! `validation`, `defaults`.

mod admission;
mod batch;
mod certificates;
mod config;
mod extensions;
mod networking;
mod nodes;
pub(crate) mod pods;
pub mod print;
mod rbac;
mod storage;
mod workloads;

use serde_json::{Value, json};

use crate::resources::Resource;
use shoal_machinery::error::ApiError;
use shoal_machinery::error::Causes;
use shoal_machinery::meta::default_key;
use shoal_machinery::selectors::FieldSelector;

pub use pods::{pod_status, qos_class};

/// Which names a kind accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameRule {
    /// An RFC 1123 subdomain (most kinds).
    Subdomain,
    /// An RFC 1123 label (Namespaces and Services, whose names become DNS
    /// labels).
    Label,
    /// Any path segment: no `/` or `%`, not `.` or `..` (RBAC's roles and
    /// bindings, named `system:node` and the like).
    PathSegment,
}

impl NameRule {
    /// Why `name` is refused, in Kubernetes' words; `None` when it is fine.
    pub fn refuse(self, name: &str) -> Option<&'static str> {
        use shoal_machinery::names::{is_dns_label, is_dns_subdomain};
        const RFC1123: &str = "a lowercase RFC 1123 name must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character";
        match self {
            NameRule::Label if !is_dns_label(name) => Some(RFC1123),
            NameRule::Subdomain if !is_dns_subdomain(name) => Some(RFC1123),
            NameRule::PathSegment => match name {
                "." => Some("may not be '.'"),
                ".." => Some("may not be '..'"),
                n if n.contains('/') => Some("may not contain '/'"),
                n if n.contains('%') => Some("may not contain '%'"),
                _ => None,
            },
            _ => None,
        }
    }
}

/// How a kind's objects are deleted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Deletion {
    /// Removed at once unless finalizers hold them; a propagation policy
    /// other than Background adds its finalizer while the garbage
    /// collector deletes the dependents.
    Immediate,
    /// Pods: one bound to a node and not finished is marked with
    /// `deletionTimestamp` and its grace period and removed once its node
    /// has stopped it; it has its own path, so no propagation finalizer.
    Graceful,
    /// Namespaces: marked `Terminating`, emptied by the namespace
    /// controller, then removed; the `protected` ones may not be deleted.
    Contents {
        /// Names that may not be deleted.
        protected: &'static [&'static str],
    },
}

/// What the object service keeps for a kind beyond its objects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Allocation {
    /// Nothing.
    Nothing,
    /// A Service's cluster IP and node ports, unique in the cluster.
    ServiceAddresses,
    /// The served kinds: a CustomResourceDefinition's write changes them.
    ServedKinds,
}

/// The Table columns of a kind and the cells of one object's row, kept
/// side by side so they stay in step.
#[derive(Clone, Copy)]
pub struct Printer {
    /// The column definitions.
    pub columns: fn() -> Vec<Value>,
    /// One row's cells, a cell per column.
    pub cells: fn(&Value) -> Vec<Value>,
}

/// What one kind adds to the machinery every object gets.
pub struct Strategy {
    /// Sets what a new object starts with (its status, finalizers, derived
    /// fields) before defaulting.
    pub prepare: fn(&mut Value),
    /// Fills the kind's defaults, on create and update.
    pub defaults: fn(&mut Value),
    /// Status fields Kubernetes' Go types always write (not `omitempty`):
    /// zero until a controller sets them. Typed clients (the Python
    /// client's models) refuse an object without them.
    pub status_zeros: &'static [&'static str],
    /// The names the kind accepts.
    pub name_rule: NameRule,
    /// Semantic checks of an object about to be stored (422 causes).
    pub validate: fn(&Value, &mut Causes),
    /// JSON pointers of fields an update may not change.
    pub immutable: &'static [&'static str],
    /// Top-level fields an update of the object (not of a subresource)
    /// leaves as they were, whatever the body says, as Kubernetes does
    /// with a CertificateSigningRequest's `spec`.
    pub kept_on_update: &'static [&'static str],
    /// What `kubectl get` prints.
    pub printer: Printer,
    /// How objects are deleted.
    pub deletion: Deletion,
    /// What the object service allocates or refreshes on a write.
    pub allocation: Allocation,
    /// Where the scale subresource reads the label selector.
    pub scale_selector: &'static str,
    /// Whether a new object records who asked for it in `spec.username`
    /// and `spec.groups`, whatever the body says (CertificateSigningRequests).
    pub records_requester: bool,
    /// Fields a field selector may name besides `metadata.name` and
    /// `metadata.namespace`, as Kubernetes' field label conversions list them.
    pub field_labels: &'static [&'static str],
}

fn nothing(_: &mut Value) {}

fn no_checks(_: &Value, _: &mut Causes) {}

/// Gives a new object an empty status.
fn empty_status(obj: &mut Value) {
    obj["status"] = json!({});
}

impl Strategy {
    /// A kind with nothing of its own: name and age columns.
    pub const GENERIC: Strategy = Strategy {
        prepare: nothing,
        defaults: nothing,
        status_zeros: &[],
        name_rule: NameRule::Subdomain,
        validate: no_checks,
        immutable: &[],
        kept_on_update: &[],
        printer: Printer {
            columns: print::name_age_columns,
            cells: print::name_age_cells,
        },
        deletion: Deletion::Immediate,
        allocation: Allocation::Nothing,
        scale_selector: "/spec/selector/matchLabels",
        field_labels: &[],
        records_requester: false,
    };

    /// Refuses a field selector naming a field the kind cannot select on
    /// (400, in Kubernetes' words).
    pub fn check_fields(&self, fields: &FieldSelector) -> Result<(), ApiError> {
        match fields.labels().find(|l| {
            !matches!(*l, "metadata.name" | "metadata.namespace") && !self.field_labels.contains(l)
        }) {
            Some(l) => Err(ApiError::bad_request(format!(
                "field label not supported: {l}"
            ))),
            None => Ok(()),
        }
    }

    /// Applies the kind's status zeros and defaults.
    pub fn default(&self, obj: &mut Value) {
        self.fill_status_zeros(obj);
        (self.defaults)(obj);
    }

    /// Gives `obj` the status fields of [`Strategy::status_zeros`] it
    /// lacks; whether it lacked any.
    pub fn fill_status_zeros(&self, obj: &mut Value) -> bool {
        if self.status_zeros.is_empty() {
            return false;
        }
        let Some(m) = obj.as_object_mut() else {
            return false;
        };
        let before = m.get("status").cloned();
        if !m.get("status").is_some_and(Value::is_object) {
            m.insert("status".into(), json!({}));
        }
        if let Some(st) = m.get_mut("status").and_then(Value::as_object_mut) {
            for f in self.status_zeros {
                default_key(st, f, json!(0));
            }
        }
        m.get("status") != before.as_ref()
    }
}

/// Every family's kinds; a kind is added in its family's file.
static FAMILIES: &[&[(&str, &Strategy)]] = &[
    pods::KINDS,
    nodes::KINDS,
    workloads::KINDS,
    batch::KINDS,
    networking::KINDS,
    config::KINDS,
    storage::KINDS,
    rbac::KINDS,
    extensions::KINDS,
    certificates::KINDS,
    admission::KINDS,
];

/// Every built-in kind with its strategy.
pub fn strategies() -> impl Iterator<Item = (&'static str, &'static Strategy)> {
    FAMILIES
        .iter()
        .flat_map(|f| f.iter().map(|(k, s)| (*k, *s)))
}

/// The strategy of a built-in kind; the generic one for other kinds.
pub fn of_kind(kind: &str) -> &'static Strategy {
    strategies()
        .find(|(k, _)| *k == kind)
        .map_or(&Strategy::GENERIC, |(_, s)| s)
}

/// The strategy of a resource; a custom resource gets the generic one (its
/// definition's schema does the rest).
pub fn of(r: &Resource) -> &'static Strategy {
    of_kind(r.builtin_kind())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::RESOURCES;

    #[test]
    fn every_strategy_names_a_served_kind() {
        for (kind, _) in strategies() {
            assert!(
                RESOURCES.iter().any(|r| r.kind == kind),
                "{kind} is not served"
            );
        }
    }

    #[test]
    fn every_printer_fills_each_column() {
        let obj = json!({"metadata": {"name": "x", "namespace": "default",
            "creationTimestamp": "2026-01-01T00:00:00Z"}, "spec": {}, "status": {}});
        for r in RESOURCES {
            let p = of(r).printer;
            let columns = (p.columns)();
            let cells = (p.cells)(&obj);
            assert_eq!(columns.len(), cells.len(), "{}", r.kind);
            // The Name column shows the name (Events lead with Last Seen).
            if let Some(i) = columns.iter().position(|c| c["name"] == "Name") {
                assert_eq!(cells[i], "x", "{}", r.kind);
            }
        }
    }
}

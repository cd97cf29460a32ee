//! The admission slot: plugins that see every create and update after the
//! kind's defaults and before validation, with the user who asked, and
//! may change the object or refuse the write (403 `Forbidden` or 422
//! `Invalid`, as the plugin answers). A server without plugins admits
//! everything.
//!
//! The built-in plugins each have a file: `limit_ranger.rs`,
//! `service_account.rs`, `default_tolerations.rs`, `runtime_class.rs`,
//! `node_restriction.rs`, `pod_security.rs`, `resource_quota.rs`.
//!
//! May import: `resources` (the resource written), the machinery, the store
//! (what a plugin reads).

pub mod default_tolerations;
pub mod limit_ranger;
pub mod node_restriction;
pub mod pod_security;
pub mod resource_quota;
pub mod runtime_class;
pub mod service_account;

use serde_json::Value;

use crate::resources::Resource;
use shoal_machinery::error::Result;
use shoal_machinery::user::User;

/// What a write does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    /// A new object.
    Create,
    /// A changed object (update, patch, apply, or a subresource's write).
    Update,
}

/// One write, as an admission plugin sees it.
pub struct Attempt<'a> {
    /// Create or update.
    pub operation: Operation,
    /// The resource written.
    pub resource: &'a Resource,
    /// The object about to be validated and stored; a plugin may change it.
    pub object: &'a mut Value,
    /// The stored object an update replaces.
    pub old: Option<&'a Value>,
    /// Who asked; `None` for the control plane's own writes.
    pub user: Option<&'a User>,
    /// Whether nothing will be stored (`dryRun`).
    pub dry_run: bool,
    /// Warnings for the client (`Warning` headers), which a plugin may add.
    pub warnings: &'a mut Vec<String>,
}

impl Attempt<'_> {
    /// Whether this write creates a pod (what most plugins look at).
    pub fn creates_pod(&self) -> bool {
        self.operation == Operation::Create
            && self.resource.group.is_empty()
            && self.resource.kind == "Pod"
    }
}

/// An admission plugin.
pub trait Admission: Send + Sync {
    /// Admits the write (possibly changing its object) or refuses it.
    fn admit(&self, attempt: Attempt<'_>) -> Result<()>;
}

/// One write, as admission outside the server (webhooks) sees it.
pub struct Review<'a> {
    /// Create or update.
    pub operation: Operation,
    /// The resource written.
    pub resource: &'a Resource,
    /// The subresource written (`status`, `scale`, …), if one is.
    pub subresource: Option<&'a str>,
    /// The stored object an update replaces.
    pub old: Option<&'a Value>,
    /// Who asked; `None` for the control plane's own writes.
    pub user: Option<&'a User>,
    /// Whether nothing will be stored (`dryRun`).
    pub dry_run: bool,
}

/// A future admission answers with.
pub type Answer<'a> = std::pin::Pin<Box<dyn std::future::Future<Output = Result<()>> + Send + 'a>>;

/// Admission that calls out of the server, after the built-in plugins:
/// the mutating phase before the object is validated, the validating
/// phase after, as kube-apiserver orders them.
pub trait Webhooks: Send + Sync {
    /// The mutating phase: may change `object`, or refuse the write.
    fn mutate<'a>(&'a self, review: Review<'a>, object: &'a mut Value) -> Answer<'a>;
    /// The validating phase: may refuse the write.
    fn validate<'a>(&'a self, review: Review<'a>, object: &'a Value) -> Answer<'a>;
}

//! Who asks and what for: the user a request was authenticated as and
//! the request's attributes authorization decides on.

/// The group every authenticated user is in.
pub const AUTHENTICATED: &str = "system:authenticated";
/// The user a request without credentials makes, where one may.
pub const ANONYMOUS: &str = "system:anonymous";
/// The group of [`ANONYMOUS`].
pub const UNAUTHENTICATED: &str = "system:unauthenticated";

/// An authenticated user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// The user name.
    pub name: String,
    /// The groups, `system:authenticated` last.
    pub groups: Vec<String>,
}

/// What authorization decides on, as Kubernetes' request attributes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attributes {
    /// The Kubernetes verb (`get`, `list`, `watch`, `create`, …).
    pub verb: String,
    /// For a resource request, its group, resource, subresource,
    /// namespace and name; `None` for a non-resource path.
    pub resource: Option<ResourceAttributes>,
    /// The request's path.
    pub path: String,
}

/// The resource part of [`Attributes`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceAttributes {
    /// API group, empty for core.
    pub group: String,
    /// Version.
    pub version: String,
    /// Plural resource name.
    pub resource: String,
    /// Subresource, empty for none.
    pub subresource: String,
    /// Namespace, empty for cluster-wide.
    pub namespace: String,
    /// Object name, empty for a collection.
    pub name: String,
}

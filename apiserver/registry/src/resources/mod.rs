//! The resources the API serves: one table drives routing, discovery,
//! OpenAPI and storage keys.

pub mod custom;
mod event_view;
mod metrics;

use k8s_openapi::api::{
    admissionregistration::v1 as admissionregistration, apps::v1 as apps,
    authentication::v1 as authentication, authorization::v1 as authorization,
    autoscaling::v2 as autoscaling, batch::v1 as batch, certificates::v1 as certificates,
    coordination::v1 as coordination, core::v1 as core, discovery::v1 as discovery,
    events::v1 as events, networking::v1 as networking, node::v1 as node, policy::v1 as policy,
    rbac::v1 as rbac, scheduling::v1 as scheduling, storage::v1 as storage,
};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1 as apiextensions;
use k8s_openapi::kube_aggregator::pkg::apis::apiregistration::v1 as apiregistration;
use std::borrow::Cow;
use std::sync::{Arc, RwLock};

use schemars::r#gen::SchemaGenerator;
use schemars::schema::Schema;

/// A subresource of a resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sub {
    /// `/status`: writes touch only `.status`.
    Status,
    /// `/scale`: an autoscaling/v1 Scale view of `.spec.replicas`.
    Scale,
    /// `/log`: container logs, served by the node.
    Log,
    /// `/binding`: assigns a pod to a node.
    Binding,
    /// `/approval`: a CertificateSigningRequest's Approved or Denied
    /// condition (writes touch only `.status.conditions`).
    Approval,
    /// `/token`: a ServiceAccount's TokenRequest.
    Token,
    /// `/eviction`: a pod deleted if its disruption budget allows.
    Eviction,
    /// `/exec`: a command in a pod's container, streamed from its node.
    Exec,
    /// `/attach`: a running container's stdin and output, from its node.
    Attach,
    /// `/portforward`: connections to a pod's ports, through its node.
    PortForward,
    /// `/proxy/...`: HTTP to a pod's port, a Service's endpoint or a
    /// node's kubelet API, through the node.
    Proxy,
    /// `/ephemeralcontainers`: writes touch only
    /// `.spec.ephemeralContainers`, which may only grow (`kubectl debug`).
    EphemeralContainers,
}

impl Sub {
    /// The path segment.
    pub fn name(self) -> &'static str {
        match self {
            Sub::Status => "status",
            Sub::Scale => "scale",
            Sub::Log => "log",
            Sub::Binding => "binding",
            Sub::Approval => "approval",
            Sub::Token => "token",
            Sub::Eviction => "eviction",
            Sub::Exec => "exec",
            Sub::Attach => "attach",
            Sub::PortForward => "portforward",
            Sub::Proxy => "proxy",
            Sub::EphemeralContainers => "ephemeralcontainers",
        }
    }
}

/// One served resource.
pub struct Resource {
    /// API group, empty for core.
    pub group: &'static str,
    /// Version.
    pub version: &'static str,
    /// Kind.
    pub kind: &'static str,
    /// Plural name used in paths.
    pub plural: &'static str,
    /// Singular name.
    pub singular: &'static str,
    /// Whether objects live in a namespace.
    pub namespaced: bool,
    /// Short names (`po`, `deploy`).
    pub short_names: &'static [&'static str],
    /// Categories (`all`).
    pub categories: &'static [&'static str],
    /// Subresources.
    pub subresources: &'static [Sub],
    /// The OpenAPI schema of the kind.
    pub schema: fn(&mut SchemaGenerator) -> Schema,
    /// The definition name of the schema.
    pub schema_name: &'static str,
    /// Decodes an object into the kind's typed form, reporting type errors.
    pub decode: fn(&serde_json::Value) -> Result<(), String>,
    /// What the definition of a custom resource says of it; `None` for the
    /// built-in kinds.
    pub custom: Option<&'static custom::Custom>,
    /// For a resource served over another's objects in its own schema, how
    /// they convert.
    pub view: Option<&'static View>,
    /// The verbs the resource supports.
    pub verbs: &'static [&'static str],
    /// Whether its objects are kept in the store; the resource metrics
    /// API's are made when read.
    pub stored: bool,
}

/// The verbs of a resource that stores its objects.
pub const ALL_VERBS: &[&str] = &[
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];

/// A resource whose objects are another resource's, in another schema:
/// events.k8s.io/v1 Events are core/v1 Events with renamed fields.
pub struct View {
    /// The storage prefix of the objects (`events`).
    pub storage: &'static str,
    /// The stored form of an object of the viewing resource.
    pub to_stored: fn(serde_json::Value) -> serde_json::Value,
    /// The viewing resource's form of a stored object.
    pub from_stored: fn(&serde_json::Value) -> serde_json::Value,
}

impl Resource {
    /// `v1` or `apps/v1`.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.to_string()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// The first key segment: `pods` or `deployments.apps`.
    pub fn storage_prefix(&self) -> String {
        if let Some(v) = self.view {
            v.storage.to_string()
        } else if self.group.is_empty() {
            self.plural.to_string()
        } else {
            format!("{}.{}", self.plural, self.group)
        }
    }

    /// The storage key of an object.
    pub fn key(&self, namespace: &str, name: &str) -> String {
        format!(
            "{}/{}/{}",
            self.storage_prefix(),
            if self.namespaced { namespace } else { "" },
            name
        )
    }

    /// The key prefix of every object in `namespace` (all when `None`).
    pub fn prefix(&self, namespace: Option<&str>) -> String {
        match namespace {
            Some(ns) if self.namespaced => format!("{}/{}/", self.storage_prefix(), ns),
            _ => format!("{}/", self.storage_prefix()),
        }
    }

    /// The kind, for behaviour shoal builds in for it; empty for a custom
    /// resource, whose kind may repeat a built-in one (a Knative `Service`).
    pub fn builtin_kind(&self) -> &'static str {
        if self.custom.is_some() { "" } else { self.kind }
    }

    /// `obj` as this resource serves it: a custom object stored through
    /// another version of its definition gets this `apiVersion`, a viewed
    /// object this resource's schema.
    pub fn served_as<'a>(&self, obj: &'a serde_json::Value) -> Cow<'a, serde_json::Value> {
        if let Some(v) = self.view {
            return Cow::Owned((v.from_stored)(obj));
        }
        if self.custom.is_none() {
            return Cow::Borrowed(obj);
        }
        let av = self.api_version();
        if obj.get("apiVersion").and_then(|v| v.as_str()) == Some(&av) {
            return Cow::Borrowed(obj);
        }
        let mut o = obj.clone();
        o["apiVersion"] = serde_json::Value::String(av);
        Cow::Owned(o)
    }

    /// The form `obj`, of this resource, is stored in.
    pub fn to_stored(&self, obj: serde_json::Value) -> serde_json::Value {
        match self.view {
            Some(v) => (v.to_stored)(obj),
            None => obj,
        }
    }

    /// Whether `api_version` names this resource's group and version, or,
    /// for a custom resource, another version its definition serves.
    pub fn accepts_version(&self, api_version: &str) -> bool {
        api_version == self.api_version()
            || self.custom.is_some_and(|c| {
                api_version
                    .split_once('/')
                    .is_some_and(|(g, v)| g == self.group && c.versions.iter().any(|x| x == v))
            })
    }

    /// Whether the resource has subresource `sub`.
    pub fn has(&self, sub: Sub) -> bool {
        self.subresources.contains(&sub)
    }

    /// The verbs the resource supports.
    pub fn verbs(&self) -> &'static [&'static str] {
        self.verbs
    }
}

macro_rules! schema {
    ($t:ty) => {
        |g: &mut SchemaGenerator| g.subschema_for::<$t>()
    };
}

/// Decodes into the typed form; only a failure is decoded again with the
/// path tracked, so the error can name the field at no cost to the rest.
macro_rules! decode {
    ($t:ty) => {
        |v: &serde_json::Value| {
            if <$t as serde::Deserialize>::deserialize(v).is_ok() {
                return Ok(());
            }
            match serde_path_to_error::deserialize::<_, $t>(v) {
                Ok(_) => Ok(()),
                Err(e) => Err(match e.path().to_string().as_str() {
                    "." => e.inner().to_string(),
                    path => format!("{path}: {}", e.inner()),
                }),
            }
        }
    };
}

/// A built-in resource: `stored!(group, version, Kind, plural, singular,
/// namespaced, short names, subresources, type, schema definition name[;
/// field: value])`, the one field (`categories`, `view`, `verbs`) set to
/// other than its default.
macro_rules! stored {
    ($group:literal, $version:literal, $kind:literal, $plural:literal, $singular:literal,
     $namespaced:literal, $short:expr, $subs:expr, $t:ty, $def:literal) => {
        Resource {
            group: $group,
            version: $version,
            kind: $kind,
            plural: $plural,
            singular: $singular,
            namespaced: $namespaced,
            short_names: $short,
            categories: &[],
            subresources: $subs,
            schema: schema!($t),
            schema_name: $def,
            decode: decode!($t),
            custom: None,
            view: None,
            verbs: ALL_VERBS,
            stored: true,
        }
    };
    ($group:literal, $version:literal, $kind:literal, $plural:literal, $singular:literal,
     $namespaced:literal, $short:expr, $subs:expr, $t:ty, $def:literal; $field:ident: $value:expr) => {
        Resource {
            $field: $value,
            ..stored!(
                $group,
                $version,
                $kind,
                $plural,
                $singular,
                $namespaced,
                $short,
                $subs,
                $t,
                $def
            )
        }
    };
}

/// Every resource served, in discovery order.
pub static RESOURCES: &[Resource] = &[
    stored!(
        "",
        "v1",
        "Namespace",
        "namespaces",
        "namespace",
        false,
        &["ns"],
        &[Sub::Status],
        core::Namespace,
        "io.k8s.api.core.v1.Namespace"
    ),
    stored!(
        "",
        "v1",
        "Node",
        "nodes",
        "node",
        false,
        &["no"],
        &[Sub::Status, Sub::Proxy],
        core::Node,
        "io.k8s.api.core.v1.Node"
    ),
    stored!(
        "",
        "v1",
        "Pod",
        "pods",
        "pod",
        true,
        &["po"],
        &[
            Sub::Status,
            Sub::Log,
            Sub::Binding,
            Sub::Eviction,
            Sub::Exec,
            Sub::Attach,
            Sub::PortForward,
            Sub::Proxy,
            Sub::EphemeralContainers,
        ],
        core::Pod,
        "io.k8s.api.core.v1.Pod";
        categories: &["all"]
    ),
    stored!(
        "",
        "v1",
        "Service",
        "services",
        "service",
        true,
        &["svc"],
        &[Sub::Status, Sub::Proxy],
        core::Service,
        "io.k8s.api.core.v1.Service";
        categories: &["all"]
    ),
    stored!(
        "",
        "v1",
        "Endpoints",
        "endpoints",
        "endpoints",
        true,
        &["ep"],
        &[],
        core::Endpoints,
        "io.k8s.api.core.v1.Endpoints"
    ),
    stored!(
        "",
        "v1",
        "ConfigMap",
        "configmaps",
        "configmap",
        true,
        &["cm"],
        &[],
        core::ConfigMap,
        "io.k8s.api.core.v1.ConfigMap"
    ),
    stored!(
        "",
        "v1",
        "Secret",
        "secrets",
        "secret",
        true,
        &[],
        &[],
        core::Secret,
        "io.k8s.api.core.v1.Secret"
    ),
    stored!(
        "",
        "v1",
        "Event",
        "events",
        "event",
        true,
        &["ev"],
        &[],
        core::Event,
        "io.k8s.api.core.v1.Event"
    ),
    stored!(
        "",
        "v1",
        "ServiceAccount",
        "serviceaccounts",
        "serviceaccount",
        true,
        &["sa"],
        &[Sub::Token],
        core::ServiceAccount,
        "io.k8s.api.core.v1.ServiceAccount"
    ),
    stored!(
        "apps",
        "v1",
        "Deployment",
        "deployments",
        "deployment",
        true,
        &["deploy"],
        &[Sub::Status, Sub::Scale],
        apps::Deployment,
        "io.k8s.api.apps.v1.Deployment";
        categories: &["all"]
    ),
    stored!(
        "apps",
        "v1",
        "ReplicaSet",
        "replicasets",
        "replicaset",
        true,
        &["rs"],
        &[Sub::Status, Sub::Scale],
        apps::ReplicaSet,
        "io.k8s.api.apps.v1.ReplicaSet";
        categories: &["all"]
    ),
    stored!(
        "apps",
        "v1",
        "StatefulSet",
        "statefulsets",
        "statefulset",
        true,
        &["sts"],
        &[Sub::Status, Sub::Scale],
        apps::StatefulSet,
        "io.k8s.api.apps.v1.StatefulSet";
        categories: &["all"]
    ),
    stored!(
        "apps",
        "v1",
        "DaemonSet",
        "daemonsets",
        "daemonset",
        true,
        &["ds"],
        &[Sub::Status],
        apps::DaemonSet,
        "io.k8s.api.apps.v1.DaemonSet";
        categories: &["all"]
    ),
    stored!(
        "batch",
        "v1",
        "Job",
        "jobs",
        "job",
        true,
        &[],
        &[Sub::Status],
        batch::Job,
        "io.k8s.api.batch.v1.Job";
        categories: &["all"]
    ),
    stored!(
        "batch",
        "v1",
        "CronJob",
        "cronjobs",
        "cronjob",
        true,
        &["cj"],
        &[Sub::Status],
        batch::CronJob,
        "io.k8s.api.batch.v1.CronJob";
        categories: &["all"]
    ),
    stored!(
        "coordination.k8s.io",
        "v1",
        "Lease",
        "leases",
        "lease",
        true,
        &[],
        &[],
        coordination::Lease,
        "io.k8s.api.coordination.v1.Lease"
    ),
    stored!(
        "",
        "v1",
        "ReplicationController",
        "replicationcontrollers",
        "replicationcontroller",
        true,
        &["rc"],
        &[Sub::Status, Sub::Scale],
        core::ReplicationController,
        "io.k8s.api.core.v1.ReplicationController";
        categories: &["all"]
    ),
    stored!(
        "",
        "v1",
        "PersistentVolumeClaim",
        "persistentvolumeclaims",
        "persistentvolumeclaim",
        true,
        &["pvc"],
        &[Sub::Status],
        core::PersistentVolumeClaim,
        "io.k8s.api.core.v1.PersistentVolumeClaim"
    ),
    stored!(
        "",
        "v1",
        "PersistentVolume",
        "persistentvolumes",
        "persistentvolume",
        false,
        &["pv"],
        &[Sub::Status],
        core::PersistentVolume,
        "io.k8s.api.core.v1.PersistentVolume"
    ),
    stored!(
        "",
        "v1",
        "LimitRange",
        "limitranges",
        "limitrange",
        true,
        &["limits"],
        &[],
        core::LimitRange,
        "io.k8s.api.core.v1.LimitRange"
    ),
    stored!(
        "",
        "v1",
        "ResourceQuota",
        "resourcequotas",
        "resourcequota",
        true,
        &["quota"],
        &[Sub::Status],
        core::ResourceQuota,
        "io.k8s.api.core.v1.ResourceQuota"
    ),
    stored!(
        "",
        "v1",
        "PodTemplate",
        "podtemplates",
        "podtemplate",
        true,
        &[],
        &[],
        core::PodTemplate,
        "io.k8s.api.core.v1.PodTemplate"
    ),
    stored!(
        "rbac.authorization.k8s.io",
        "v1",
        "Role",
        "roles",
        "role",
        true,
        &[],
        &[],
        rbac::Role,
        "io.k8s.api.rbac.v1.Role"
    ),
    stored!(
        "rbac.authorization.k8s.io",
        "v1",
        "RoleBinding",
        "rolebindings",
        "rolebinding",
        true,
        &[],
        &[],
        rbac::RoleBinding,
        "io.k8s.api.rbac.v1.RoleBinding"
    ),
    stored!(
        "rbac.authorization.k8s.io",
        "v1",
        "ClusterRole",
        "clusterroles",
        "clusterrole",
        false,
        &[],
        &[],
        rbac::ClusterRole,
        "io.k8s.api.rbac.v1.ClusterRole"
    ),
    stored!(
        "rbac.authorization.k8s.io",
        "v1",
        "ClusterRoleBinding",
        "clusterrolebindings",
        "clusterrolebinding",
        false,
        &[],
        &[],
        rbac::ClusterRoleBinding,
        "io.k8s.api.rbac.v1.ClusterRoleBinding"
    ),
    stored!(
        "node.k8s.io",
        "v1",
        "RuntimeClass",
        "runtimeclasses",
        "runtimeclass",
        false,
        &[],
        &[],
        node::RuntimeClass,
        "io.k8s.api.node.v1.RuntimeClass"
    ),
    stored!(
        "scheduling.k8s.io",
        "v1",
        "PriorityClass",
        "priorityclasses",
        "priorityclass",
        false,
        &["pc"],
        &[],
        scheduling::PriorityClass,
        "io.k8s.api.scheduling.v1.PriorityClass"
    ),
    stored!(
        "policy",
        "v1",
        "PodDisruptionBudget",
        "poddisruptionbudgets",
        "poddisruptionbudget",
        true,
        &["pdb"],
        &[Sub::Status],
        policy::PodDisruptionBudget,
        "io.k8s.api.policy.v1.PodDisruptionBudget"
    ),
    stored!(
        "storage.k8s.io",
        "v1",
        "StorageClass",
        "storageclasses",
        "storageclass",
        false,
        &["sc"],
        &[],
        storage::StorageClass,
        "io.k8s.api.storage.v1.StorageClass"
    ),
    stored!(
        "networking.k8s.io",
        "v1",
        "Ingress",
        "ingresses",
        "ingress",
        true,
        &["ing"],
        &[Sub::Status],
        networking::Ingress,
        "io.k8s.api.networking.v1.Ingress"
    ),
    stored!(
        "networking.k8s.io",
        "v1",
        "IngressClass",
        "ingressclasses",
        "ingressclass",
        false,
        &[],
        &[],
        networking::IngressClass,
        "io.k8s.api.networking.v1.IngressClass"
    ),
    stored!(
        "networking.k8s.io",
        "v1",
        "NetworkPolicy",
        "networkpolicies",
        "networkpolicy",
        true,
        &["netpol"],
        &[],
        networking::NetworkPolicy,
        "io.k8s.api.networking.v1.NetworkPolicy"
    ),
    stored!(
        "autoscaling",
        "v2",
        "HorizontalPodAutoscaler",
        "horizontalpodautoscalers",
        "horizontalpodautoscaler",
        true,
        &["hpa"],
        &[Sub::Status],
        autoscaling::HorizontalPodAutoscaler,
        "io.k8s.api.autoscaling.v2.HorizontalPodAutoscaler";
        categories: &["all"]
    ),
    stored!(
        "apps",
        "v1",
        "ControllerRevision",
        "controllerrevisions",
        "controllerrevision",
        true,
        &[],
        &[],
        apps::ControllerRevision,
        "io.k8s.api.apps.v1.ControllerRevision"
    ),
    stored!(
        "discovery.k8s.io",
        "v1",
        "EndpointSlice",
        "endpointslices",
        "endpointslice",
        true,
        &[],
        &[],
        discovery::EndpointSlice,
        "io.k8s.api.discovery.v1.EndpointSlice"
    ),
    stored!(
        "events.k8s.io",
        "v1",
        "Event",
        "events",
        "event",
        true,
        &["ev"],
        &[],
        events::Event,
        "io.k8s.api.events.v1.Event";
        view: Some(&event_view::VIEW)
    ),
    stored!(
        "authorization.k8s.io",
        "v1",
        "SelfSubjectAccessReview",
        "selfsubjectaccessreviews",
        "selfsubjectaccessreview",
        false,
        &[],
        &[],
        authorization::SelfSubjectAccessReview,
        "io.k8s.api.authorization.v1.SelfSubjectAccessReview";
        verbs: &["create"]
    ),
    stored!(
        "authorization.k8s.io",
        "v1",
        "SubjectAccessReview",
        "subjectaccessreviews",
        "subjectaccessreview",
        false,
        &[],
        &[],
        authorization::SubjectAccessReview,
        "io.k8s.api.authorization.v1.SubjectAccessReview";
        verbs: &["create"]
    ),
    stored!(
        "authorization.k8s.io",
        "v1",
        "LocalSubjectAccessReview",
        "localsubjectaccessreviews",
        "localsubjectaccessreview",
        true,
        &[],
        &[],
        authorization::LocalSubjectAccessReview,
        "io.k8s.api.authorization.v1.LocalSubjectAccessReview";
        verbs: &["create"]
    ),
    stored!(
        "authentication.k8s.io",
        "v1",
        "TokenReview",
        "tokenreviews",
        "tokenreview",
        false,
        &[],
        &[],
        authentication::TokenReview,
        "io.k8s.api.authentication.v1.TokenReview";
        verbs: &["create"]
    ),
    stored!(
        "authentication.k8s.io",
        "v1",
        "SelfSubjectReview",
        "selfsubjectreviews",
        "selfsubjectreview",
        false,
        &[],
        &[],
        authentication::SelfSubjectReview,
        "io.k8s.api.authentication.v1.SelfSubjectReview";
        verbs: &["create"]
    ),
    stored!(
        "authorization.k8s.io",
        "v1",
        "SelfSubjectRulesReview",
        "selfsubjectrulesreviews",
        "selfsubjectrulesreview",
        false,
        &[],
        &[],
        authorization::SelfSubjectRulesReview,
        "io.k8s.api.authorization.v1.SelfSubjectRulesReview";
        verbs: &["create"]
    ),
    stored!(
        "apiextensions.k8s.io",
        "v1",
        "CustomResourceDefinition",
        "customresourcedefinitions",
        "customresourcedefinition",
        false,
        &["crd", "crds"],
        &[Sub::Status],
        apiextensions::CustomResourceDefinition,
        "io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.v1.CustomResourceDefinition";
        categories: &["api-extensions"]
    ),
    stored!(
        "apiregistration.k8s.io",
        "v1",
        "APIService",
        "apiservices",
        "apiservice",
        false,
        &[],
        &[Sub::Status],
        apiregistration::APIService,
        "io.k8s.kube-aggregator.pkg.apis.apiregistration.v1.APIService";
        categories: &["api-extensions"]
    ),
    stored!(
        "certificates.k8s.io",
        "v1",
        "CertificateSigningRequest",
        "certificatesigningrequests",
        "certificatesigningrequest",
        false,
        &["csr"],
        &[Sub::Status, Sub::Approval],
        certificates::CertificateSigningRequest,
        "io.k8s.api.certificates.v1.CertificateSigningRequest"
    ),
    stored!(
        "admissionregistration.k8s.io",
        "v1",
        "MutatingWebhookConfiguration",
        "mutatingwebhookconfigurations",
        "mutatingwebhookconfiguration",
        false,
        &[],
        &[],
        admissionregistration::MutatingWebhookConfiguration,
        "io.k8s.api.admissionregistration.v1.MutatingWebhookConfiguration";
        categories: &["api-extensions"]
    ),
    stored!(
        "admissionregistration.k8s.io",
        "v1",
        "ValidatingWebhookConfiguration",
        "validatingwebhookconfigurations",
        "validatingwebhookconfiguration",
        false,
        &[],
        &[],
        admissionregistration::ValidatingWebhookConfiguration,
        "io.k8s.api.admissionregistration.v1.ValidatingWebhookConfiguration";
        categories: &["api-extensions"]
    ),
    metrics::resource_metrics("NodeMetrics", "nodes", "node", false),
    metrics::resource_metrics("PodMetrics", "pods", "pod", true),
];

/// The built-in resource served at `group`/`version` under `plural`.
pub fn find(group: &str, version: &str, plural: &str) -> Option<&'static Resource> {
    RESOURCES
        .iter()
        .find(|r| r.group == group && r.version == version && r.plural == plural)
}

/// The built-in resource of a kind.
pub fn by_kind(group: &str, kind: &str) -> Option<&'static Resource> {
    RESOURCES
        .iter()
        .find(|r| r.group == group && r.kind == kind)
}

/// The group/version pairs of the built-in resources, core first.
pub fn group_versions() -> Vec<(&'static str, &'static str)> {
    group_versions_of(RESOURCES.iter())
}

fn group_versions_of<'a>(
    rs: impl Iterator<Item = &'a Resource>,
) -> Vec<(&'static str, &'static str)> {
    let mut out: Vec<(&str, &str)> = Vec::new();
    for r in rs {
        if !out.contains(&(r.group, r.version)) {
            out.push((r.group, r.version));
        }
    }
    out
}

/// Every resource served: the built-in ones and those of the
/// CustomResourceDefinitions in the store, which change at run time.
#[derive(Default)]
pub struct Registry {
    custom: RwLock<Arc<Vec<&'static Resource>>>,
}

impl Registry {
    /// The resource served at `group`/`version` under `plural`.
    pub fn find(&self, group: &str, version: &str, plural: &str) -> Option<&'static Resource> {
        find(group, version, plural).or_else(|| {
            self.custom()
                .iter()
                .find(|r| r.group == group && r.version == version && r.plural == plural)
                .copied()
        })
    }

    /// The custom resources served now.
    pub fn custom(&self) -> Arc<Vec<&'static Resource>> {
        self.custom
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Every resource, built-in ones first.
    pub fn all(&self) -> Vec<&'static Resource> {
        RESOURCES
            .iter()
            .chain(self.custom().iter().copied())
            .collect()
    }

    /// Whether what is served at `group`/`version` is only a default an
    /// APIService backed by a Service may replace: no object of it is
    /// stored (the resource metrics).
    pub fn replaceable(&self, group: &str, version: &str) -> bool {
        let mut of = RESOURCES
            .iter()
            .filter(|r| r.group == group && r.version == version)
            .peekable();
        of.peek().is_some() && of.all(|r| !r.stored)
    }

    /// The group/version pairs served, core first; a group's versions in
    /// Kubernetes' priority order (`v2` before `v1` before `v1beta1`).
    pub fn group_versions(&self) -> Vec<(&'static str, &'static str)> {
        let mut out = group_versions();
        let custom = self.custom();
        let mut extra = group_versions_of(custom.iter().copied());
        extra.sort_by(|a, b| {
            a.0.cmp(b.0)
                .then_with(|| custom::version_priority(b.1).cmp(&custom::version_priority(a.1)))
        });
        out.extend(extra);
        out
    }

    /// Replaces the custom resources.
    pub fn set_custom(&self, rs: Vec<&'static Resource>) {
        *self.custom.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(rs);
    }
}

impl std::fmt::Debug for Resource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.plural, self.group)
    }
}

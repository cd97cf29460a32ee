//! Object semantics shared by the HTTP API and the in-process controllers:
//! metadata, defaulting, validation, preconditions, graceful deletion.

use serde_json::{Value, json};

mod addresses;
mod options;

pub use options::{
    DeleteOpts, FOREGROUND_DELETION, ORPHAN, Page, PageQuery, PatchType, Propagation, WriteOpts,
    Written,
};

use std::sync::Arc;

use crate::admission::{Admission, Attempt, Operation, Review, Webhooks};
use crate::custom;
use crate::kinds::{self, Allocation, Deletion};
use crate::resources::{self, Registry, Resource, Sub};
use crate::validation::{self};
use shoal_machinery::error::{ApiError, Result};
use shoal_machinery::meta::{self, metadata};
use shoal_machinery::patch;
use shoal_machinery::selectors::{FieldSelector, LabelSelector};
use shoal_store::{Command, Cond, Failure, Outcome, Store, Stored};

/// The object API over the store.
#[derive(Clone)]
pub struct Objects {
    store: Store,
    registry: Arc<Registry>,
    admission: Arc<[Arc<dyn Admission>]>,
    webhooks: Option<Arc<dyn Webhooks>>,
}

fn outcome_err(r: &Resource, name: &str, f: Failure) -> ApiError {
    match f {
        Failure::NotFound => ApiError::not_found(r.group, r.plural, name),
        Failure::AlreadyExists => ApiError::already_exists(r.group, r.plural, name),
        Failure::Conflict { .. } => ApiError::conflict(r.group, r.plural, name),
    }
}

/// Everything but `metadata` and `status`: a change here bumps `generation`.
fn spec_view(obj: &Value) -> Value {
    let mut v = obj.clone();
    if let Some(m) = v.as_object_mut() {
        m.remove("metadata");
        m.remove("status");
    }
    v
}

impl Objects {
    /// The API over `store`.
    pub fn new(store: Store) -> Self {
        let objects = Self {
            store,
            registry: Arc::default(),
            admission: Arc::new([]),
            webhooks: None,
        };
        objects.refresh_custom();
        objects
    }

    /// These objects with `plugins` admitting every create and update, in
    /// order.
    pub fn with_admission(mut self, plugins: Vec<Arc<dyn Admission>>) -> Self {
        self.admission = plugins.into();
        self
    }

    /// These objects with `webhooks` called on every create and update
    /// after the plugins.
    pub fn with_webhooks(mut self, webhooks: Arc<dyn Webhooks>) -> Self {
        self.webhooks = Some(webhooks);
        self
    }

    /// The mutating webhooks' phase of a write.
    async fn mutate(
        &self,
        operation: Operation,
        (r, sub): (&Resource, Option<Sub>),
        object: &mut Value,
        old: Option<&Value>,
        opts: &WriteOpts,
    ) -> Result<()> {
        let Some(w) = &self.webhooks else {
            return Ok(());
        };
        w.mutate(review(operation, (r, sub), old, opts), object)
            .await
    }

    /// The validating webhooks' phase of a write.
    async fn validate_by_webhooks(
        &self,
        operation: Operation,
        (r, sub): (&Resource, Option<Sub>),
        object: &Value,
        old: Option<&Value>,
        opts: &WriteOpts,
    ) -> Result<()> {
        let Some(w) = &self.webhooks else {
            return Ok(());
        };
        w.validate(review(operation, (r, sub), old, opts), object)
            .await
    }

    /// Runs the admission plugins over a write.
    fn admit(
        &self,
        operation: Operation,
        r: &Resource,
        object: &mut Value,
        old: Option<&Value>,
        opts: &WriteOpts,
    ) -> Result<Vec<String>> {
        let mut warnings = Vec::new();
        for plugin in self.admission.iter() {
            plugin.admit(Attempt {
                operation,
                resource: r,
                object,
                old,
                user: opts.user.as_deref(),
                dry_run: opts.dry_run,
                warnings: &mut warnings,
            })?;
        }
        Ok(warnings)
    }

    /// Every resource served now, custom ones included.
    pub fn resources(&self) -> &Registry {
        &self.registry
    }

    /// Serves the resources of the CustomResourceDefinitions stored now.
    pub fn refresh_custom(&self) {
        let crds = resources::by_kind("apiextensions.k8s.io", "CustomResourceDefinition")
            .expect("definitions are served");
        let (items, _) = self.store.list(&crds.prefix(None));
        let values: Vec<&Value> = items.iter().map(|s| &*s.value).collect();
        self.registry.set_custom(custom::served(&values));
    }

    fn wrote(&self, r: &Resource) {
        if kinds::of(r).allocation == Allocation::ServedKinds {
            self.refresh_custom();
        }
    }

    /// The underlying store.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Waits until this server has applied every write acknowledged
    /// anywhere before the call: reads after it are linearizable, as
    /// Kubernetes' reads without a `resourceVersion` are (503 when the
    /// store's group has no quorum).
    pub async fn consistent(&self) -> Result<()> {
        self.store.linearize().await.map_err(unavailable)
    }

    /// One object.
    pub fn get(&self, r: &Resource, ns: &str, name: &str) -> Result<Stored> {
        self.store
            .get(&r.key(ns, name))
            .ok_or_else(|| ApiError::not_found(r.group, r.plural, name))
    }

    /// Objects of a resource, filtered, and the list's revision.
    pub fn list(
        &self,
        r: &Resource,
        ns: Option<&str>,
        labels: &LabelSelector,
        fields: &FieldSelector,
    ) -> (Vec<Stored>, u64) {
        let (items, rev) = self.store.list(&r.prefix(ns));
        let items = items
            .into_iter()
            .filter(|s| labels.matches_object(&s.value) && fields.matches(&s.value))
            .collect();
        (items, rev)
    }

    /// Whether any object of a resource (in `ns`) satisfies `pred`, read
    /// as they are now, in key order, stopping at the first.
    pub fn any(&self, r: &Resource, ns: Option<&str>, pred: impl Fn(&Value) -> bool) -> bool {
        let prefix = r.prefix(ns);
        self.store
            .view(&prefix, None)
            .is_ok_and(|view| view.range(&prefix, None).any(|s| pred(&s.value)))
    }

    /// Keeps a resource's objects as they were at `revision` while a paged
    /// list of them is read.
    pub fn pin_list(&self, r: &Resource, ns: Option<&str>, revision: u64) {
        self.store.pin(&r.prefix(ns), revision);
    }

    /// One page of a list: at most `limit` objects of a resource that
    /// match the selectors, after the object named `after` (its
    /// `namespace/name`), as they are now or were at revision `at` (410
    /// Expired when the changes since are no longer kept). It costs the
    /// objects it reads, not the whole resource.
    pub fn page(&self, r: &Resource, ns: Option<&str>, query: &PageQuery<'_>) -> Result<Page> {
        let prefix = r.prefix(ns);
        let view = self.store.view(&prefix, query.at).map_err(|too_old| {
            ApiError::expired(format!(
                "The provided continue parameter is too old to display a consistent list result (resourceVersion {}; the oldest kept is {}). Start a new list without the continue parameter.",
                query.at.unwrap_or_default(),
                too_old.oldest
            ))
        })?;
        let after = query.after.map(|a| format!("{}{a}", r.prefix(None)));
        let mut matching = view
            .range(&prefix, after.as_deref())
            .filter(|s| query.labels.matches_object(&s.value) && query.fields.matches(&s.value));
        let items: Vec<Stored> = matching.by_ref().take(query.limit).cloned().collect();
        let more = matching.next().is_some();
        Ok(Page {
            items,
            revision: view.revision(),
            more,
        })
    }

    async fn put(&self, r: &Resource, obj: Value, cond: Cond) -> Result<Value> {
        if meta::deeper_than(&obj, meta::MAX_DEPTH) {
            return Err(ApiError::bad_request(format!(
                "the object nests more than {} levels deep",
                meta::MAX_DEPTH
            )));
        }
        let name = meta::name(&obj).to_string();
        let key = r.key(meta::namespace(&obj), &name);
        match self
            .store
            .write(Command::Put {
                key,
                value: obj,
                cond,
            })
            .await
            .map_err(unavailable)?
        {
            Outcome::Applied {
                object: Some(o), ..
            } => {
                self.wrote(r);
                Ok(o)
            }
            Outcome::Applied { object: None, .. } => {
                Err(ApiError::internal("put applied without an object"))
            }
            Outcome::Failed(f) => Err(outcome_err(r, &name, f)),
        }
    }

    async fn remove(&self, r: &Resource, ns: &str, name: &str, cond: Cond) -> Result<Value> {
        match self
            .store
            .write(Command::Delete {
                key: r.key(ns, name),
                cond,
            })
            .await
            .map_err(unavailable)?
        {
            Outcome::Applied { object, .. } => {
                self.wrote(r);
                Ok(object.unwrap_or(Value::Null))
            }
            Outcome::Failed(f) => Err(outcome_err(r, name, f)),
        }
    }

    fn check_type_meta(r: &Resource, obj: &mut Value) -> Result<()> {
        let av = r.api_version();
        let m = obj
            .as_object_mut()
            .ok_or_else(|| ApiError::bad_request("the object is not a JSON object"))?;
        match m.get("apiVersion").and_then(Value::as_str) {
            Some(v) if !r.accepts_version(v) => {
                return Err(ApiError::bad_request(format!(
                    "the API version in the data ({v}) does not match the expected API version ({av})"
                )));
            }
            _ => {}
        }
        match m.get("kind").and_then(Value::as_str) {
            Some(k) if k != r.kind => {
                return Err(ApiError::bad_request(format!(
                    "the kind in the data ({k}) does not match the expected kind ({})",
                    r.kind
                )));
            }
            _ => {}
        }
        m.insert("apiVersion".into(), json!(av));
        m.insert("kind".into(), json!(r.kind));
        Ok(())
    }

    /// Creates an object in namespace `ns` (ignored for cluster resources).
    pub async fn create(
        &self,
        r: &Resource,
        ns: &str,
        mut obj: Value,
        opts: WriteOpts,
    ) -> Result<Written> {
        let mut warnings = validation::decode(r, &obj, opts.field_validation)?;
        Self::check_type_meta(r, &mut obj)?;
        if r.custom.is_some_and(|c| c.terminating) {
            return Err(ApiError {
                code: 405,
                reason: "MethodNotAllowed",
                message: "create not allowed while custom resource definition is terminating"
                    .into(),
                details: None,
            });
        }
        let mut obj = r.to_stored(obj);
        let m = metadata(&mut obj);
        if r.namespaced {
            match m.get("namespace").and_then(Value::as_str) {
                Some(n) if !n.is_empty() && n != ns => {
                    return Err(ApiError::bad_request(
                        "the namespace of the provided object does not match the namespace sent on the request",
                    ));
                }
                _ => {
                    m.insert("namespace".into(), json!(ns));
                }
            }
        } else {
            m.remove("namespace");
        }
        let generate = m
            .get("generateName")
            .and_then(Value::as_str)
            .map(String::from);
        let named = m
            .get("name")
            .and_then(Value::as_str)
            .is_some_and(|n| !n.is_empty());
        if !named && let Some(prefix) = &generate {
            m.insert(
                "name".into(),
                json!(format!("{prefix}{}", meta::random_suffix(5))),
            );
        }
        m.insert("uid".into(), json!(uuid::Uuid::new_v4().to_string()));
        m.insert("creationTimestamp".into(), json!(meta::now()));
        m.insert("generation".into(), json!(1));
        for k in [
            "resourceVersion",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "selfLink",
        ] {
            m.remove(k);
        }
        if r.namespaced {
            match self.store.get(&resources::RESOURCES[0].key("", ns)) {
                None => return Err(ApiError::not_found("", "namespaces", ns)),
                Some(n) if n.value.pointer("/metadata/deletionTimestamp").is_some() => {
                    return Err(ApiError {
                        code: 403,
                        reason: "Forbidden",
                        message: format!(
                            "{} \"{}\" is forbidden: unable to create new content in namespace {ns} because it is being terminated",
                            r.plural,
                            meta::name(&obj)
                        ),
                        details: None,
                    });
                }
                Some(_) => {}
            }
        }
        if let Some(manager) = &opts.manager {
            shoal_machinery::apply::record_update(None, &mut obj, manager, None, &meta::now());
        }
        let strategy = kinds::of(r);
        (strategy.prepare)(&mut obj);
        if strategy.records_requester
            && let Some(spec) = obj.get_mut("spec").and_then(Value::as_object_mut)
        {
            let user = opts.user.as_deref();
            spec.insert(
                "username".into(),
                json!(user.map_or("", |u| u.name.as_str())),
            );
            spec.insert(
                "groups".into(),
                json!(user.map_or(&[][..], |u| &u.groups[..])),
            );
        }
        strategy.default(&mut obj);
        if let Some(c) = r.custom {
            shoal_machinery::schema::prune(&c.schema, &mut obj, &mut Vec::new());
            shoal_machinery::schema::default(&c.schema, &mut obj);
        }
        if strategy.allocation == Allocation::ServiceAddresses {
            self.allocate_service(&mut obj, None)?;
        }
        warnings.extend(self.admit(Operation::Create, r, &mut obj, None, &opts)?);
        self.mutate(Operation::Create, (r, None), &mut obj, None, &opts)
            .await?;
        validation::validate(r, &obj)?;
        self.validate_by_webhooks(Operation::Create, (r, None), &obj, None, &opts)
            .await?;
        if opts.dry_run {
            return Ok(Written {
                object: obj,
                warnings,
            });
        }
        for attempt in 0..5 {
            match self.put(r, obj.clone(), Cond::Absent).await {
                Err(e)
                    if e.reason == "AlreadyExists"
                        && !named
                        && generate.is_some()
                        && attempt < 4 =>
                {
                    let prefix = generate.clone().unwrap_or_default();
                    metadata(&mut obj).insert(
                        "name".into(),
                        json!(format!("{prefix}{}", meta::random_suffix(5))),
                    );
                }
                other => return other.map(|object| Written { object, warnings }),
            }
        }
        Err(ApiError::internal("generateName retries exhausted"))
    }

    /// Replaces an object (PUT), or its status with `sub = Some(Status)`.
    pub async fn update(
        &self,
        r: &Resource,
        ns: &str,
        name: &str,
        mut obj: Value,
        sub: Option<Sub>,
        opts: WriteOpts,
    ) -> Result<Written> {
        let warnings = validation::decode(r, &obj, opts.field_validation)?;
        Self::check_type_meta(r, &mut obj)?;
        if meta::name(&obj) != name {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({}) does not match the name on the URL ({name})",
                meta::name(&obj)
            )));
        }
        let wanted: Option<u64> =
            meta::str_at(&obj, "/metadata/resourceVersion").and_then(|s| s.parse().ok());
        for _ in 0..8 {
            let cur = self.get(r, ns, name)?;
            let cond = Cond::Revision(wanted.unwrap_or(cur.revision));
            match self
                .update_from(r, &cur, obj.clone(), sub, &opts, cond)
                .await
            {
                Err(e) if e.reason == "Conflict" && wanted.is_none() => continue,
                other => return other.map(|object| Written { object, warnings }),
            }
        }
        Err(ApiError::conflict(r.group, r.plural, name))
    }

    /// Applies a patch to the current object and stores the result.
    #[allow(clippy::too_many_arguments)]
    pub async fn patch(
        &self,
        r: &Resource,
        ns: &str,
        name: &str,
        ty: PatchType,
        body: &Value,
        sub: Option<Sub>,
        opts: WriteOpts,
    ) -> Result<Written> {
        for _ in 0..8 {
            let cur = self.get(r, ns, name)?;
            let base = r.served_as(&cur.value);
            let patched = match ty {
                PatchType::Json => patch::json(&base, body)?,
                PatchType::Merge => patch::merge(&base, body),
                PatchType::Strategic => patch::strategic_merge(&base, body)?,
            };
            let warnings = validation::decode(r, &patched, opts.field_validation)?;
            let pinned: Option<u64> =
                meta::str_at(&patched, "/metadata/resourceVersion").and_then(|s| s.parse().ok());
            let cond = Cond::Revision(
                pinned
                    .filter(|p| *p != cur.revision)
                    .unwrap_or(cur.revision),
            );
            match self.update_from(r, &cur, patched, sub, &opts, cond).await {
                Err(e) if e.reason == "Conflict" && pinned == Some(cur.revision) => continue,
                other => return other.map(|object| Written { object, warnings }),
            }
        }
        Err(ApiError::conflict(r.group, r.plural, name))
    }

    /// Server-side apply of `config` by `manager` (see [`shoal_machinery::apply`]):
    /// creates the object when it does not exist, which the flag says.
    #[allow(clippy::too_many_arguments)]
    pub async fn apply(
        &self,
        r: &Resource,
        ns: &str,
        name: &str,
        mut config: Value,
        manager: &str,
        force: bool,
        opts: WriteOpts,
    ) -> Result<(Written, bool)> {
        if !config.is_object() {
            return Err(ApiError::bad_request(
                "an apply configuration must be an object",
            ));
        }
        for (field, name) in [("kind", "Kind"), ("apiVersion", "APIVersion")] {
            if meta::str_at(&config, &format!("/{field}")).is_none_or(str::is_empty) {
                return Err(ApiError::bad_request(format!(
                    "Object '{name}' is missing in '{config}'"
                )));
            }
        }
        match meta::str_at(&config, "/metadata/name") {
            Some(n) if n != name => {
                return Err(ApiError::bad_request(format!(
                    "the name of the object ({n}) does not match the name on the URL ({name})"
                )));
            }
            Some(_) => {}
            None => {
                metadata(&mut config).insert("name".into(), json!(name));
            }
        }
        // Ownership is the server's to record, as Apply, not Update.
        metadata(&mut config).remove("managedFields");
        let opts = WriteOpts {
            manager: None,
            ..opts
        };
        for _ in 0..8 {
            let Some(cur) = self.store.get(&r.key(ns, name)) else {
                let obj =
                    shoal_machinery::apply::apply(None, &config, manager, force, &meta::now())?;
                match self.create(r, ns, obj, opts.clone()).await {
                    Err(e) if e.reason == "AlreadyExists" => continue,
                    other => return other.map(|w| (w, true)),
                }
            };
            let merged = shoal_machinery::apply::apply(
                Some(&r.served_as(&cur.value)),
                &config,
                manager,
                force,
                &meta::now(),
            )?;
            let warnings = validation::decode(r, &merged, opts.field_validation)?;
            match self
                .update_from(r, &cur, merged, None, &opts, Cond::Revision(cur.revision))
                .await
            {
                Err(e) if e.reason == "Conflict" => continue,
                other => return other.map(|object| (Written { object, warnings }, false)),
            }
        }
        Err(ApiError::conflict(r.group, r.plural, name))
    }

    async fn update_from(
        &self,
        r: &Resource,
        cur: &Stored,
        mut obj: Value,
        sub: Option<Sub>,
        opts: &WriteOpts,
        cond: Cond,
    ) -> Result<Value> {
        Self::check_type_meta(r, &mut obj)?;
        let mut obj = r.to_stored(obj);
        let old = &*cur.value;
        // A uid in the body is a precondition, as Kubernetes takes it: the
        // writer meant that object, not a newer one of the same name.
        if let Some(uid) = meta::str_at(&obj, "/metadata/uid").filter(|u| !u.is_empty())
            && uid != meta::uid(old)
        {
            return Err(ApiError::uid_precondition(uid, meta::uid(old)));
        }
        let mut new = if sub == Some(Sub::Status) {
            let mut n = old.clone();
            n["status"] = obj.get("status").cloned().unwrap_or(Value::Null);
            n
        } else if sub == Some(Sub::EphemeralContainers) {
            crate::kinds::pods::ephemeral_containers(old, &obj)?
        } else if sub == Some(Sub::Approval) {
            let mut n = old.clone();
            if !n.get("status").is_some_and(Value::is_object) {
                n["status"] = json!({});
            }
            n["status"]["conditions"] = obj
                .pointer("/status/conditions")
                .cloned()
                .unwrap_or(Value::Null);
            n
        } else {
            if r.has(Sub::Status) {
                match old.get("status") {
                    Some(s) => obj["status"] = s.clone(),
                    None => {
                        if let Some(m) = obj.as_object_mut() {
                            m.remove("status");
                        }
                    }
                }
            }
            for field in kinds::of(r).kept_on_update {
                match old.get(*field) {
                    Some(v) => obj[*field] = v.clone(),
                    None => {
                        if let Some(m) = obj.as_object_mut() {
                            m.remove(*field);
                        }
                    }
                }
            }
            obj
        };
        {
            let om = old.get("metadata").cloned().unwrap_or_default();
            let nm = metadata(&mut new);
            for k in [
                "uid",
                "creationTimestamp",
                "namespace",
                "name",
                "deletionTimestamp",
                "deletionGracePeriodSeconds",
                "generation",
            ] {
                match om.get(k) {
                    Some(v) => nm.insert(k.into(), v.clone()),
                    None => nm.remove(k),
                };
            }
            nm.insert("resourceVersion".into(), json!(cur.revision.to_string()));
        }
        if let Some(manager) = &opts.manager {
            let subresource = sub.map(Sub::name);
            shoal_machinery::apply::record_update(
                Some(old),
                &mut new,
                manager,
                subresource,
                &meta::now(),
            );
        }
        kinds::of(r).default(&mut new);
        if let Some(c) = r.custom {
            shoal_machinery::schema::prune(&c.schema, &mut new, &mut Vec::new());
            shoal_machinery::schema::default(&c.schema, &mut new);
        }
        if kinds::of(r).allocation == Allocation::ServiceAddresses {
            self.allocate_service(&mut new, Some(old))?;
        }
        // Warnings of updates are not carried back (yet).
        let _ = self.admit(Operation::Update, r, &mut new, Some(old), opts)?;
        self.mutate(Operation::Update, (r, sub), &mut new, Some(old), opts)
            .await?;
        if spec_view(&new) != spec_view(old) {
            let g = old
                .pointer("/metadata/generation")
                .and_then(Value::as_i64)
                .unwrap_or(0);
            metadata(&mut new).insert("generation".into(), json!(g + 1));
        }
        validation::validate(r, &new)?;
        validation::immutable(r, old, &new)?;
        if new != *old {
            self.validate_by_webhooks(Operation::Update, (r, sub), &new, Some(old), opts)
                .await?;
        }
        if let Cond::Revision(rev) = cond
            && rev != cur.revision
        {
            return Err(ApiError::conflict(r.group, r.plural, meta::name(old)));
        }
        if new == *old || opts.dry_run {
            return Ok(new);
        }
        let finalizing = new.pointer("/metadata/deletionTimestamp").is_some()
            && new
                .pointer("/metadata/finalizers")
                .and_then(Value::as_array)
                .is_none_or(Vec::is_empty)
            && !(kinds::of(r).deletion == Deletion::Graceful
                && meta::str_at(&new, "/spec/nodeName").is_some());
        if finalizing {
            return self
                .remove(r, meta::namespace(&new), meta::name(&new), cond)
                .await;
        }
        self.put(r, new, cond).await
    }

    /// Stores `obj` in place of the object last written at `revision`,
    /// bypassing update semantics (for in-process writers that built the
    /// whole object, such as the scheduler's binding).
    pub(crate) async fn replace_at(
        &self,
        r: &Resource,
        obj: Value,
        revision: u64,
    ) -> Result<Value> {
        self.put(r, obj, Cond::Revision(revision)).await
    }

    /// Deletes an object. Pods bound to a node and objects with finalizers
    /// are marked with `deletionTimestamp` and removed later.
    pub async fn delete(
        &self,
        r: &Resource,
        ns: &str,
        name: &str,
        opts: DeleteOpts,
    ) -> Result<Value> {
        let deletion = kinds::of(r).deletion;
        for _ in 0..8 {
            let cur = self.get(r, ns, name)?;
            let obj = &*cur.value;
            if opts.uid.as_deref().is_some_and(|u| u != meta::uid(obj)) {
                return Err(ApiError::conflict(r.group, r.plural, name));
            }
            if opts.resource_version.is_some_and(|v| v != cur.revision) {
                return Err(ApiError::conflict(r.group, r.plural, name));
            }
            let finalizers = obj
                .pointer("/metadata/finalizers")
                .and_then(Value::as_array);
            // Pods keep their own deletion path (the node stops them); a
            // policy other than Background holds any other object with a
            // finalizer while the garbage collector handles its dependents.
            let add_finalizer = opts
                .propagation
                .finalizer()
                .filter(|_| deletion == Deletion::Immediate)
                .filter(|f| finalizers.is_none_or(|fs| !fs.contains(&json!(f))));
            let has_finalizers =
                finalizers.is_some_and(|f| !f.is_empty()) || add_finalizer.is_some();
            let bound_pod = deletion == Deletion::Graceful
                && meta::str_at(obj, "/spec/nodeName").is_some()
                && obj
                    .pointer("/status/phase")
                    .and_then(Value::as_str)
                    .is_none_or(|p| p != "Succeeded" && p != "Failed");
            let grace = opts
                .grace_period
                .or_else(|| {
                    obj.pointer("/spec/terminationGracePeriodSeconds")
                        .and_then(Value::as_i64)
                })
                .unwrap_or(30)
                .max(0);
            let namespace = matches!(deletion, Deletion::Contents { .. });
            if let Deletion::Contents { protected } = deletion
                && protected.contains(&name)
            {
                return Err(ApiError {
                    code: 403,
                    reason: "Forbidden",
                    message: format!(
                        "{} \"{name}\" is forbidden: this namespace may not be deleted",
                        r.plural
                    ),
                    details: None,
                });
            }
            // A namespace is emptied by the namespace controller first.
            let graceful = has_finalizers || (bound_pod && grace > 0) || namespace;
            if opts.dry_run {
                return Ok(obj.clone());
            }
            let result = if graceful {
                if obj.pointer("/metadata/deletionTimestamp").is_some()
                    && !bound_pod
                    && add_finalizer.is_none()
                {
                    return Ok(obj.clone());
                }
                let mut marked = obj.clone();
                if namespace {
                    marked["status"]["phase"] = json!("Terminating");
                }
                let m = metadata(&mut marked);
                if let Some(f) = add_finalizer {
                    let list = m.entry("finalizers").or_insert_with(|| json!([]));
                    if let Some(list) = list.as_array_mut() {
                        list.push(json!(f));
                    }
                }
                let already = m.get("deletionGracePeriodSeconds").and_then(Value::as_i64);
                if already.is_some_and(|a| a <= grace) && add_finalizer.is_none() {
                    return Ok(obj.clone());
                }
                m.insert(
                    "deletionTimestamp".into(),
                    json!(meta::now_plus(if bound_pod { grace } else { 0 })),
                );
                m.insert(
                    "deletionGracePeriodSeconds".into(),
                    json!(if bound_pod { grace } else { 0 }),
                );
                self.put(r, marked, Cond::Revision(cur.revision)).await
            } else {
                self.remove(r, ns, name, Cond::Revision(cur.revision)).await
            };
            match result {
                Err(e) if e.reason == "Conflict" => continue,
                other => return other,
            }
        }
        Err(ApiError::conflict(r.group, r.plural, name))
    }

    /// Removes a terminating namespace once it holds nothing.
    pub async fn finalize_namespace(&self, name: &str) -> Result<Value> {
        let r = resources::by_kind("", "Namespace").expect("namespaces are served");
        let cur = self.get(r, "", name)?;
        if cur.value.pointer("/metadata/deletionTimestamp").is_none() {
            return Ok((*cur.value).clone());
        }
        self.remove(r, "", name, Cond::Revision(cur.revision)).await
    }

    /// Records a core/v1 Event about `involved`.
    pub async fn event(
        &self,
        involved: &Value,
        ty: &str,
        reason: &str,
        message: &str,
        component: &str,
    ) {
        let ev = resources::by_kind("", "Event").expect("events are served");
        let ns = match meta::namespace(involved) {
            "" => "default",
            n => n,
        };
        let now = meta::now();
        let obj = json!({
            "metadata": {"name": format!("{}.{:x}", meta::name(involved), std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos())), "namespace": ns},
            "involvedObject": {
                "kind": involved.get("kind"), "apiVersion": involved.get("apiVersion"),
                "name": meta::name(involved), "namespace": meta::namespace(involved),
                "uid": meta::uid(involved),
                "resourceVersion": involved.pointer("/metadata/resourceVersion"),
            },
            "reason": reason, "message": message, "type": ty,
            "source": {"component": component},
            "firstTimestamp": now, "lastTimestamp": now, "count": 1,
            "reportingComponent": component, "reportingInstance": "",
        });
        if let Err(e) = self.create(ev, ns, obj, WriteOpts::default()).await {
            tracing::warn!("recording event {reason}: {e}");
        }
    }
}

/// A write the store could not make: the API answers 503.
fn unavailable(e: shoal_store::StoreError) -> ApiError {
    ApiError::unavailable(format!("storage is unavailable: {e}"))
}
/// A write as the webhooks see it.
fn review<'a>(
    operation: Operation,
    (r, sub): (&'a Resource, Option<Sub>),
    old: Option<&'a Value>,
    opts: &'a WriteOpts,
) -> Review<'a> {
    Review {
        operation,
        resource: r,
        subresource: sub.map(Sub::name),
        old,
        user: opts.user.as_deref(),
        dry_run: opts.dry_run,
    }
}

#![no_main]
//! The built-in admission plugins over any object, kind, user and
//! operation, in a namespace with a LimitRange, a ResourceQuota and Pod
//! Security at `restricted`: they never panic; a node's credentials never
//! create a pod; a pod LimitRanger admits has every container's memory
//! limit within the range's maximum.

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use serde_json::{Value, json};
use shoal_machinery::user::User;
use shoal_registry::admission::{
    Admission, Attempt, Operation, limit_ranger::LimitRanger, node_restriction::NodeRestriction,
    pod_security::PodSecurity, resource_quota::ResourceQuotas, service_account::ServiceAccounts,
};
use shoal_registry::objects::{Objects, WriteOpts};
use shoal_registry::resources;
use shoal_store::Store;

struct World {
    _rt: tokio::runtime::Runtime,
    store: Store,
}

fn world() -> &'static World {
    static W: OnceLock<World> = OnceLock::new();
    W.get_or_init(|| {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("a runtime");
        let dir = std::env::temp_dir().join(format!("shoal-fuzz-admission-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let store = rt
            .block_on(Store::open_single(&dir, 1, "127.0.0.1:0"))
            .expect("a store");
        let objects = Objects::new(store.clone());
        let create = |kind: &str, ns: &str, obj: Value| {
            let r = resources::by_kind("", kind).expect("served");
            rt.block_on(objects.create(r, ns, obj, WriteOpts::default()))
                .expect("seeded");
        };
        create("Namespace", "", json!({"metadata": {"name": "f",
            "labels": {"pod-security.kubernetes.io/enforce": "restricted"}}}));
        create("ServiceAccount", "f", json!({"metadata": {"name": "default", "namespace": "f"}}));
        create("LimitRange", "f", json!({"metadata": {"name": "l", "namespace": "f"},
            "spec": {"limits": [{"type": "Container", "default": {"memory": "128Mi"},
                "max": {"memory": "1Gi"}}]}}));
        create("ResourceQuota", "f", json!({"metadata": {"name": "q", "namespace": "f"},
            "spec": {"hard": {"pods": "1000", "requests.cpu": "100", "configmaps": "5"}}}));
        World { _rt: rt, store }
    })
}

fn memory_limits_within(pod: &Value, max: u64) -> bool {
    pod.pointer("/spec/containers")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|c| c.pointer("/resources/limits/memory"))
        .all(|q| {
            let q = q.as_str().map(str::to_string).unwrap_or_else(|| q.to_string());
            shoal_quantity::bytes(&q).is_none_or(|b| b <= max)
        })
}

fuzz_target!(|data: &[u8]| {
    let Some((&pick, rest)) = data.split_first() else {
        return;
    };
    let Ok(mut obj) = serde_json::from_slice::<Value>(rest) else {
        return;
    };
    if !obj.is_object() {
        return;
    }
    obj["metadata"]["namespace"] = json!("f");
    let kinds = ["Pod", "ConfigMap", "Service", "Secret", "Node", "Namespace"];
    let kind = kinds[usize::from(pick & 7) % kinds.len()];
    let r = resources::by_kind("", kind).expect("served");
    let users = [
        None,
        Some(User { name: "system:node:a".into(), groups: vec!["system:nodes".into(), "system:authenticated".into()] }),
        Some(User { name: "alice".into(), groups: vec!["system:authenticated".into()] }),
    ];
    let user = &users[usize::from(pick >> 3 & 3) % users.len()];
    let operation = if pick & 0x40 != 0 { Operation::Update } else { Operation::Create };
    let old = obj.clone();
    let store = world().store.clone();
    let plugins: Vec<Box<dyn Admission>> = vec![
        Box::new(LimitRanger(store.clone())),
        Box::new(ServiceAccounts(store.clone())),
        Box::new(PodSecurity(store.clone())),
        Box::new(NodeRestriction),
        Box::new(ResourceQuotas(store)),
    ];
    for (i, p) in plugins.iter().enumerate() {
        let result = p.admit(Attempt {
            operation,
            resource: r,
            object: &mut obj,
            old: (operation == Operation::Update).then_some(&old),
            user: user.as_ref(),
            dry_run: pick & 0x80 != 0,
            warnings: &mut Vec::new(),
        });
        if i == 0 && result.is_ok() && kind == "Pod" && operation == Operation::Create {
            assert!(memory_limits_within(&obj, 1 << 30), "LimitRanger admitted {obj}");
        }
        if i == 3 && kind == "Pod" && operation == Operation::Create && user.as_ref().is_some_and(|u| u.name.starts_with("system:node:")) {
            assert!(result.is_err(), "a node created a pod");
        }
        if result.is_err() {
            break;
        }
    }
});

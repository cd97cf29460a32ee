//! Leader election as Kubernetes records it: the Leases
//! `kube-system/kube-scheduler` and `kube-system/kube-controller-manager`
//! name the server that runs the scheduler and the controllers, renewed
//! every 2 s and valid 15 s, as kube-scheduler's and
//! kube-controller-manager's leader election keep them.
//!
//! The election itself is the store's: a server takes the Leases when its
//! store leads the group (a server that no longer leads stops its duties
//! at once, and one cut off from the others cannot write), and runs its
//! duties only while it renews them. So they move with a failover at once
//! instead of waiting for the old holder's lease to run out, and a
//! leader that cannot write its Leases for their whole duration stops.

use std::time::Duration;

use serde_json::{Value, json};

use shoal_machinery::error::ApiError;
use shoal_machinery::meta;
use shoal_registry::objects::{Objects, PatchType, WriteOpts};
use shoal_registry::resources;

/// The Leases held, one per component.
pub(crate) const COMPONENTS: [&str; 2] = ["kube-scheduler", "kube-controller-manager"];
/// How long a Lease is valid after its renewal.
pub(crate) const LEASE_DURATION: Duration = Duration::from_secs(15);
/// How often the holder renews.
pub(crate) const RENEW_PERIOD: Duration = Duration::from_secs(2);

/// The Lease's spec once `identity` has renewed it at `now` (an RFC 3339
/// time with microseconds): the acquire time and transitions move only
/// when the holder changes.
fn renewed_spec(current: Option<&Value>, identity: &str, now: &str) -> Value {
    let spec = current.and_then(|l| l.get("spec"));
    let holder = spec.and_then(|s| meta::str_at(s, "/holderIdentity"));
    let transitions = spec
        .and_then(|s| s.get("leaseTransitions"))
        .and_then(Value::as_i64)
        .unwrap_or(0);
    let (acquired, transitions) = match holder {
        Some(h) if h == identity => (
            spec.and_then(|s| meta::str_at(s, "/acquireTime"))
                .unwrap_or(now)
                .to_string(),
            transitions,
        ),
        Some(_) => (now.to_string(), transitions + 1),
        None => (now.to_string(), transitions),
    };
    json!({
        "holderIdentity": identity,
        "leaseDurationSeconds": LEASE_DURATION.as_secs(),
        "acquireTime": acquired,
        "renewTime": now,
        "leaseTransitions": transitions,
    })
}

/// Takes or renews every component's Lease for `identity`.
pub(crate) async fn renew(objects: &Objects, identity: &str) -> Result<(), ApiError> {
    let lease_r = resources::by_kind("coordination.k8s.io", "Lease").expect("leases are served");
    for name in COMPONENTS {
        let now = crate::api_endpoints::micro_now();
        match objects.get(lease_r, "kube-system", name) {
            Ok(current) => {
                let spec = renewed_spec(Some(&current.value), identity, &now);
                objects
                    .patch(
                        lease_r,
                        "kube-system",
                        name,
                        PatchType::Merge,
                        &json!({ "spec": spec }),
                        None,
                        WriteOpts::default(),
                    )
                    .await?;
            }
            Err(_) => {
                let lease = json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                    "metadata": {"name": name, "namespace": "kube-system"},
                    "spec": renewed_spec(None, identity, &now)});
                objects
                    .create(lease_r, "kube-system", lease, WriteOpts::default())
                    .await?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_holder_counts_a_transition_and_a_renewal_keeps_the_acquire_time() {
        let first = renewed_spec(None, "a", "T1");
        assert_eq!(first["holderIdentity"], "a");
        assert_eq!(first["acquireTime"], "T1");
        assert_eq!(first["leaseTransitions"], 0);
        let lease = json!({ "spec": first });
        let renewed = renewed_spec(Some(&lease), "a", "T2");
        assert_eq!(renewed["acquireTime"], "T1");
        assert_eq!(renewed["renewTime"], "T2");
        assert_eq!(renewed["leaseTransitions"], 0);
        let taken = renewed_spec(Some(&json!({ "spec": renewed })), "b", "T3");
        assert_eq!(taken["holderIdentity"], "b");
        assert_eq!(taken["acquireTime"], "T3");
        assert_eq!(taken["leaseTransitions"], 1);
        assert_eq!(taken["leaseDurationSeconds"], 15);
    }
}

//! Pod CIDRs: each node gets its own range of the cluster CIDR.

use serde_json::json;

use super::{Action, Snapshot, res};
use shoal_machinery::meta::{self, str_at};

/// Gives every node a pod CIDR.
pub fn reconcile_node_cidrs(s: &Snapshot, cluster_cidr: &str, node_mask: u8) -> Vec<Action> {
    let Ok(cidr) = cluster_cidr.parse() else {
        return Vec::new();
    };
    let Ok(mut alloc) = shoal_cni::NodeCidrAllocator::new(cidr, node_mask) else {
        return Vec::new();
    };
    for n in s.of("nodes") {
        if let Some(c) = str_at(n, "/spec/podCIDR").and_then(|c| c.parse().ok()) {
            alloc.reserve(c);
        }
    }
    let node_r = res("Node", "");
    let mut actions = Vec::new();
    for n in s
        .of("nodes")
        .iter()
        .filter(|n| str_at(n, "/spec/podCIDR").is_none())
    {
        if let Ok(c) = alloc.allocate() {
            actions.push(Action::Patch {
                resource: node_r,
                namespace: String::new(),
                name: meta::name(n).to_string(),
                patch: json!({"spec": {"podCIDR": c.to_string(), "podCIDRs": [c.to_string()]}}),
                status: false,
            });
        }
    }
    actions
}

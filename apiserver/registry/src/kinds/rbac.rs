//! RBAC's kinds: Roles, ClusterRoles and their bindings.

use serde_json::{Value, json};

use super::print::{
    age_cell, age_column, col, created_at_cells, created_at_columns, name_cell, name_column,
    reference, text,
};
use super::{NameRule, Printer, Strategy};
use shoal_machinery::meta::str_at;

/// Roles.
static ROLE: Strategy = Strategy {
    printer: Printer {
        columns: created_at_columns,
        cells: created_at_cells,
    },
    name_rule: NameRule::PathSegment,
    ..Strategy::GENERIC
};

/// ClusterRoles.
static CLUSTER_ROLE: Strategy = Strategy {
    printer: Printer {
        columns: created_at_columns,
        cells: created_at_cells,
    },
    name_rule: NameRule::PathSegment,
    ..Strategy::GENERIC
};

/// The columns `kubectl get` shows for RoleBindings and ClusterRoleBindings.
pub fn role_binding_columns() -> Vec<Value> {
    vec![
        name_column(),
        col("Role", "string", 0, "The role being bound to."),
        age_column(),
        col("Users", "string", 1, "Users in the binding."),
        col("Groups", "string", 1, "Groups in the binding."),
        col(
            "ServiceAccounts",
            "string",
            1,
            "Service accounts in the binding.",
        ),
    ]
}

/// A row of [`role_binding_columns`] for `o`.
pub fn role_binding_cells(o: &Value) -> Vec<Value> {
    let subjects = |kind: &str| {
        let names = o
            .pointer("/subjects")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter(|x| x.get("kind").and_then(Value::as_str) == Some(kind))
            .map(|x| match (str_at(x, "/namespace"), str_at(x, "/name")) {
                (Some(ns), Some(n)) if kind == "ServiceAccount" => format!("{ns}/{n}"),
                (_, n) => n.unwrap_or_default().to_string(),
            })
            .collect::<Vec<_>>();
        json!(names.join(", "))
    };
    vec![
        name_cell(o),
        text(reference(o, "/roleRef")),
        age_cell(o),
        subjects("User"),
        subjects("Group"),
        subjects("ServiceAccount"),
    ]
}

/// RoleBindings.
static ROLE_BINDING: Strategy = Strategy {
    printer: Printer {
        columns: role_binding_columns,
        cells: role_binding_cells,
    },
    name_rule: NameRule::PathSegment,
    ..Strategy::GENERIC
};

/// ClusterRoleBindings.
static CLUSTER_ROLE_BINDING: Strategy = Strategy {
    printer: Printer {
        columns: role_binding_columns,
        cells: role_binding_cells,
    },
    name_rule: NameRule::PathSegment,
    ..Strategy::GENERIC
};

/// The kinds this file holds, by name.
pub(super) static KINDS: &[(&str, &Strategy)] = &[
    ("Role", &ROLE),
    ("ClusterRole", &CLUSTER_ROLE),
    ("RoleBinding", &ROLE_BINDING),
    ("ClusterRoleBinding", &CLUSTER_ROLE_BINDING),
];

//! What the resources of a CustomResourceDefinition carry: the served
//! version's schema, printer columns and scale paths, and Kubernetes'
//! order of version names. The `custom` module makes them from definitions.

use serde_json::Value;

/// What a definition says of one served version.
#[derive(Debug)]
pub struct Custom {
    /// The definition's name (`crontabs.stable.example.com`).
    pub definition: String,
    /// The version's `openAPIV3Schema`.
    pub schema: Value,
    /// The version's `additionalPrinterColumns`.
    pub columns: Vec<Column>,
    /// The paths of the `scale` subresource.
    pub scale: Option<ScalePaths>,
    /// The definition is being deleted: its objects are not created any
    /// more.
    pub terminating: bool,
    /// Every version the definition serves. Objects of one version are
    /// objects of all (conversion `None`: only `apiVersion` changes).
    pub versions: Vec<String>,
}

/// One of `additionalPrinterColumns`.
#[derive(Debug, Clone)]
pub struct Column {
    /// Header.
    pub name: String,
    /// `string`, `integer`, `number`, `boolean` or `date`.
    pub kind: String,
    /// OpenAPI format hint.
    pub format: String,
    /// Description.
    pub description: String,
    /// 0 for the default view, more for `-o wide`.
    pub priority: i64,
    /// The simple JSONPath of the value.
    pub path: String,
}

/// Where the `scale` subresource reads and writes.
#[derive(Debug, Clone)]
pub struct ScalePaths {
    /// `specReplicasPath`, such as `.spec.replicas`.
    pub spec_replicas: String,
    /// `statusReplicasPath`.
    pub status_replicas: String,
    /// `labelSelectorPath`: a string in selector syntax.
    pub label_selector: Option<String>,
}

/// Kubernetes' order of version names, highest first when sorted
/// descending: GA (`v2` > `v1`), then beta, then alpha, then any other.
pub fn version_priority(v: &str) -> (u8, u64, u64) {
    let Some(rest) = v.strip_prefix('v') else {
        return (0, 0, 0);
    };
    let digits = rest
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(rest.len());
    let Ok(major) = rest[..digits].parse::<u64>() else {
        return (0, 0, 0);
    };
    let tail = &rest[digits..];
    let level = |prefix: &str, class: u8| {
        tail.strip_prefix(prefix)
            .and_then(|n| n.parse::<u64>().ok())
            .map(|minor| (class, major, minor))
    };
    if tail.is_empty() {
        (3, major, 0)
    } else {
        level("beta", 2)
            .or_else(|| level("alpha", 1))
            .unwrap_or((0, 0, 0))
    }
}

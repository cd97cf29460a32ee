//! Volumes: PersistentVolumeClaims, PersistentVolumes and StorageClasses.

use serde_json::{Value, json};

use super::print::{age_cell, age_column, col, meta_name, name_cell, name_column, text};
use super::{Printer, Strategy};
use shoal_machinery::meta::{default_key, str_at};

/// A new PersistentVolumeClaim's status and what else it starts with.
fn prepare_persistent_volume_claim(obj: &mut Value) {
    obj["status"] = json!({"phase": "Pending"});
}

/// Fills a PersistentVolumeClaim's defaults.
fn default_persistent_volume_claim(obj: &mut Value) {
    if let Some(s) = obj.get_mut("spec").and_then(Value::as_object_mut) {
        default_key(s, "volumeMode", json!("Filesystem"));
    }
}

/// The columns `kubectl get` shows for PersistentVolumeClaims.
pub fn persistent_volume_claim_columns() -> Vec<Value> {
    vec![
        name_column(),
        col("Status", "string", 0, "The phase of the claim."),
        col("Volume", "string", 0, "The volume bound to the claim."),
        col("Capacity", "string", 0, "The capacity of the bound volume."),
        col(
            "Access Modes",
            "string",
            0,
            "The access modes of the bound volume.",
        ),
        col(
            "StorageClass",
            "string",
            0,
            "The storage class of the claim.",
        ),
        col(
            "VolumeAttributesClass",
            "string",
            0,
            "The volume attributes class of the claim.",
        ),
        age_column(),
        col(
            "VolumeMode",
            "string",
            1,
            "How the volume is used: Filesystem or Block.",
        ),
    ]
}

/// A row of [`persistent_volume_claim_columns`] for `o`.
pub fn persistent_volume_claim_cells(o: &Value) -> Vec<Value> {
    vec![
        name_cell(o),
        text(str_at(o, "/status/phase").unwrap_or_default().into()),
        text(str_at(o, "/spec/volumeName").unwrap_or_default().into()),
        text(
            str_at(o, "/status/capacity/storage")
                .unwrap_or_default()
                .into(),
        ),
        text(access_modes(o.pointer("/status/accessModes"))),
        text(
            str_at(o, "/spec/storageClassName")
                .unwrap_or("<unset>")
                .into(),
        ),
        text(
            str_at(o, "/spec/volumeAttributesClassName")
                .unwrap_or("<unset>")
                .into(),
        ),
        age_cell(o),
        text(str_at(o, "/spec/volumeMode").unwrap_or("Filesystem").into()),
    ]
}

/// PersistentVolumeClaims.
static PERSISTENT_VOLUME_CLAIM: Strategy = Strategy {
    prepare: prepare_persistent_volume_claim,
    defaults: default_persistent_volume_claim,
    printer: Printer {
        columns: persistent_volume_claim_columns,
        cells: persistent_volume_claim_cells,
    },
    ..Strategy::GENERIC
};

/// A new PersistentVolume's status and what else it starts with.
fn prepare_persistent_volume(obj: &mut Value) {
    obj["status"] = json!({"phase": "Available"});
}

/// Fills a PersistentVolume's defaults.
fn default_persistent_volume(obj: &mut Value) {
    if let Some(s) = obj.get_mut("spec").and_then(Value::as_object_mut) {
        default_key(s, "persistentVolumeReclaimPolicy", json!("Retain"));
        default_key(s, "volumeMode", json!("Filesystem"));
    }
}

/// The columns `kubectl get` shows for PersistentVolumes.
pub fn persistent_volume_columns() -> Vec<Value> {
    vec![
        name_column(),
        col("Capacity", "string", 0, "The capacity of the volume."),
        col(
            "Access Modes",
            "string",
            0,
            "The access modes of the volume.",
        ),
        col(
            "Reclaim Policy",
            "string",
            0,
            "What happens to the volume when its claim goes.",
        ),
        col("Status", "string", 0, "The phase of the volume."),
        col("Claim", "string", 0, "The claim bound to the volume."),
        col(
            "StorageClass",
            "string",
            0,
            "The storage class of the volume.",
        ),
        col(
            "VolumeAttributesClass",
            "string",
            0,
            "The volume attributes class of the volume.",
        ),
        col("Reason", "string", 0, "Why the volume is in its phase."),
        age_column(),
        col(
            "VolumeMode",
            "string",
            1,
            "How the volume is used: Filesystem or Block.",
        ),
    ]
}

/// A row of [`persistent_volume_columns`] for `o`.
pub fn persistent_volume_cells(o: &Value) -> Vec<Value> {
    let claim = match (
        str_at(o, "/spec/claimRef/namespace"),
        str_at(o, "/spec/claimRef/name"),
    ) {
        (Some(ns), Some(n)) => format!("{ns}/{n}"),
        _ => String::new(),
    };
    vec![
        name_cell(o),
        text(
            str_at(o, "/spec/capacity/storage")
                .unwrap_or_default()
                .into(),
        ),
        text(access_modes(o.pointer("/spec/accessModes"))),
        text(
            str_at(o, "/spec/persistentVolumeReclaimPolicy")
                .unwrap_or_default()
                .into(),
        ),
        text(str_at(o, "/status/phase").unwrap_or_default().into()),
        text(claim),
        text(
            str_at(o, "/spec/storageClassName")
                .unwrap_or_default()
                .into(),
        ),
        text(
            str_at(o, "/spec/volumeAttributesClassName")
                .unwrap_or("<unset>")
                .into(),
        ),
        text(str_at(o, "/status/reason").unwrap_or_default().into()),
        age_cell(o),
        text(str_at(o, "/spec/volumeMode").unwrap_or("Filesystem").into()),
    ]
}

/// PersistentVolumes.
static PERSISTENT_VOLUME: Strategy = Strategy {
    prepare: prepare_persistent_volume,
    defaults: default_persistent_volume,
    printer: Printer {
        columns: persistent_volume_columns,
        cells: persistent_volume_cells,
    },
    ..Strategy::GENERIC
};

/// Fills a StorageClass's defaults.
fn default_storage_class(obj: &mut Value) {
    if let Some(m) = obj.as_object_mut() {
        default_key(m, "reclaimPolicy", json!("Delete"));
        default_key(m, "volumeBindingMode", json!("Immediate"));
    }
}

/// The columns `kubectl get` shows for StorageClasss.
pub fn storage_class_columns() -> Vec<Value> {
    vec![
        name_column(),
        col("Provisioner", "string", 0, "The provisioner of the class."),
        col(
            "ReclaimPolicy",
            "string",
            0,
            "What happens to volumes of the class when their claims go.",
        ),
        col(
            "VolumeBindingMode",
            "string",
            0,
            "When volumes of the class are bound.",
        ),
        col(
            "AllowVolumeExpansion",
            "string",
            0,
            "Whether volumes of the class may grow.",
        ),
        age_column(),
    ]
}

/// A row of [`storage_class_columns`] for `o`.
pub fn storage_class_cells(o: &Value) -> Vec<Value> {
    let default = str_at(
        o,
        "/metadata/annotations/storageclass.kubernetes.io~1is-default-class",
    ) == Some("true");
    let shown = if default {
        format!("{} (default)", meta_name(o))
    } else {
        meta_name(o)
    };
    vec![
        json!(shown),
        text(str_at(o, "/provisioner").unwrap_or_default().into()),
        text(str_at(o, "/reclaimPolicy").unwrap_or("Delete").into()),
        text(
            str_at(o, "/volumeBindingMode")
                .unwrap_or("Immediate")
                .into(),
        ),
        json!(
            o.get("allowVolumeExpansion")
                .and_then(Value::as_bool)
                .unwrap_or(false)
        ),
        age_cell(o),
    ]
}

/// StorageClasss.
static STORAGE_CLASS: Strategy = Strategy {
    defaults: default_storage_class,
    printer: Printer {
        columns: storage_class_columns,
        cells: storage_class_cells,
    },
    ..Strategy::GENERIC
};

/// Access modes as kubectl abbreviates them: `RWO,ROX`.
fn access_modes(modes: Option<&Value>) -> String {
    modes
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(|m| match m {
            "ReadWriteOnce" => "RWO",
            "ReadOnlyMany" => "ROX",
            "ReadWriteMany" => "RWX",
            "ReadWriteOncePod" => "RWOP",
            other => other,
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// The kinds this file holds, by name.
pub(super) static KINDS: &[(&str, &Strategy)] = &[
    ("PersistentVolumeClaim", &PERSISTENT_VOLUME_CLAIM),
    ("PersistentVolume", &PERSISTENT_VOLUME),
    ("StorageClass", &STORAGE_CLASS),
];

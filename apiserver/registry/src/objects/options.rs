//! What a write, a delete or a page of a list may ask for, and what a
//! write or a page answers.

use std::sync::Arc;

use serde_json::Value;

use crate::validation::FieldValidation;
use shoal_machinery::error::{ApiError, Result};
use shoal_machinery::selectors::{FieldSelector, LabelSelector};
use shoal_machinery::user::User;
use shoal_store::Stored;

/// Options of a write.
#[derive(Debug, Clone)]
pub struct WriteOpts {
    /// `dryRun=All`: validate and default, store nothing.
    pub dry_run: bool,
    /// How unknown fields are treated.
    pub field_validation: FieldValidation,
    /// The field manager recorded for the fields the write sets (`Update`
    /// entries of `managedFields`); the controllers record none.
    pub manager: Option<String>,
    /// Who asks, for admission; `None` for the control plane's own writes.
    pub user: Option<Arc<User>>,
}

impl Default for WriteOpts {
    fn default() -> Self {
        Self {
            dry_run: false,
            field_validation: FieldValidation::Ignore,
            manager: None,
            user: None,
        }
    }
}

/// Options of a delete.
#[derive(Debug, Clone, Default)]
pub struct DeleteOpts {
    /// `gracePeriodSeconds`.
    pub grace_period: Option<i64>,
    /// `preconditions.uid`.
    pub uid: Option<String>,
    /// `preconditions.resourceVersion`.
    pub resource_version: Option<u64>,
    /// `dryRun=All`.
    pub dry_run: bool,
    /// `propagationPolicy` (or the older `orphanDependents`).
    pub propagation: Propagation,
}

/// What happens to the dependents of a deleted object (`propagationPolicy`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Propagation {
    /// The object goes now; the garbage collector deletes its dependents.
    #[default]
    Background,
    /// The object stays, terminating, until the garbage collector has
    /// deleted its dependents.
    Foreground,
    /// The object stays until the garbage collector has removed it from its
    /// dependents' owners; they are kept.
    Orphan,
}

impl Propagation {
    /// Parses a `propagationPolicy` value.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "Background" => Some(Self::Background),
            "Foreground" => Some(Self::Foreground),
            "Orphan" => Some(Self::Orphan),
            _ => None,
        }
    }

    /// The finalizer that holds the object while its dependents are dealt
    /// with.
    pub fn finalizer(self) -> Option<&'static str> {
        match self {
            Self::Background => None,
            Self::Foreground => Some(FOREGROUND_DELETION),
            Self::Orphan => Some(ORPHAN),
        }
    }
}

/// The finalizer of a foreground deletion.
pub const FOREGROUND_DELETION: &str = "foregroundDeletion";
/// The finalizer of a deletion that orphans the dependents.
pub const ORPHAN: &str = "orphan";

/// A successful write.
#[derive(Debug, Clone)]
pub struct Written {
    /// The object as stored.
    pub object: Value,
    /// Warnings for the `Warning` header.
    pub warnings: Vec<String>,
}

/// The patch formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchType {
    /// `application/json-patch+json`.
    Json,
    /// `application/merge-patch+json`.
    Merge,
    /// `application/strategic-merge-patch+json`.
    Strategic,
}

impl PatchType {
    /// The patch type of a Content-Type header.
    pub fn from_content_type(ct: &str) -> Result<Self> {
        match ct.split(';').next().unwrap_or_default().trim() {
            "application/json-patch+json" => Ok(Self::Json),
            "application/merge-patch+json" => Ok(Self::Merge),
            "application/strategic-merge-patch+json" => Ok(Self::Strategic),
            other => Err(ApiError::unsupported_media_type(
                other,
                &[
                    "application/json-patch+json",
                    "application/merge-patch+json",
                    "application/strategic-merge-patch+json",
                ],
            )),
        }
    }
}

/// Which page of a list to read.
pub struct PageQuery<'a> {
    /// The revision to read at; the latest when `None`.
    pub at: Option<u64>,
    /// The `namespace/name` of the last object of the page before.
    pub after: Option<&'a str>,
    /// The most objects to return.
    pub limit: usize,
    /// The list's label selector.
    pub labels: &'a LabelSelector,
    /// The list's field selector.
    pub fields: &'a FieldSelector,
}

/// A page of a list.
pub struct Page {
    /// The matching objects, in key order.
    pub items: Vec<Stored>,
    /// The revision they were read at.
    pub revision: u64,
    /// Whether more match after the last of them.
    pub more: bool,
}

//! Kubernetes object machinery: what is true of every object whatever its
//! kind. API errors as `Status` bodies, metadata accessors, name rules,
//! label and field selectors, quantities' neighbours (cron schedules),
//! JSON, merge and strategic merge patches with their merge keys,
//! server-side apply's managed fields, OpenAPI schema validation, CEL
//! rules, JSONPath and status conditions.
//!
//! Owns: pure functions over `serde_json::Value`s.
//! Must not import: any other shoal crate (no store, no registry of kinds,
//! no I/O). A rule that needs to know a kind belongs to the registry.

pub mod apply;
pub mod bootstrap;
pub mod cel;
pub mod conditions;
pub mod cron;
pub mod error;
pub mod jsonpath;
pub mod merge_keys;
pub mod meta;
pub mod names;
pub mod patch;
pub mod schema;
pub mod selectors;
pub mod user;

//! The wire formats of Kubernetes objects: JSON written in the field order
//! of Go's structs ([`gotypes::json`]) and protobuf request bodies decoded
//! to JSON ([`protobuf`]), both from one table of the Go types
//! (`gotypes/schema.txt`).
//!
//! Owns: the Go types' table and the encoders built on it.
//! Must not import: any other shoal crate. It knows the shape of each
//! message, nothing of what a kind means.

pub mod gotypes;
pub mod protobuf;

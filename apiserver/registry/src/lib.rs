//! The registry of kinds and the object service over the store.
//!
//! [`resources`] is the table of every served kind (built-in and custom);
//! [`defaults`] and [`validation`] are what each kind adds to the
//! machinery; [`custom`] turns CustomResourceDefinitions into kinds;
//! [`objects`] is the one way objects are created, read, updated, patched,
//! applied and deleted, with preconditions, finalizers and watches;
//! [`binding`] is the `pods/binding` subresource, [`eviction`] the
//! `pods/eviction` one; [`admission`] is the
//! slot for plugins that see every write before it is validated.
//!
//! May import: `shoal-machinery`, `shoal-store`.
//! Must not import: the HTTP front, the scheduler, the controllers.

pub mod admission;
pub mod binding;
pub mod custom;
pub mod eviction;
pub mod kinds;
pub mod objects;
pub mod quota;
pub mod resources;
pub mod validation;

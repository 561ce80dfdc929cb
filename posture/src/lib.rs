//! Device posture: what the laptop says about itself, and (in the gateway) whether that
//! meets the security unit's criteria (G6, G7).
//!
//! Collection reads the device's own files under an injectable filesystem root, so every
//! collector runs on fixture trees in tests. This crate never opens a socket, and it
//! never treats an unknown fact as a compliant one.

pub mod collect;
pub mod evaluate;
pub mod os_release;
pub mod profile;
pub mod report;

pub use os_release::{OsRelease, read_hostname};

//! Device posture: what the laptop says about itself, and (in the gateway) whether that
//! meets the security unit's criteria (G6, G7).
//!
//! The OS-neutral part (the report, profiles, the evaluator, version ordering) is at the
//! top; each operating system's collector is a module of its own (`linux`, `windows`, `macos`). Collection
//! reads the device's own files under an injectable filesystem root, so every collector
//! runs on fixture trees in tests. This crate never opens a socket, and it never treats
//! an unknown fact as a compliant one.

pub mod collect;
pub mod evaluate;
pub mod linux;
pub mod macos;
pub mod probe;
pub mod profile;
pub mod remedy;
pub mod report;
pub mod run;
pub mod version;
pub mod windows;

pub use linux::os_release::{OsRelease, read_hostname};

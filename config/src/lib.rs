//! ztgw's configuration files: the gateway settings (`gateway.toml`) and the access
//! policy (`policy.toml`).
//!
//! Everything here turns text into typed values once, and reports a mistake as
//! `FILE:LINE:COLUMN: message`. Nothing here opens sockets or reads the clock.

pub mod duration;
pub mod location;
pub mod policy;
pub mod settings;

pub use duration::HumanDuration;
pub use location::{ConfigError, Location};
pub use policy::Policy;
pub use settings::{ExportKind, ExportTarget, RegistrySection, Settings};

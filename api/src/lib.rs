//! The request and response types ztgw's parts exchange, in one place so that the agent,
//! the gateway and the web console speak from one definition.
//!
//! - [`control`]: the JSON bodies of the control plane (`/v1/...`), between the agent and
//!   the gateway, and the auditors' read-only endpoints.
//! - [`console`]: the forms of the web console, each parsed once into a typed value
//!   with its bounds checked; [`form`]: a form body's fields from either encoding a
//!   browser sends (URL-encoded, `multipart/form-data` for a file).
//!
//! This crate holds types and their bounds only: no I/O, no clock, no decisions.

pub mod console;
pub mod control;
pub mod form;

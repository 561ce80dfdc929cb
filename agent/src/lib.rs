//! The employee's agent (`ztgw-agent`): it enrols the device against an invitation,
//! keeps its certificate renewed, and connects it to the gateway.
//!
//! - [`state`]: the agent's files (keys 0600, certificate, CA, enrolment record).
//! - [`client`]: HTTPS to the control plane, pinned CA at enrolment, mTLS after.
//! - [`enroll`], [`renew`]: the two certificate operations.
//! - [`connect`]: admission, the WireGuard client's configuration, re-checks, the end.
//! - [`dns`]: the session's split DNS (systemd-resolved, wg-quick, Windows NRPT).
//! - [`error`]: every failure as a sentence that tells the employee what to do.
//!
//! The device's private keys are generated here and never leave the device.

pub mod client;
pub mod connect;
pub mod dns;
pub mod enroll;
pub mod error;
pub mod posture;
pub mod renew;
pub mod state;

pub use error::AgentError;

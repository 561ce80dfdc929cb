//! Sessions: who gets a tunnel, and until when. Without I/O; time is a parameter.
//!
//! - [`admission`]: the checks an admission request must pass (device and employee in
//!   service, the WireGuard key bound in the certificate, the schedule, the posture),
//!   every failure reported, and the terms of a granted session.
//! - [`lifecycle`]: the table of live sessions and what ends them: the end of the
//!   schedule window, the maximum lifetime, a failed or missed posture re-check, the idle
//!   timeout, revocation, a policy reload, the employee or an operator.
//! - [`pool`]: tunnel addresses; [`nonce`]: one-time posture nonces.
//!
//! The shell that wires these to the control plane, the journal and the data plane is
//! `crate::sessions`.

pub mod admission;
pub mod lifecycle;
pub mod nonce;
pub mod pool;

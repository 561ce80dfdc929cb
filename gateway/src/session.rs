//! Sessions: who gets a tunnel, and until when. Without I/O; time is a parameter.
//!
//! - [`admission`]: the checks an admission request must pass (device and employee in
//!   service, the WireGuard key bound in the certificate, the schedule, the posture),
//!   every failure reported, and the terms of a granted session.
//! - [`lifecycle`]: the table of live sessions and what ends them: the end of the
//!   schedule window, the maximum lifetime, a failed or missed posture re-check, the idle
//!   timeout, revocation, a policy reload, the employee or an operator.
//! - [`protocol`]: the order of effects of an admission and of a session's end, generic
//!   over the world, so the gateway and the simulator run the same steps.
//! - [`pool`]: tunnel addresses; [`nonce`]: one-time posture nonces.
//!
//! Nothing here imports the registry, the journal, the data plane or the admin actions:
//! what the core needs of them comes in as plain values.
//!
//! The shell that wires these to the control plane, the journal and the data plane is
//! `crate::sessions`.

pub mod admission;
pub mod factor;
pub mod lifecycle;
pub mod nonce;
pub mod pool;
pub mod protocol;

#[cfg(test)]
mod sim_tests;

//! The ztgw gateway: the daemon and the `ztgw` command.
//!
//! - [`context`] opens a gateway's state; [`state`] creates one (`ztgw init`).
//! - [`registry`] stores invitations, employees, devices and certificates.
//! - [`enrolment`] turns invitations into device certificates; [`device_auth`] checks a
//!   presented certificate against the registry; [`revocation`] publishes the CRL.
//! - [`admin`] is the security unit's actions, over the admin socket or offline.
//! - [`control`] is the HTTPS control plane; [`daemon`] wires everything together.
//! - [`cli`] is the command line.
//!
//! Invariants: only [`control`], [`admin::socket`] and [`daemon`] touch sockets; the
//! logic modules take time and randomness from [`clock`]; no refused request changes
//! the registry; every change to the registry is stored with the record of who made it.

pub mod accounts;
pub mod active_policy;
pub mod admin;
pub mod api_error;
pub mod audit;
pub mod backup;
pub mod cli;
pub mod clock;
pub mod cluster;
pub mod console;
pub mod context;
pub mod control;
pub mod daemon;
pub mod device_auth;
pub mod directory;
pub mod enrolment;
pub mod export;
pub mod join;
pub mod journal;
pub mod layout;
pub mod metrics;
pub mod registry;
pub use ztgw_journal::report;
pub mod restart;
pub mod revocation;
pub mod sealed;
pub mod session;
pub mod sessions;
pub mod state;

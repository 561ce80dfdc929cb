//! The data plane: the WireGuard tunnels of admitted sessions and what happens to each
//! packet they carry.
//!
//! Decisions, without I/O:
//! - [`packet`]: the IP, TCP, UDP and ICMP headers a decision needs, parsed once.
//! - [`conntrack`]: the bounded table of flows that laptops opened; replies are let
//!   back in only on those flows.
//! - [`enforce`]: the decision for each decrypted packet (anti-spoofing, the compiled
//!   policy for the session's role, no laptop-to-laptop traffic) and for each packet
//!   from the internal network towards a laptop.
//! - [`accounting`]: per session, the flows it opened and what it was denied.
//! - [`peers`]: the installed peers, found by key, index, address or session.
//! - [`path`]: the way of one datagram or one packet through the gateway (handshake
//!   routing, tunnels, enforcement), writing its output to a [`path::Sink`].
//!
//! - [`source`]: what per-source limits count as one source (the control plane's
//!   limits use it too).
//!
//! The shell ([`shell`]) owns the TUN device and the UDP sockets, runs the workers and
//! the timers, and is the only way to install a peer ([`shell::DataPlane::add_peer`]).

pub mod accounting;
pub mod conntrack;
pub mod counters;
pub mod enforce;
pub mod packet;
pub mod path;
pub mod peers;
pub mod shell;
pub mod source;

#[cfg(test)]
mod fixtures;

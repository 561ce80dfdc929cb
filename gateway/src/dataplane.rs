//! The data plane's decisions, without I/O: what happens to each packet a tunnel carries.
//!
//! - [`packet`]: the IP, TCP, UDP and ICMP headers a decision needs, parsed once.
//! - [`conntrack`]: the bounded table of flows that laptops opened; replies are let
//!   back in only on those flows.
//! - [`enforce`]: the decision for each decrypted packet (anti-spoofing, the compiled
//!   policy for the session's role, no laptop-to-laptop traffic) and for each packet
//!   from the internal network towards a laptop.
//!
//! The WireGuard, TUN and UDP shell that feeds these functions lives apart; time is a
//! parameter everywhere here.

pub mod conntrack;
pub mod enforce;
pub mod packet;

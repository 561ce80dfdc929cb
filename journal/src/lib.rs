//! The audit journal (G10, G11, G12, G15, G16): an append-only, hash-chained, Merkle-tree
//! log of typed events, signed at every durable write.
//!
//! - [`frame`]: the records and the hash chain; [`merkle`]: RFC 9162 tree hashing and
//!   inclusion proofs; [`checkpoint`]: signed tree heads and the purge record;
//!   [`event`]: the event schema. These are pure.
//! - [`segment`]: the files; [`writer`]: the single writer thread (group commit, recovery,
//!   rotation, retention); [`verify`]: the auditors' verification; [`query`]: reading
//!   events back, filtered, as JSON lines or CSV; [`follow`]: following a live journal
//!   record by record (what streams it out); [`report`]: hours against schedules and
//!   posture compliance, computed from the events.
//!
//! This crate links no networking, TUN, database or data-plane code: it is what an
//! auditor's tool needs, and the gateway uses it as it is.
//!
//! Invariants: an append returns only once its frames and a signed checkpoint covering
//! them are on disk (fsync); the journal always ends with a checkpoint, so anything after
//! the last signature is either a torn write (cut at recovery, kept aside, journaled) or
//! a forgery (refused by `verify`); one writer at a time (a lock file).

pub mod checkpoint;
pub mod event;
pub mod follow;
pub mod frame;
pub mod merkle;
pub mod query;
pub mod report;
pub mod segment;
pub mod tools;
pub mod verify;
pub mod writer;

pub use checkpoint::{JournalKey, PublicKey, SignedTreeHead};
pub use event::Event;
pub use writer::{Journal, JournalConfig, JournalError};

/// Lowercase hex.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// 64 hex characters back to 32 bytes.
pub fn unhex32(s: &str) -> Option<[u8; 32]> {
    if s.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, chunk) in s.as_bytes().chunks(2).enumerate() {
        let pair = std::str::from_utf8(chunk).ok()?;
        out[i] = u8::from_str_radix(pair, 16).ok()?;
    }
    Some(out)
}

/// Free space (bytes) on the filesystem of `dir`, for the unprivileged, or `None` when
/// it cannot be read.
pub fn free_bytes(dir: &std::path::Path) -> Option<u64> {
    let st = rustix::fs::statvfs(dir).ok()?;
    Some(st.f_bavail.saturating_mul(st.f_frsize))
}

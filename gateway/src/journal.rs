//! The audit journal lives in its own crate (`ztgw-journal`, `journal/`), so that the
//! auditors' tools link none of the gateway; the gateway writes it through these paths.

pub use ztgw_journal::*;

//! The journal's files: segments `seg-NNNNNNNN.zj` in one directory, the purge record
//! `purged.json`, the lock file, and pieces cut at recovery (`cut-*.bin`).

use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The payload of a segment's header frame.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SegmentHeader {
    pub magic: String,
    pub version: u32,
    /// The gateway (CA fingerprint), hex.
    pub gateway: String,
    pub segment: u64,
}

pub const MAGIC: &str = "ztgw-journal";
pub const PURGE_FILE: &str = "purged.json";
pub const LOCK_FILE: &str = ".lock";

/// One segment file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentFile {
    pub number: u64,
    pub path: PathBuf,
}

impl SegmentFile {
    pub fn name(&self) -> String {
        self.path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    }
}

pub fn file_name(number: u64) -> String {
    format!("seg-{number:08}.zj")
}

/// The segments in `dir`, in order. Other files are ignored.
pub fn list(dir: &Path) -> io::Result<Vec<SegmentFile>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let Some(number) = name
            .strip_prefix("seg-")
            .and_then(|n| n.strip_suffix(".zj"))
            .and_then(|n| n.parse::<u64>().ok())
        else {
            continue;
        };
        out.push(SegmentFile {
            number,
            path: entry.path(),
        });
    }
    out.sort_by_key(|s| s.number);
    Ok(out)
}

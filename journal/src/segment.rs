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
    /// This header's own sequence number.
    pub first_seq: u64,
    /// Chain hash of the record before this header, hex.
    pub prev: String,
    /// The Merkle frontier of every record before this header: with `prev` and
    /// `first_seq`, where the journal stands, so a writer resumes by reading only the
    /// last segment.
    pub frontier: super::merkle::Frontier,
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

/// Reads the header frame of a segment file (its first frame) and its time.
pub fn read_header(path: &Path) -> io::Result<(SegmentHeader, i64)> {
    use std::io::Read as _;
    let mut f = std::fs::File::open(path)?;
    let mut len = [0u8; 4];
    f.read_exact(&mut len)?;
    let n = u32::from_le_bytes(len) as usize;
    if n > super::frame::MAX_PAYLOAD + 64 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "the segment header's length is impossible",
        ));
    }
    let mut rest = vec![0u8; n + 32];
    f.read_exact(&mut rest)?;
    let mut bytes = len.to_vec();
    bytes.extend_from_slice(&rest);
    let (frame, _) = super::frame::decode(&bytes)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, format!("{e:?}")))?;
    if frame.kind != super::frame::Kind::SegmentHeader {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "the segment does not start with its header",
        ));
    }
    let header = serde_json::from_slice(frame.payload)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
    Ok((header, frame.time_ms))
}

/// Where a live journal's acknowledged part ends: (segment number, length).
pub type Limit = Option<(u64, u64)>;

/// The bytes of `seg` up to `limit` (`None` if the segment is past it).
pub fn read_limited(seg: &SegmentFile, limit: Limit) -> io::Result<Option<Vec<u8>>> {
    match limit {
        Some((number, _)) if seg.number > number => Ok(None),
        Some((number, len)) if seg.number == number => {
            use std::io::Read as _;
            let mut bytes = Vec::with_capacity(len as usize);
            std::fs::File::open(&seg.path)?
                .take(len)
                .read_to_end(&mut bytes)?;
            Ok(Some(bytes))
        }
        _ => std::fs::read(&seg.path).map(Some),
    }
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

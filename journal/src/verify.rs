//! Walking a journal and checking every link, leaf and signature: what `ztgw journal
//! verify` runs, and what the writer runs at start to recover.

use std::path::Path;

use super::checkpoint::{PublicKey, PurgeState, SignedTreeHead, hash_field};
use super::frame::{self, Frame, FrameError, Kind};
use super::hex;
use super::merkle::{Frontier, leaf_hash};
use super::segment::{self, MAGIC, PURGE_FILE, SegmentFile, SegmentHeader};

/// Where in the journal something is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Place {
    pub segment: String,
    pub offset: u64,
    pub seq: Option<u64>,
}

impl std::fmt::Display for Place {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.seq {
            Some(seq) => write!(f, "record {seq} ({} at byte {})", self.segment, self.offset),
            None => write!(f, "{} at byte {}", self.segment, self.offset),
        }
    }
}

/// What is wrong, and where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{place}: {what}")]
pub struct Damage {
    pub place: Place,
    pub what: String,
}

/// The state of a walk through the journal.
#[derive(Debug, Clone, Default)]
pub struct Walk {
    pub gateway: Option<[u8; 32]>,
    pub next_seq: u64,
    pub prev: [u8; 32],
    pub frontier: Frontier,
    pub last_checkpoint: Option<SignedTreeHead>,
    pub records: u64,
    pub events: u64,
    pub checkpoints: u64,
    pub segments: u64,
    /// Frames read since the last checkpoint.
    pub unsigned: u64,
    /// Where the journal starts when older segments were purged.
    pub purge: Option<PurgeState>,
    /// An auditor's kept checkpoint, checked when the walk passes its size.
    pub kept_checkpoint: Option<KeptCheckpoint>,
    /// The state just after the last checkpoint of the current segment, with the byte
    /// offset where it ends: where recovery cuts a torn tail back to.
    pub mark: Option<Box<(u64, Walk)>>,
    /// Whether to keep [`Walk::mark`] (recovery needs it; verification does not).
    pub track_mark: bool,
}

/// A checkpoint an auditor kept from an earlier verification.
#[derive(Debug, Clone)]
pub struct KeptCheckpoint {
    pub head: SignedTreeHead,
    pub matched: bool,
}

/// How one segment ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentEnd {
    /// Byte offset just past the last checkpoint frame, if the segment has one.
    pub signed_len: Option<u64>,
    pub len: u64,
}

impl Walk {
    /// Starts a walk: at the purge record if the journal has one, else at the beginning.
    pub fn start(dir: &Path, key: Option<&PublicKey>) -> Result<Self, Damage> {
        let mut walk = Walk::default();
        let purge_path = dir.join(PURGE_FILE);
        if purge_path.exists() {
            let place = Place {
                segment: PURGE_FILE.into(),
                offset: 0,
                seq: None,
            };
            let bad = |what: String| Damage {
                place: place.clone(),
                what,
            };
            let text = std::fs::read_to_string(&purge_path)
                .map_err(|e| bad(format!("cannot read: {e}")))?;
            let p: PurgeState =
                serde_json::from_str(&text).map_err(|e| bad(format!("not a purge record: {e}")))?;
            if let Some(key) = key
                && !key.verify_purge(&p)
            {
                return Err(bad(
                    "its signature does not verify with the journal key".into()
                ));
            }
            let gateway = super::unhex32(&p.gateway).ok_or_else(|| bad("bad gateway id".into()))?;
            let chain = hash_field(&p.chain).ok_or_else(|| bad("bad chain hash".into()))?;
            if p.frontier.size != p.first_seq {
                return Err(bad(
                    "its Merkle frontier does not match its first record".into()
                ));
            }
            walk.gateway = Some(gateway);
            walk.next_seq = p.first_seq;
            walk.prev = chain;
            walk.frontier = p.frontier.clone();
            walk.purge = Some(p);
        }
        Ok(walk)
    }

    /// A walk that starts at the header of `seg` (trusting the segments before it), as
    /// the writer does at start: only the last segment is read in full.
    pub fn resume(seg: &SegmentFile) -> Result<Self, Damage> {
        let (h, _) = segment::read_header(&seg.path).map_err(|e| Damage {
            place: Place {
                segment: seg.name(),
                offset: 0,
                seq: None,
            },
            what: format!("the segment header cannot be read: {e}"),
        })?;
        let bad = |what: &str| Damage {
            place: Place {
                segment: seg.name(),
                offset: 0,
                seq: Some(h.first_seq),
            },
            what: what.to_owned(),
        };
        Ok(Walk {
            gateway: Some(super::unhex32(&h.gateway).ok_or_else(|| bad("bad gateway id"))?),
            next_seq: h.first_seq,
            prev: hash_field(&h.prev).ok_or_else(|| bad("bad chain hash"))?,
            frontier: h.frontier,
            ..Walk::default()
        })
    }

    /// Whether `seg` was removed by the purge (and may be skipped if it is still there).
    pub fn purged(&self, seg: &SegmentFile) -> bool {
        self.purge
            .as_ref()
            .is_some_and(|p| p.segments_removed.contains(&seg.name()))
    }

    /// Walks one segment's bytes, checking each frame; calls `each` for every event.
    pub fn segment(
        &mut self,
        seg: &SegmentFile,
        bytes: &[u8],
        key: Option<&PublicKey>,
        mut each: impl FnMut(&Frame<'_>),
    ) -> Result<SegmentEnd, Damage> {
        let name = seg.name();
        self.mark = None;
        let (index, cut) = index_frames(bytes);
        let leaves = leaf_hashes(&index);
        // Checkpoints whose signatures are still to check (see `check_signatures`).
        let mut pending: Vec<(SignedTreeHead, Place)> = Vec::new();
        let mut signed_len = None;
        let fail = |d: Damage, pending: &[(SignedTreeHead, Place)]| -> Damage {
            // A forged signature earlier in the segment is the first damage, even if it
            // only shows later as a root that does not match.
            key.and_then(|k| pending.iter().find(|(sth, _)| !k.verify_head(sth)))
                .map_or(d, |(_, place)| Damage {
                    place: place.clone(),
                    what: "the checkpoint's signature does not verify: the checkpoint was altered"
                        .into(),
                })
        };
        for (i, (offset, f, size)) in index.iter().enumerate() {
            let (offset, size) = (*offset, *size);
            let place = |seq| Place {
                segment: name.clone(),
                offset: offset as u64,
                seq: Some(seq),
            };
            if let Err(what) =
                self.step(seg, f, i == 0, &leaves[i], key, &mut pending, place(f.seq))
            {
                return Err(fail(
                    Damage {
                        place: place(f.seq),
                        what,
                    },
                    &pending,
                ));
            }
            if f.kind == Kind::Checkpoint {
                signed_len = Some((offset + size) as u64);
            }
            if f.kind == Kind::Checkpoint && self.track_mark {
                let mut snapshot = self.clone();
                snapshot.mark = None;
                self.mark = Some(Box::new(((offset + size) as u64, snapshot)));
            }
            if f.kind == Kind::Event {
                each(f);
            }
        }
        if let Some((offset, e)) = cut {
            let d = Damage {
                place: Place {
                    segment: name.clone(),
                    offset: offset as u64,
                    seq: None,
                },
                what: match e {
                    FrameError::Incomplete => {
                        "the record is cut short (torn write or truncation)".into()
                    }
                    FrameError::BadLength => {
                        "the record's length is impossible (damaged bytes)".into()
                    }
                    FrameError::BadKind => "the record's kind is unknown (damaged bytes)".into(),
                },
            };
            return Err(fail(d, &pending));
        }
        if let Some(key) = key {
            check_signatures(key, &pending)?;
        }
        if index.is_empty() {
            return Err(Damage {
                place: Place {
                    segment: name,
                    offset: 0,
                    seq: None,
                },
                what: "the segment is empty".into(),
            });
        }
        self.segments += 1;
        Ok(SegmentEnd {
            signed_len,
            len: bytes.len() as u64,
        })
    }

    /// Checks one frame against the walk so far and advances the walk.
    #[allow(clippy::too_many_arguments)]
    fn step(
        &mut self,
        seg: &SegmentFile,
        f: &Frame<'_>,
        first: bool,
        leaf: &[u8; 32],
        key: Option<&PublicKey>,
        pending: &mut Vec<(SignedTreeHead, Place)>,
        place: Place,
    ) -> Result<(), String> {
        if f.seq != self.next_seq {
            return Err(format!(
                "expected record {} here: records are missing, reordered or inserted",
                self.next_seq
            ));
        }
        if first {
            self.open_segment(seg, f)?;
        } else if f.kind == Kind::SegmentHeader {
            return Err("a segment header in the middle of a segment".into());
        }
        if !frame::check_link(&self.prev, f, leaf) {
            return Err(
                "its hash does not match: the record was altered, or one before it was removed or replaced".into(),
            );
        }
        match f.kind {
            Kind::Checkpoint => {
                let sth = self.checkpoint(f, key)?;
                pending.push((sth, place));
            }
            Kind::Event => {
                self.events += 1;
                self.unsigned += 1;
            }
            Kind::SegmentHeader => self.unsigned += 1,
        }
        if let Some(kept) = &mut self.kept_checkpoint
            && self.frontier.size == kept.head.head.size
        {
            check_kept(kept, &self.frontier, &self.prev)?;
        }
        self.frontier.push(*leaf);
        self.prev = f.hash;
        self.next_seq += 1;
        self.records += 1;
        Ok(())
    }

    fn open_segment(&mut self, seg: &SegmentFile, f: &Frame<'_>) -> Result<(), String> {
        if f.kind != Kind::SegmentHeader {
            return Err("a segment must start with its header".into());
        }
        let h: SegmentHeader = serde_json::from_slice(f.payload)
            .map_err(|e| format!("the segment header is not valid: {e}"))?;
        if h.magic != MAGIC || h.version != 1 {
            return Err(format!(
                "not a ztgw journal segment (magic {:?}, version {})",
                h.magic, h.version
            ));
        }
        if h.segment != seg.number {
            return Err(format!(
                "the header says segment {}, the file name says {}",
                h.segment, seg.number
            ));
        }
        let gateway = super::unhex32(&h.gateway).ok_or("the header's gateway id is not valid")?;
        if h.first_seq != f.seq {
            return Err(format!(
                "the header says it is record {}, but it stands at record {}",
                h.first_seq, f.seq
            ));
        }
        match self.gateway {
            None => {
                self.gateway = Some(gateway);
                if self.next_seq == 0 {
                    self.prev = frame::genesis(&gateway);
                }
            }
            Some(g) if g != gateway => {
                return Err(format!(
                    "this segment belongs to another gateway ({})",
                    h.gateway
                ));
            }
            Some(_) => {}
        }
        Ok(())
    }

    fn checkpoint(
        &mut self,
        f: &Frame<'_>,
        key: Option<&PublicKey>,
    ) -> Result<SignedTreeHead, String> {
        let sth: SignedTreeHead = serde_json::from_slice(f.payload)
            .map_err(|e| format!("the checkpoint is not valid: {e}"))?;
        let gateway = self.gateway.map(|g| hex(&g)).unwrap_or_default();
        if sth.head.gateway != gateway {
            return Err("the checkpoint names another gateway".into());
        }
        if sth.head.size != f.seq {
            return Err(format!(
                "the checkpoint covers {} records, but stands at record {}",
                sth.head.size, f.seq
            ));
        }
        if sth.head.root != hex(&self.frontier.root()) {
            return Err("the checkpoint's Merkle root does not match the records before it".into());
        }
        if sth.head.chain != hex(&self.prev) {
            return Err("the checkpoint's chain hash does not match the record before it".into());
        }
        if let Some(key) = key
            && sth.key_id != key.key_id()
        {
            return Err(format!(
                "the checkpoint is signed by key {}, not by the journal key {}",
                sth.key_id,
                key.key_id()
            ));
        }
        self.checkpoints += 1;
        self.unsigned = 0;
        self.last_checkpoint = Some(sth.clone());
        Ok(sth)
    }
}

/// The offset and size of each whole frame of `bytes`, and where and why reading stopped
/// early, if it did.
type Indexed<'a> = Vec<(usize, Frame<'a>, usize)>;

fn index_frames(bytes: &[u8]) -> (Indexed<'_>, Option<(usize, FrameError)>) {
    let mut index = Vec::with_capacity(bytes.len() / 256);
    let mut offset = 0;
    while offset < bytes.len() {
        match frame::decode(&bytes[offset..]) {
            Ok((f, size)) => {
                index.push((offset, f, size));
                offset += size;
            }
            Err(e) => return (index, Some((offset, e))),
        }
    }
    (index, None)
}

/// The Merkle leaf hash of each indexed frame, computed on every core.
fn leaf_hashes(index: &[(usize, Frame<'_>, usize)]) -> Vec<[u8; 32]> {
    let body = |(_, f, _): &(usize, Frame<'_>, usize)| leaf_hash(f.body);
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(8);
    if threads < 2 || index.len() < 4096 {
        return index.iter().map(body).collect();
    }
    let chunk = index.len().div_ceil(threads);
    std::thread::scope(|s| {
        let parts: Vec<_> = index
            .chunks(chunk)
            .map(|c| s.spawn(move || c.iter().map(body).collect::<Vec<_>>()))
            .collect();
        parts
            .into_iter()
            .flat_map(|p| p.join().expect("hashing bytes cannot panic"))
            .collect()
    })
}

/// Checks the signatures of a segment's checkpoints. The last one signs a Merkle root and
/// a chain hash that commit to every record before it, earlier checkpoints included, and
/// each checkpoint's root and chain were already compared with the records: so if the
/// last signature holds, no record of the segment was changed. Only when it fails are
/// the others checked, to name the first bad one.
fn check_signatures(key: &PublicKey, pending: &[(SignedTreeHead, Place)]) -> Result<(), Damage> {
    let Some((last, last_place)) = pending.last() else {
        return Ok(());
    };
    if key.verify_head(last) {
        return Ok(());
    }
    let place = pending
        .iter()
        .find(|(sth, _)| !key.verify_head(sth))
        .map_or(last_place, |(_, p)| p);
    Err(Damage {
        place: place.clone(),
        what: "the checkpoint's signature does not verify: the checkpoint was altered".into(),
    })
}

fn check_kept(
    kept: &mut KeptCheckpoint,
    frontier: &Frontier,
    prev: &[u8; 32],
) -> Result<(), String> {
    if kept.head.head.root != hex(&frontier.root()) || kept.head.head.chain != hex(prev) {
        return Err(format!(
            "the journal's first {} records differ from those of the checkpoint you kept",
            kept.head.head.size
        ));
    }
    kept.matched = true;
    Ok(())
}

/// What a verification found.
#[derive(Debug, Clone)]
pub struct Report {
    pub segments: u64,
    pub records: u64,
    pub events: u64,
    pub checkpoints: u64,
    pub first_seq: u64,
    pub last_checkpoint: Option<SignedTreeHead>,
    pub signatures_checked: bool,
    pub kept_checkpoint_checked: Option<bool>,
}

/// Checks the whole journal in `dir`. With `key`, every checkpoint's signature is
/// checked; with `kept`, the journal must still contain that checkpoint's records.
pub fn verify_dir(
    dir: &Path,
    key: Option<&PublicKey>,
    kept: Option<SignedTreeHead>,
) -> Result<Report, Damage> {
    verify_dir_until(dir, key, kept, None)
}

/// [`verify_dir`] of a live journal, stopping where its acknowledged part ends.
pub fn verify_dir_until(
    dir: &Path,
    key: Option<&PublicKey>,
    kept: Option<SignedTreeHead>,
    limit: segment::Limit,
) -> Result<Report, Damage> {
    let top = |what: String| Damage {
        place: Place {
            segment: dir.display().to_string(),
            offset: 0,
            seq: None,
        },
        what,
    };
    if let (Some(key), Some(k)) = (key, &kept)
        && !key.verify_head(k)
    {
        return Err(top(
            "the checkpoint you kept does not verify with the journal key".into(),
        ));
    }
    let mut walk = Walk::start(dir, key)?;
    walk.kept_checkpoint = kept.map(|head| KeptCheckpoint {
        head,
        matched: false,
    });
    let first_seq = walk.next_seq;
    let segments = segment::list(dir).map_err(|e| top(format!("cannot list the journal: {e}")))?;
    if segments.is_empty() {
        return Err(top("there is no journal segment here".into()));
    }
    // Where the journal ends: what a truncation is reported at.
    let mut end_at = (segments.last().map(|s| s.name()).unwrap_or_default(), 0u64);
    for (i, seg) in segments.iter().enumerate() {
        if walk.purged(seg) {
            continue;
        }
        let Some(bytes) = segment::read_limited(seg, limit)
            .map_err(|e| top(format!("cannot read {}: {e}", seg.name())))?
        else {
            break;
        };
        // The segment the writer has just begun (a new journal, or one rotated a moment
        // ago) has no record yet. Only the last one may be empty: an emptied segment
        // before it breaks the chain.
        if bytes.is_empty() && i + 1 == segments.len() {
            break;
        }
        walk.segment(seg, &bytes, key, |_| {})?;
        end_at = (seg.name(), bytes.len() as u64);
    }
    let end = Place {
        segment: end_at.0,
        offset: end_at.1,
        seq: Some(walk.next_seq),
    };
    if walk.unsigned > 0 {
        return Err(Damage {
            place: end,
            what: format!(
                "the last {} records are not covered by a signed checkpoint: they were appended after the last signature",
                walk.unsigned
            ),
        });
    }
    if let Some(k) = &mut walk.kept_checkpoint
        && !k.matched
        && walk.frontier.size == k.head.head.size
    {
        check_kept(k, &walk.frontier, &walk.prev).map_err(|what| Damage {
            place: end.clone(),
            what,
        })?;
    }
    if let Some(k) = &walk.kept_checkpoint
        && !k.matched
        && k.head.head.size >= first_seq
    {
        return Err(Damage {
            place: end,
            what: format!(
                "the journal was truncated: the checkpoint you kept covers {} records, the journal has {}",
                k.head.head.size, walk.next_seq
            ),
        });
    }
    Ok(Report {
        segments: walk.segments,
        records: walk.records,
        events: walk.events,
        checkpoints: walk.checkpoints,
        first_seq,
        last_checkpoint: walk.last_checkpoint,
        signatures_checked: key.is_some(),
        kept_checkpoint_checked: walk.kept_checkpoint.as_ref().map(|k| k.matched),
    })
}

//! Following a live journal: every record from a sequence number on, in order, a batch at
//! a time, reading each byte once. What streams the journal to a security operations
//! centre reads it with this.
//!
//! Every record is followed, not only events: segment headers and checkpoints take
//! sequence numbers too, so the records a follower hands out have consecutive numbers
//! and a receiver sees any gap. The chain is checked as it goes (from the header of the
//! segment it starts in); signatures are not (that is `verify`'s work).

use std::io::{Read as _, Seek as _, SeekFrom};
use std::path::{Path, PathBuf};

use time::OffsetDateTime;

use super::frame::{self, FrameError, Kind};
use super::segment::{self, Limit, SegmentFile};
use super::verify::{Damage, Place};

/// Most bytes read from a segment at a time.
const READ_CHUNK: u64 = 4 << 20;

/// One record of the journal, as a follower hands it out.
#[derive(Debug, Clone, PartialEq)]
pub struct Followed {
    pub seq: u64,
    pub time: OffsetDateTime,
    /// The record's chain hash.
    pub chain: [u8; 32],
    pub kind: Kind,
    /// The record's payload: the event's JSON, a checkpoint's signed tree head (JSON), a
    /// segment header (JSON).
    pub payload: Vec<u8>,
}

impl Followed {
    /// The record as one JSON object: an event as it was journaled; a checkpoint as
    /// `{"type":"journal.checkpoint", …signed tree head}`; a segment header as
    /// `{"type":"journal.segment", …header}`.
    pub fn json(&self) -> serde_json::Value {
        let parsed = serde_json::from_slice::<serde_json::Value>(&self.payload)
            .unwrap_or_else(|_| serde_json::Value::String(super::hex(&self.payload)));
        let tag = match self.kind {
            Kind::Event => return parsed,
            Kind::Checkpoint => "journal.checkpoint",
            Kind::SegmentHeader => "journal.segment",
        };
        let mut object = serde_json::Map::new();
        object.insert("type".into(), tag.into());
        match parsed {
            serde_json::Value::Object(fields) => object.extend(fields),
            other => {
                object.insert("payload".into(), other);
            }
        }
        serde_json::Value::Object(object)
    }
}

/// What one call to [`Follower::next_batch`] found.
#[derive(Debug, Default)]
pub struct Batch {
    pub records: Vec<Followed>,
    /// Records the follower wanted that the journal no longer holds (purged by
    /// retention): the first and the one after the last.
    pub skipped: Option<(u64, u64)>,
}

/// Where a follower stands in a segment.
#[derive(Debug, Clone)]
struct Position {
    segment: SegmentFile,
    offset: u64,
    /// The chain hash of the record before `offset`.
    prev: [u8; 32],
}

/// Reads a live journal's records in order, from a sequence number on.
#[derive(Debug, Clone)]
pub struct Follower {
    dir: PathBuf,
    next_seq: u64,
    at: Option<Position>,
}

impl Follower {
    /// A follower of the journal in `dir` whose first record will be `from_seq` (or the
    /// oldest record kept, if that one was purged).
    pub fn new(dir: &Path, from_seq: u64) -> Self {
        Self {
            dir: dir.to_owned(),
            next_seq: from_seq,
            at: None,
        }
    }

    /// The sequence number of the next record it will hand out.
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// Starts again at `seq` (a receiver lost what came after it).
    pub fn rewind(&mut self, seq: u64) {
        self.next_seq = seq;
        self.at = None;
    }

    /// The records after where it stands, at most `max`, stopping at `limit` (where the
    /// live journal's acknowledged part ends: never inside a write in progress).
    pub fn next_batch(&mut self, limit: Limit, max: usize) -> Result<Batch, Damage> {
        let mut batch = Batch::default();
        if self.at.is_none() {
            batch.skipped = self.locate()?;
        }
        while batch.records.len() < max {
            let Some(at) = self.at.clone() else {
                break;
            };
            let end = match limit {
                Some((number, _)) if at.segment.number > number => break,
                Some((number, len)) if at.segment.number == number => len,
                _ => file_len(&at.segment)?,
            };
            if at.offset >= end {
                // The end of this segment: the next one, if the journal has gone on.
                if !self.advance(limit)? {
                    break;
                }
                continue;
            }
            let bytes = read_range(&at.segment, at.offset, (end - at.offset).min(READ_CHUNK))?;
            let used = self.take(&at, &bytes, max, &mut batch.records)?;
            if used == 0 {
                // Not one whole record before the limit: a write still under way.
                break;
            }
        }
        Ok(batch)
    }

    /// Finds the segment holding `next_seq`. Returns the purged range when it is gone.
    fn locate(&mut self) -> Result<Option<(u64, u64)>, Damage> {
        let segments = list(&self.dir)?;
        let mut chosen = None;
        for seg in segments {
            let Ok((header, _)) = segment::read_header(&seg.path) else {
                // A segment being created, or damaged: `verify` says which.
                continue;
            };
            if header.first_seq > self.next_seq && chosen.is_some() {
                break;
            }
            let prev = super::checkpoint::hash_field(&header.prev).ok_or_else(|| Damage {
                place: place(&seg, 0, Some(header.first_seq)),
                what: "the segment header's chain hash is not valid".into(),
            })?;
            let first = header.first_seq;
            chosen = Some((seg, prev, first));
        }
        let Some((segment, prev, first)) = chosen else {
            return Ok(None);
        };
        let skipped = (first > self.next_seq).then_some((self.next_seq, first));
        if skipped.is_some() {
            self.next_seq = first;
        }
        self.at = Some(Position {
            segment,
            offset: 0,
            prev,
        });
        Ok(skipped)
    }

    /// Moves to the segment after the current one, if there is one within `limit`.
    fn advance(&mut self, limit: Limit) -> Result<bool, Damage> {
        let Some(at) = &self.at else {
            return Ok(false);
        };
        let next = list(&self.dir)?
            .into_iter()
            .find(|s| s.number > at.segment.number);
        match next {
            Some(seg) if limit.is_none_or(|(n, _)| seg.number <= n) => {
                self.at = Some(Position {
                    segment: seg,
                    offset: 0,
                    prev: at.prev,
                });
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    /// Takes the whole records at the start of `bytes` (read at `at`), checking the chain;
    /// returns how many bytes they used.
    fn take(
        &mut self,
        at: &Position,
        bytes: &[u8],
        max: usize,
        out: &mut Vec<Followed>,
    ) -> Result<usize, Damage> {
        let mut used = 0;
        let mut prev = at.prev;
        while out.len() < max {
            let (f, size) = match frame::decode(&bytes[used..]) {
                Ok(x) => x,
                Err(FrameError::Incomplete) => break,
                Err(e) => {
                    return Err(Damage {
                        place: place(&at.segment, at.offset + used as u64, None),
                        what: format!("the record cannot be read ({e:?})"),
                    });
                }
            };
            let leaf = super::merkle::leaf_hash(f.body);
            if !frame::check_link(&prev, &f, &leaf) {
                return Err(Damage {
                    place: place(&at.segment, at.offset + used as u64, Some(f.seq)),
                    what: "the record does not follow the one before it in the chain".into(),
                });
            }
            prev = f.hash;
            used += size;
            if f.seq < self.next_seq {
                continue;
            }
            if f.seq != self.next_seq {
                return Err(Damage {
                    place: place(&at.segment, at.offset + used as u64, Some(f.seq)),
                    what: format!("record {} where {} was expected", f.seq, self.next_seq),
                });
            }
            self.next_seq += 1;
            out.push(Followed {
                seq: f.seq,
                time: OffsetDateTime::from_unix_timestamp_nanos(i128::from(f.time_ms) * 1_000_000)
                    .unwrap_or(OffsetDateTime::UNIX_EPOCH),
                chain: f.hash,
                kind: f.kind,
                payload: f.payload.to_vec(),
            });
        }
        self.at = Some(Position {
            segment: at.segment.clone(),
            offset: at.offset + used as u64,
            prev,
        });
        Ok(used)
    }
}

fn place(seg: &SegmentFile, offset: u64, seq: Option<u64>) -> Place {
    Place {
        segment: seg.name(),
        offset,
        seq,
    }
}

fn list(dir: &Path) -> Result<Vec<SegmentFile>, Damage> {
    segment::list(dir).map_err(|e| Damage {
        place: Place {
            segment: dir.display().to_string(),
            offset: 0,
            seq: None,
        },
        what: format!("cannot list the journal: {e}"),
    })
}

fn file_len(seg: &SegmentFile) -> Result<u64, Damage> {
    std::fs::metadata(&seg.path)
        .map(|m| m.len())
        .map_err(|e| Damage {
            place: place(seg, 0, None),
            what: format!("cannot read: {e}"),
        })
}

fn read_range(seg: &SegmentFile, offset: u64, len: u64) -> Result<Vec<u8>, Damage> {
    let bad = |e: std::io::Error| Damage {
        place: place(seg, offset, None),
        what: format!("cannot read: {e}"),
    };
    let mut file = std::fs::File::open(&seg.path).map_err(bad)?;
    file.seek(SeekFrom::Start(offset)).map_err(bad)?;
    let mut bytes = Vec::with_capacity(len as usize);
    file.take(len).read_to_end(&mut bytes).map_err(bad)?;
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Event, Journal, JournalConfig, JournalKey};

    fn journal(dir: &Path, segment_max_bytes: u64) -> Journal {
        let cfg = JournalConfig {
            dir: dir.to_owned(),
            gateway: [7; 32],
            key: JournalKey::generate().expect("key").0,
            segment_max_bytes,
            segment_max_age: time::Duration::days(1),
            group: None,
        };
        Journal::open(cfg, OffsetDateTime::now_utc())
            .expect("open")
            .0
    }

    fn event(n: u32) -> Event {
        Event::GatewayStarted {
            version: format!("v{n}"),
            policy_sha256: String::new(),
            name: None,
        }
    }

    #[test]
    fn every_record_once_in_order_across_segments_and_batches() {
        let dir = tempfile::tempdir().expect("tempdir");
        let j = journal(dir.path(), 4096);
        for n in 0..200 {
            j.append(&event(n), OffsetDateTime::now_utc())
                .expect("append");
        }
        assert!(
            segment::list(dir.path()).expect("list").len() > 3,
            "several segments"
        );
        let mut f = Follower::new(dir.path(), 0);
        let mut seen = Vec::new();
        let mut versions = Vec::new();
        loop {
            let b = f.next_batch(j.durable_end(), 7).expect("batch");
            assert!(b.skipped.is_none());
            if b.records.is_empty() {
                break;
            }
            for r in b.records {
                if r.kind == Kind::Event {
                    versions.push(r.json()["version"].as_str().map(str::to_owned));
                }
                seen.push(r.seq);
            }
        }
        assert_eq!(seen, (0..seen.len() as u64).collect::<Vec<_>>());
        assert_eq!(versions.len(), 200);
        assert_eq!(versions[199].as_deref(), Some("v199"));
        // More comes: the follower goes on from where it stopped.
        j.append(&event(200), OffsetDateTime::now_utc())
            .expect("append");
        let b = f.next_batch(j.durable_end(), 100).expect("batch");
        assert_eq!(b.records.first().map(|r| r.seq), seen.last().map(|s| s + 1));
        // From the middle, and rewound.
        let mut g = Follower::new(dir.path(), 150);
        assert_eq!(
            g.next_batch(j.durable_end(), 1).expect("batch").records[0].seq,
            150
        );
        g.rewind(3);
        assert_eq!(
            g.next_batch(j.durable_end(), 1).expect("batch").records[0].seq,
            3
        );
    }

    #[test]
    fn a_purged_start_is_reported_and_an_altered_record_stops_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let j = journal(dir.path(), 4096);
        for n in 0..100 {
            j.append(&event(n), OffsetDateTime::now_utc())
                .expect("append");
        }
        let segments = segment::list(dir.path()).expect("list");
        std::fs::remove_file(&segments[0].path).expect("remove");
        let (second, _) = segment::read_header(&segments[1].path).expect("header");
        let mut f = Follower::new(dir.path(), 0);
        let b = f.next_batch(j.durable_end(), 1).expect("batch");
        assert_eq!(b.skipped, Some((0, second.first_seq)));
        assert_eq!(b.records[0].seq, second.first_seq);

        // One byte of an event changed: the chain no longer holds.
        let last = segments.last().expect("segments");
        let mut bytes = std::fs::read(&last.path).expect("read");
        let at = bytes.len() - 60;
        bytes[at] ^= 1;
        std::fs::write(&last.path, bytes).expect("write");
        let mut f = Follower::new(dir.path(), 0);
        let damage = loop {
            match f.next_batch(None, 50) {
                Ok(b) if b.records.is_empty() => panic!("read to the end"),
                Ok(_) => {}
                Err(d) => break d,
            }
        };
        assert_eq!(damage.place.segment, last.name(), "{damage}");
    }
}

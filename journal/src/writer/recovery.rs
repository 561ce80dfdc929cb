//! Where the journal stands when the writer opens it: closed segments are known from
//! the headers that follow them; only the last segment is read in full, and its tail
//! after the last checkpoint (never acknowledged) is cut and kept aside.

use std::fs::OpenOptions;
use std::io;

use time::OffsetDateTime;

use super::{JournalConfig, JournalError, Recovery, SegInfo, sync_dir, write_new};
use crate::checkpoint::PurgeState;
use crate::event::Event;
use crate::merkle::Frontier;
use crate::segment::{self, SegmentFile};
use crate::verify::{Damage, Walk};
use crate::{frame, hex, unhex32};

/// The writer's position after recovery.
pub(super) struct State {
    pub(super) segments: Vec<SegInfo>,
    pub(super) next_seq: u64,
    pub(super) prev: [u8; 32],
    pub(super) frontier: Frontier,
    pub(super) purge: Option<PurgeState>,
}

/// Finds where the journal stands: closed segments are known from the headers that
/// follow them; only the last segment is read in full. Its tail after the last checkpoint
/// (a torn or unsigned write, never acknowledged) is cut and kept beside the journal.
/// Damage inside the last segment before its last checkpoint is refused.
pub(super) fn recover(
    cfg: &JournalConfig,
    now: OffsetDateTime,
) -> Result<(State, Recovery), JournalError> {
    let io = |e: io::Error| JournalError::Io(e.to_string());
    let key = cfg.key.public();
    let start = Walk::start(&cfg.dir, Some(&key)).map_err(JournalError::Damaged)?;
    if start.gateway.is_some_and(|g| g != cfg.gateway) {
        return Err(JournalError::OtherGateway);
    }
    let mut files: Vec<SegmentFile> = segment::list(&cfg.dir)
        .map_err(io)?
        .into_iter()
        .filter(|s| !start.purged(s))
        .collect();
    // A last segment created by a writer that never wrote to it holds nothing.
    if let Some(last) = files.last()
        && std::fs::metadata(&last.path).map_err(io)?.len() == 0
    {
        std::fs::remove_file(&last.path).map_err(io)?;
        files.pop();
    }
    // A last segment whose header was torn (a crash while a new segment was begun) held
    // nothing acknowledged: keep its bytes aside and resume from the segment before it.
    let mut cut_whole = None;
    if let Some(last) = files.last()
        && segment::read_header(&last.path).is_err()
    {
        let bytes = std::fs::read(&last.path).map_err(io)?;
        cut_whole = Some(cut_aside(cfg, now, last, &bytes, 0)?);
        std::fs::remove_file(&last.path).map_err(io)?;
        sync_dir(&cfg.dir).map_err(io)?;
        files.pop();
    }
    let Some(last) = files.pop() else {
        let prev = if start.next_seq == 0 {
            frame::genesis(&cfg.gateway)
        } else {
            start.prev
        };
        let state = State {
            segments: Vec::new(),
            next_seq: start.next_seq,
            prev,
            frontier: start.frontier,
            purge: start.purge,
        };
        return Ok((
            state,
            Recovery {
                truncated: cut_whole,
            },
        ));
    };
    // Closed segments: their end is the next segment's header.
    let mut headers = Vec::with_capacity(files.len() + 1);
    for seg in files.iter().chain(std::iter::once(&last)) {
        let (h, time) = segment::read_header(&seg.path).map_err(|e| {
            JournalError::Damaged(Damage {
                place: crate::verify::Place {
                    segment: seg.name(),
                    offset: 0,
                    seq: None,
                },
                what: format!("the segment header cannot be read: {e}"),
            })
        })?;
        if h.gateway != hex(&cfg.gateway) {
            return Err(JournalError::OtherGateway);
        }
        headers.push((h, time));
    }
    let mut segments = Vec::with_capacity(files.len());
    for (i, seg) in files.into_iter().enumerate() {
        let (next, next_time) = &headers[i + 1];
        segments.push(SegInfo {
            file: seg,
            last_time_ms: *next_time,
            end_prev: unhex32(&next.prev).unwrap_or_default(),
            end_frontier: next.frontier.clone(),
            end_seq: next.first_seq,
        });
    }
    let mut resumed = Walk::resume(&last).map_err(JournalError::Damaged)?;
    resumed.track_mark = true;
    let mut walk = resumed.clone();
    let bytes = std::fs::read(&last.path).map_err(io)?;
    let mut last_time = headers.last().map_or(0, |h| h.1);
    let result = walk.segment(&last, &bytes, Some(&key), |f| {
        last_time = last_time.max(f.time_ms)
    });
    let mut truncated = None;
    if result.is_err() || walk.unsigned > 0 {
        // Everything after the last checkpoint was never acknowledged.
        let (cut_at, restored) = match walk.mark.take() {
            Some(m) => (m.0, m.1),
            None => (0, resumed),
        };
        if let Err(d) = &result
            && d.place.offset < cut_at
        {
            return Err(JournalError::Damaged(d.clone()));
        }
        truncated = Some(cut_aside(
            cfg,
            now,
            &last,
            &bytes[cut_at as usize..],
            cut_at,
        )?);
        if cut_at == 0 {
            std::fs::remove_file(&last.path).map_err(io)?;
        } else {
            let f = OpenOptions::new()
                .write(true)
                .open(&last.path)
                .map_err(io)?;
            f.set_len(cut_at).map_err(io)?;
            f.sync_all().map_err(io)?;
        }
        sync_dir(&cfg.dir).map_err(io)?;
        walk = restored;
        if cut_at == 0 {
            let state = State {
                segments,
                next_seq: walk.next_seq,
                prev: walk.prev,
                frontier: walk.frontier,
                purge: start.purge,
            };
            return Ok((
                state,
                Recovery {
                    truncated: truncated.or(cut_whole),
                },
            ));
        }
    }
    segments.push(SegInfo {
        file: last,
        last_time_ms: last_time,
        end_prev: walk.prev,
        end_frontier: walk.frontier.clone(),
        end_seq: walk.next_seq,
    });
    let state = State {
        segments,
        next_seq: walk.next_seq,
        prev: walk.prev,
        frontier: walk.frontier,
        purge: start.purge,
    };
    Ok((
        state,
        Recovery {
            truncated: truncated.or(cut_whole),
        },
    ))
}

/// Keeps `tail` (cut from `seg` at `offset`) beside the journal and describes the cut.
fn cut_aside(
    cfg: &JournalConfig,
    now: OffsetDateTime,
    seg: &SegmentFile,
    tail: &[u8],
    offset: u64,
) -> Result<Event, JournalError> {
    let saved = cfg
        .dir
        .join(format!("cut-{}-{}.bin", now.unix_timestamp(), seg.name()));
    write_new(&saved, tail, 0o640).map_err(|e| JournalError::Io(e.to_string()))?;
    tracing::error!(
        segment = %seg.name(),
        offset,
        bytes = tail.len(),
        saved = %saved.display(),
        "journal tail after the last checkpoint cut at recovery"
    );
    Ok(Event::JournalTruncated {
        segment: seg.name(),
        offset,
        bytes: tail.len() as u64,
        sha256: hex(ring::digest::digest(&ring::digest::SHA256, tail).as_ref()),
        saved_as: saved
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
    })
}

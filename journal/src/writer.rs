//! The one writer: group commit, recovery, rotation and retention.
//!
//! Split along its seams: [`recovery`] (where the journal stands when it opens, and the
//! torn tail cut aside), this module (the API and the writer thread: group commit,
//! checkpoints, rotation), [`retention`] (purging old segments under a signed record),
//! [`files`] (creating segments and files with their modes, fsync of the directory).
//!
//! Appends from any thread queue to one writer thread. It takes everything queued (up to
//! [`MAX_BATCH`]), writes the frames and a signed checkpoint in one write, fsyncs, and
//! only then answers. If a write or fsync fails the journal fails closed: every append
//! from then on is refused until the gateway restarts, and the failure is logged.

use std::fs::{File, OpenOptions};
use std::io::{self, Write as _};
use std::os::unix::fs::{MetadataExt as _, OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use time::OffsetDateTime;

use super::checkpoint::{JournalKey, PurgeState, head};
use super::event::Event;
use super::frame::{self, Kind};
use super::hex;
use super::merkle::Frontier;
use super::segment::{self, LOCK_FILE, MAGIC, SegmentFile, SegmentHeader};
use super::verify::Damage;

mod files;
mod recovery;
mod retention;

use files::{create_segment, segment_access, sync_dir, write_new};
use recovery::{State, recover};

/// Most appends written (and fsynced) together.
pub const MAX_BATCH: usize = 4096;
/// Most appends waiting for the writer; more wait for room (back-pressure).
pub const QUEUE: usize = 65_536;

/// How the journal is kept.
#[derive(Debug)]
pub struct JournalConfig {
    pub dir: PathBuf,
    /// The gateway's identity (CA fingerprint).
    pub gateway: [u8; 32],
    pub key: JournalKey,
    pub segment_max_bytes: u64,
    pub segment_max_age: time::Duration,
    /// Group that may read the journal (the auditors), if it exists.
    pub group: Option<u32>,
}

/// Why the journal refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JournalError {
    #[error("the journal is unavailable ({0}); no action that needs journaling is taken")]
    Unavailable(String),
    #[error("the journal is damaged: {0}; run `ztgw journal verify`")]
    Damaged(Damage),
    #[error("the journal belongs to another gateway")]
    OtherGateway,
    #[error("another process is writing the journal in {0}")]
    Busy(String),
    #[error("journal I/O: {0}")]
    Io(String),
    #[error("the event is larger than a journal record may be")]
    TooLarge,
}

/// What recovery did when the journal was opened.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Recovery {
    /// A damaged tail that was cut (and saved), if any; it is journaled at open.
    pub truncated: Option<Event>,
}

/// An append waiting for the writer: payload, time, where to answer.
type PendingAppend = (Vec<u8>, i64, SyncSender<Result<u64, JournalError>>);

enum Cmd {
    Append {
        payload: Vec<u8>,
        time_ms: i64,
        reply: SyncSender<Result<u64, JournalError>>,
    },
    Purge {
        older_than: OffsetDateTime,
        reply: SyncSender<Result<Vec<String>, JournalError>>,
    },
    /// After a failure: try writing again (see [`Journal::retry`]).
    Retry {
        time_ms: i64,
        reply: SyncSender<bool>,
    },
}

#[derive(Debug, Default)]
struct Health {
    failed: AtomicBool,
    reason: Mutex<Option<String>>,
    /// When the current failure began (ms since the epoch).
    failed_since_ms: Mutex<Option<i64>>,
    /// Appends refused since the current failure began.
    refused: AtomicU64,
    appended: AtomicU64,
    /// The current segment and its length after the last acknowledged write: readers of a
    /// live journal stop there, never inside a write in progress.
    durable: Mutex<Option<(u64, u64)>>,
    /// The sequence number the next record will take: every record before it is
    /// acknowledged.
    next_seq: AtomicU64,
}

/// The journal, open for appending.
#[derive(Debug)]
pub struct Journal {
    tx: Option<SyncSender<Cmd>>,
    health: Arc<Health>,
    thread: Option<JoinHandle<()>>,
    dir: PathBuf,
    public_key: super::PublicKey,
}

#[derive(Debug, Clone)]
struct SegInfo {
    file: SegmentFile,
    last_time_ms: i64,
    /// State just after the segment's last frame.
    end_prev: [u8; 32],
    end_frontier: Frontier,
    end_seq: u64,
}

struct Writer {
    cfg: JournalConfig,
    file: File,
    current: SegmentFile,
    current_len: u64,
    current_started_ms: i64,
    /// Time of the newest frame in the current segment.
    current_last_ms: i64,
    next_seq: u64,
    prev: [u8; 32],
    frontier: Frontier,
    closed: Vec<SegInfo>,
    purge: Option<PurgeState>,
    health: Arc<Health>,
    _lock: File,
}

impl Journal {
    /// Opens the journal in `cfg.dir` (creating it), recovering from a crash. `now` is
    /// when the recovery is recorded.
    pub fn open(cfg: JournalConfig, now: OffsetDateTime) -> Result<(Self, Recovery), JournalError> {
        let io = |e: io::Error| JournalError::Io(e.to_string());
        std::fs::create_dir_all(&cfg.dir).map_err(io)?;
        let dir_mode = if cfg.group.is_some() { 0o750 } else { 0o700 };
        std::fs::set_permissions(&cfg.dir, std::fs::Permissions::from_mode(dir_mode))
            .map_err(io)?;
        if let Some(gid) = cfg.group
            && std::fs::metadata(&cfg.dir).map_err(io)?.gid() != gid
        {
            // The service must belong to the group (the package makes it a member).
            std::os::unix::fs::chown(&cfg.dir, None, Some(gid)).map_err(|e| {
                JournalError::Io(format!(
                    "giving {} to group {gid} (is the service's user a member?): {e}",
                    cfg.dir.display()
                ))
            })?;
        }
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .open(cfg.dir.join(LOCK_FILE))
            .map_err(io)?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(JournalError::Busy(cfg.dir.display().to_string()));
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(io(e)),
        }
        let public_key = cfg.key.public();
        let (state, recovery) = recover(&cfg, now)?;
        let health = Arc::new(Health::default());
        let (tx, rx) = mpsc::sync_channel(QUEUE);
        let writer = Writer::start(cfg, state, lock, health.clone())?;
        let dir = writer.cfg.dir.clone();
        let thread = std::thread::Builder::new()
            .name("ztgw-journal".into())
            .spawn(move || writer.run(rx))
            .map_err(io)?;
        let journal = Self {
            tx: Some(tx),
            health,
            thread: Some(thread),
            dir,
            public_key,
        };
        if let Some(event) = &recovery.truncated {
            journal.append(event, now)?;
        }
        Ok((journal, recovery))
    }

    /// Appends `event` at `time`; returns its sequence number once it, and a signed
    /// checkpoint covering it, are on disk.
    pub fn append(&self, event: &Event, time: OffsetDateTime) -> Result<u64, JournalError> {
        if let Some(reason) = self.failure() {
            self.health.refused.fetch_add(1, Ordering::Relaxed);
            return Err(JournalError::Unavailable(reason));
        }
        let payload = serde_json::to_vec(event).map_err(|e| JournalError::Io(e.to_string()))?;
        if payload.len() > frame::MAX_PAYLOAD {
            return Err(JournalError::TooLarge);
        }
        let (reply, answer) = mpsc::sync_channel(1);
        let time_ms = (time.unix_timestamp_nanos() / 1_000_000) as i64;
        self.send(Cmd::Append {
            payload,
            time_ms,
            reply,
        })?;
        answer
            .recv()
            .map_err(|_| JournalError::Unavailable("the journal writer stopped".into()))?
    }

    /// Appends `events` in order, sent to the writer together so that one group commit
    /// usually makes them all durable; returns their sequence numbers once all are.
    pub fn append_all(
        &self,
        events: &[Event],
        time: OffsetDateTime,
    ) -> Result<Vec<u64>, JournalError> {
        if let Some(reason) = self.failure() {
            self.health
                .refused
                .fetch_add(events.len() as u64, Ordering::Relaxed);
            return Err(JournalError::Unavailable(reason));
        }
        let time_ms = (time.unix_timestamp_nanos() / 1_000_000) as i64;
        let mut answers = Vec::with_capacity(events.len());
        for event in events {
            let payload = serde_json::to_vec(event).map_err(|e| JournalError::Io(e.to_string()))?;
            if payload.len() > frame::MAX_PAYLOAD {
                return Err(JournalError::TooLarge);
            }
            let (reply, answer) = mpsc::sync_channel(1);
            self.send(Cmd::Append {
                payload,
                time_ms,
                reply,
            })?;
            answers.push(answer);
        }
        answers
            .into_iter()
            .map(|a| {
                a.recv()
                    .map_err(|_| JournalError::Unavailable("the journal writer stopped".into()))?
            })
            .collect()
    }

    /// Deletes whole segments whose last record is older than `older_than` (never the
    /// current one), leaving a signed purge record so the rest still verifies, and
    /// journals the purge. Returns the deleted segments' names.
    pub fn purge(&self, older_than: OffsetDateTime) -> Result<Vec<String>, JournalError> {
        let (reply, answer) = mpsc::sync_channel(1);
        self.send(Cmd::Purge { older_than, reply })?;
        answer
            .recv()
            .map_err(|_| JournalError::Unavailable("the journal writer stopped".into()))?
    }

    fn send(&self, cmd: Cmd) -> Result<(), JournalError> {
        let tx = self
            .tx
            .as_ref()
            .ok_or_else(|| JournalError::Unavailable("the journal is closed".into()))?;
        match tx.try_send(cmd) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(cmd)) => tx
                .send(cmd)
                .map_err(|_| JournalError::Unavailable("the journal writer stopped".into())),
            Err(TrySendError::Disconnected(_)) => Err(JournalError::Unavailable(
                "the journal writer stopped".into(),
            )),
        }
    }

    /// After a failure (a full disk, say), tries to write again: the first record is a
    /// `journal.resumed` event that tells the gap (since when, why, how many appends were
    /// refused meanwhile). Returns whether the journal accepts appends now. The daemon
    /// calls it every few seconds, so the journal comes back by itself once the cause is
    /// gone.
    pub fn retry(&self) -> bool {
        if self.healthy() {
            return true;
        }
        let (reply, answer) = mpsc::sync_channel(1);
        let time_ms = (OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64;
        if self.send(Cmd::Retry { time_ms, reply }).is_err() {
            return false;
        }
        answer.recv().unwrap_or(false)
    }

    /// Whether appends are being accepted.
    pub fn healthy(&self) -> bool {
        !self.health.failed.load(Ordering::Acquire)
    }

    /// Why the journal stopped accepting appends, if it did.
    pub fn failure(&self) -> Option<String> {
        if self.healthy() {
            return None;
        }
        self.health
            .reason
            .lock()
            .ok()
            .and_then(|r| r.clone())
            .or_else(|| Some("write failure".into()))
    }

    /// Where the acknowledged journal ends: (segment number, length), once something was
    /// written since it was opened.
    pub fn durable_end(&self) -> Option<(u64, u64)> {
        self.health.durable.lock().ok().and_then(|d| *d)
    }

    /// The sequence number the next record will take: the records before it are on disk
    /// and signed.
    pub fn next_seq(&self) -> u64 {
        self.health.next_seq.load(Ordering::Acquire)
    }

    /// Events appended since the journal was opened.
    pub fn appended(&self) -> u64 {
        self.health.appended.load(Ordering::Relaxed)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn public_key(&self) -> super::PublicKey {
        self.public_key
    }
}

impl Drop for Journal {
    fn drop(&mut self) {
        drop(self.tx.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Writer {
    fn start(
        cfg: JournalConfig,
        mut state: State,
        lock: File,
        health: Arc<Health>,
    ) -> Result<Self, JournalError> {
        let io = |e: io::Error| JournalError::Io(e.to_string());
        // Closed segments are the auditors' to read too, also after something took their
        // group or mode away (a `chown -R` of the directory, a service manager re-owning
        // a directory it manages).
        for info in state.segments.iter().rev().skip(1) {
            let file = OpenOptions::new()
                .read(true)
                .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
                .open(&info.file.path)
                .map_err(io)?;
            segment_access(&file, cfg.group).map_err(io)?;
        }
        // Appends go to the last segment if it is still open, otherwise to a new one.
        let reopened_last = state.segments.last().map_or(0, |s| s.last_time_ms);
        let (current, file, len, started) = match state.segments.pop() {
            Some(info) => {
                let file = OpenOptions::new()
                    .append(true)
                    .open(&info.file.path)
                    .map_err(io)?;
                // Segments written before their mode was set explicitly are fixed too.
                segment_access(&file, cfg.group).map_err(io)?;
                let len = file.metadata().map_err(io)?.len();
                let current = info.file.clone();
                // A reopened segment counts its age from now: rotation by age is a bound,
                // not a deadline.
                (current, file, len, i64::MAX)
            }
            None => {
                let number = state.purge.as_ref().map_or(0, |p| {
                    p.segments_removed
                        .iter()
                        .filter_map(|n| n.strip_prefix("seg-").and_then(|n| n.strip_suffix(".zj")))
                        .filter_map(|n| n.parse::<u64>().ok())
                        .max()
                        .unwrap_or(0)
                }) + 1;
                let current = SegmentFile {
                    number,
                    path: cfg.dir.join(segment::file_name(number)),
                };
                let file = create_segment(&current.path, cfg.group).map_err(io)?;
                (current, file, 0, 0)
            }
        };
        if len > 0
            && let Ok(mut d) = health.durable.lock()
        {
            *d = Some((current.number, len));
        }
        health.next_seq.store(state.next_seq, Ordering::Release);
        Ok(Self {
            cfg,
            file,
            current,
            current_len: len,
            current_started_ms: started,
            current_last_ms: reopened_last,
            next_seq: state.next_seq,
            prev: state.prev,
            frontier: state.frontier,
            closed: state.segments,
            purge: state.purge,
            health,
            _lock: lock,
        })
    }

    fn run(mut self, rx: Receiver<Cmd>) {
        while let Ok(first) = rx.recv() {
            let mut appends = Vec::new();
            let mut purges = Vec::new();
            let mut next = Some(first);
            while let Some(cmd) = next.take() {
                match cmd {
                    Cmd::Append {
                        payload,
                        time_ms,
                        reply,
                    } => appends.push((payload, time_ms, reply)),
                    Cmd::Purge { older_than, reply } => purges.push((older_than, reply)),
                    Cmd::Retry { time_ms, reply } => {
                        // Appends gathered so far go first (and are refused if still failed).
                        if !appends.is_empty() {
                            self.commit(std::mem::take(&mut appends));
                        }
                        let _ = reply.send(self.resume(time_ms));
                    }
                }
                if appends.len() < MAX_BATCH {
                    next = rx.try_recv().ok();
                }
            }
            if !appends.is_empty() {
                self.commit(appends);
            }
            for (older_than, reply) in purges {
                let _ = reply.send(self.purge_older(older_than));
            }
        }
    }

    fn fail(&self, why: String) {
        tracing::error!(reason = %why, "THE AUDIT JOURNAL CANNOT BE WRITTEN: refusing every action that needs journaling");
        if let Ok(mut r) = self.health.reason.lock() {
            *r = Some(why);
        }
        if let Ok(mut since) = self.health.failed_since_ms.lock()
            && since.is_none()
        {
            *since = Some((OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64);
        }
        self.health.failed.store(true, Ordering::Release);
    }

    /// Tries to write again after a failure; the first record tells the gap.
    fn resume(&mut self, time_ms: i64) -> bool {
        if !self.health.failed.load(Ordering::Acquire) {
            return true;
        }
        // A failed batch was cut back to the last durable length; make sure it still is.
        if self.file.set_len(self.current_len).is_err() {
            return false;
        }
        let reason = self.failure_reason().unwrap_or_default();
        let since = self
            .health
            .failed_since_ms
            .lock()
            .ok()
            .and_then(|s| *s)
            .unwrap_or(time_ms);
        let event = Event::JournalResumed {
            failed_at: ms_rfc3339(since),
            reason: reason.clone(),
            refused: self.health.refused.load(Ordering::Relaxed),
        };
        let Ok(payload) = serde_json::to_vec(&event) else {
            return false;
        };
        self.health.failed.store(false, Ordering::Release);
        let (reply, answer) = mpsc::sync_channel(1);
        self.commit(vec![(payload, time_ms, reply)]);
        match answer.try_recv() {
            Ok(Ok(_)) => {
                self.health.refused.store(0, Ordering::Relaxed);
                if let Ok(mut s) = self.health.failed_since_ms.lock() {
                    *s = None;
                }
                if let Ok(mut r) = self.health.reason.lock() {
                    *r = None;
                }
                tracing::warn!(%reason, "the audit journal is written again");
                true
            }
            _ => false,
        }
    }

    /// Writes `appends` and a checkpoint in one write, fsyncs, and answers each.
    fn commit(&mut self, appends: Vec<PendingAppend>) {
        if let Some(reason) = self.failure_reason() {
            self.health
                .refused
                .fetch_add(appends.len() as u64, Ordering::Relaxed);
            for (_, _, reply) in appends {
                let _ = reply.send(Err(JournalError::Unavailable(reason.clone())));
            }
            return;
        }
        let batch_time = appends.iter().map(|a| a.1).max().unwrap_or(0);
        let saved = (self.next_seq, self.prev, self.frontier.clone());
        let mut buf = Vec::with_capacity(
            appends
                .iter()
                .map(|a| a.0.len() + frame::OVERHEAD)
                .sum::<usize>()
                + 1024,
        );
        if let Err(e) = self.rotate_if_due(batch_time, &mut buf) {
            self.fail(format!("opening a new segment: {e}"));
            self.health
                .refused
                .fetch_add(appends.len() as u64, Ordering::Relaxed);
            for (_, _, reply) in appends {
                let _ = reply.send(Err(JournalError::Unavailable(e.to_string())));
            }
            return;
        }
        let mut seqs = Vec::with_capacity(appends.len());
        for (payload, time_ms, _) in &appends {
            seqs.push(self.push_frame(&mut buf, Kind::Event, *time_ms, payload));
        }
        self.push_checkpoint(&mut buf, batch_time);
        let written = self
            .file
            .write_all(&buf)
            .and_then(|()| self.file.sync_data());
        match written {
            Ok(()) => {
                self.current_len += buf.len() as u64;
                self.current_last_ms = self.current_last_ms.max(batch_time);
                if let Ok(mut d) = self.health.durable.lock() {
                    *d = Some((self.current.number, self.current_len));
                }
                self.health.next_seq.store(self.next_seq, Ordering::Release);
                self.health
                    .appended
                    .fetch_add(appends.len() as u64, Ordering::Relaxed);
                for ((_, _, reply), seq) in appends.into_iter().zip(seqs) {
                    let _ = reply.send(Ok(seq));
                }
            }
            Err(e) => {
                // Put the file and the state back as they were before this batch.
                let _ = self.file.set_len(self.current_len);
                (self.next_seq, self.prev, self.frontier) = saved;
                let why = format!("{}: {e}", self.current.name());
                self.fail(why.clone());
                self.health
                    .refused
                    .fetch_add(appends.len() as u64, Ordering::Relaxed);
                for (_, _, reply) in appends {
                    let _ = reply.send(Err(JournalError::Unavailable(why.clone())));
                }
            }
        }
    }

    fn failure_reason(&self) -> Option<String> {
        self.health.failed.load(Ordering::Acquire).then(|| {
            self.health
                .reason
                .lock()
                .ok()
                .and_then(|r| r.clone())
                .unwrap_or_default()
        })
    }

    fn push_frame(&mut self, buf: &mut Vec<u8>, kind: Kind, time_ms: i64, payload: &[u8]) -> u64 {
        let seq = self.next_seq;
        let (hash, leaf) = frame::encode(buf, &self.prev, kind, seq, time_ms, payload);
        self.prev = hash;
        self.frontier.push(leaf);
        self.next_seq += 1;
        seq
    }

    fn push_checkpoint(&mut self, buf: &mut Vec<u8>, time_ms: i64) {
        let h = head(
            &self.cfg.gateway,
            self.next_seq,
            &self.frontier.root(),
            &self.prev,
            time_ms,
        );
        let sth = self.cfg.key.sign_head(h);
        let payload = serde_json::to_vec(&sth).unwrap_or_default();
        self.push_frame(buf, Kind::Checkpoint, time_ms, &payload);
    }

    /// Starts a new segment (its header goes first in `buf`) when the current one is
    /// full or old, or has not been written yet.
    fn rotate_if_due(&mut self, now_ms: i64, buf: &mut Vec<u8>) -> io::Result<()> {
        let age_due = self.current_started_ms != i64::MAX
            && now_ms.saturating_sub(self.current_started_ms)
                >= self.cfg.segment_max_age.whole_milliseconds() as i64;
        if self.current_started_ms == i64::MAX {
            self.current_started_ms = now_ms;
        }
        let new_needed = self.current_len == 0;
        if !new_needed && self.current_len < self.cfg.segment_max_bytes && !age_due {
            return Ok(());
        }
        if !new_needed {
            self.closed.push(SegInfo {
                file: self.current.clone(),
                last_time_ms: self.current_last_ms,
                end_prev: self.prev,
                end_frontier: self.frontier.clone(),
                end_seq: self.next_seq,
            });
            let number = self.current.number + 1;
            self.current = SegmentFile {
                number,
                path: self.cfg.dir.join(segment::file_name(number)),
            };
            self.file = create_segment(&self.current.path, self.cfg.group)?;
            self.current_len = 0;
            sync_dir(&self.cfg.dir)?;
        }
        self.current_started_ms = now_ms;
        self.current_last_ms = now_ms;
        let header = SegmentHeader {
            magic: MAGIC.into(),
            version: 1,
            gateway: hex(&self.cfg.gateway),
            segment: self.current.number,
            first_seq: self.next_seq,
            prev: hex(&self.prev),
            frontier: self.frontier.clone(),
        };
        let payload = serde_json::to_vec(&header).map_err(io::Error::other)?;
        self.push_frame(buf, Kind::SegmentHeader, now_ms, &payload);
        Ok(())
    }
}

/// Milliseconds since the epoch, as RFC 3339.
fn ms_rfc3339(ms: i64) -> String {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::segment::PURGE_FILE;
    use crate::verify::verify_dir;
    use crate::{PublicKey, query};

    const GW: [u8; 32] = [0x42; 32];

    fn t(s: i64) -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(1_800_000_000 + s).expect("time")
    }

    fn config(dir: &Path, key: &[u8], max_bytes: u64) -> JournalConfig {
        JournalConfig {
            dir: dir.to_owned(),
            gateway: GW,
            key: JournalKey::from_pkcs8(key).expect("key"),
            segment_max_bytes: max_bytes,
            segment_max_age: time::Duration::days(1),
            group: None,
        }
    }

    fn event(n: u64) -> Event {
        Event::DeviceRevoked {
            device: ztgw_pki::DeviceId::new(format!("dev-{n}")).expect("id"),
            employee: ztgw_pki::EmployeeId::new(format!("e{}", n % 3)).expect("id"),
            operator: "op".into(),
            reason: "lost".into(),
            note: None,
        }
    }

    fn key() -> (Vec<u8>, PublicKey) {
        let (k, pkcs8) = JournalKey::generate().expect("key");
        (pkcs8.expose().clone(), k.public())
    }

    #[test]
    fn a_bounded_read_stops_at_the_segment_where_one_more_matched() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (pkcs8, _) = key();
        {
            // Small segments: many of them.
            let (j, _) = Journal::open(config(dir.path(), &pkcs8, 4096), t(0)).expect("open");
            for n in 0..200 {
                j.append(&event(n), t(n as i64)).expect("append");
            }
        }
        let segments = super::segment::list(dir.path()).expect("list");
        assert!(segments.len() > 5, "{} segments", segments.len());
        // Damage the last segment: a read that stops early never reaches it.
        let last = &segments[segments.len() - 1].path;
        let mut bytes = std::fs::read(last).expect("read");
        let n = bytes.len();
        bytes[n - 40] ^= 0xff;
        std::fs::write(last, bytes).expect("write");
        let (records, more) =
            query::read_at_most(dir.path(), &query::Filter::default(), None, 3).expect("early");
        assert_eq!(records.len(), 3);
        assert!(more, "more matched");
        assert!(
            query::read(dir.path(), &query::Filter::default()).is_err(),
            "a full read meets the damage"
        );
    }

    #[test]
    fn appends_survive_reopening_and_verify() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (pkcs8, public) = key();
        {
            let (j, rec) = Journal::open(config(dir.path(), &pkcs8, 1 << 20), t(0)).expect("open");
            assert_eq!(rec, Recovery::default());
            assert_eq!(j.append(&event(1), t(1)).expect("append"), 1);
            assert_eq!(j.append(&event(2), t(2)).expect("append"), 3);
        }
        {
            let (j, _) = Journal::open(config(dir.path(), &pkcs8, 1 << 20), t(10)).expect("reopen");
            assert_eq!(j.append(&event(3), t(11)).expect("append"), 5);
        }
        let report = verify_dir(dir.path(), Some(&public), None).expect("intact");
        assert_eq!(
            (
                report.records,
                report.events,
                report.checkpoints,
                report.segments
            ),
            (7, 3, 3, 1)
        );
        let events = query::read(dir.path(), &query::Filter::default()).expect("read");
        let devices: Vec<&str> = events
            .iter()
            .filter_map(|r| r.event["device"].as_str())
            .collect();
        assert_eq!(devices, vec!["dev-1", "dev-2", "dev-3"]);
        let (_, other) = key();
        assert!(
            verify_dir(dir.path(), Some(&other), None).is_err(),
            "another key does not verify"
        );
    }

    #[test]
    fn concurrent_appends_are_grouped_and_all_kept() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (pkcs8, public) = key();
        let (j, _) = Journal::open(config(dir.path(), &pkcs8, 1 << 30), t(0)).expect("open");
        let j = Arc::new(j);
        let threads: Vec<_> = (0..8u64)
            .map(|w| {
                let j = j.clone();
                std::thread::spawn(move || {
                    (0..200u64)
                        .map(|i| j.append(&event(w * 1000 + i), t(1)).expect("append"))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        let mut seqs: Vec<u64> = threads
            .into_iter()
            .flat_map(|h| h.join().expect("thread"))
            .collect();
        seqs.sort_unstable();
        seqs.dedup();
        assert_eq!(seqs.len(), 1600);
        drop(j);
        let report = verify_dir(dir.path(), Some(&public), None).expect("intact");
        assert_eq!(report.events, 1600);
        assert!(
            report.checkpoints < 1600,
            "appends were grouped: {} checkpoints",
            report.checkpoints
        );
    }

    #[test]
    fn segments_rotate_and_purging_keeps_the_rest_verifiable() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (pkcs8, public) = key();
        let (j, _) = Journal::open(config(dir.path(), &pkcs8, 1), t(0)).expect("open");
        for i in 0..6 {
            j.append(&event(i), t(i as i64 * 100)).expect("append");
        }
        assert_eq!(segment::list(dir.path()).expect("list").len(), 6);
        let kept_before = verify_dir(dir.path(), Some(&public), None)
            .expect("intact")
            .last_checkpoint;
        let purged = j.purge(t(250)).expect("purge");
        assert_eq!(
            purged,
            vec!["seg-00000001.zj", "seg-00000002.zj", "seg-00000003.zj"]
        );
        drop(j);
        let report = verify_dir(dir.path(), Some(&public), None).expect("still intact after purge");
        assert!(report.first_seq > 0);
        // A checkpoint the auditor kept before the purge still matches what is left.
        verify_dir(dir.path(), Some(&public), kept_before)
            .expect("kept checkpoint still consistent");
        let kinds: Vec<String> = query::read(dir.path(), &query::Filter::default())
            .expect("read")
            .iter()
            .map(|r| r.event["type"].as_str().unwrap_or("").to_owned())
            .collect();
        assert_eq!(kinds.last().map(String::as_str), Some("journal.purged"));
        assert_eq!(kinds.iter().filter(|k| *k == "device.revoked").count(), 3);
        // The purge record is signed: altering it is caught.
        let p = dir.path().join(PURGE_FILE);
        let text = std::fs::read_to_string(&p)
            .expect("purge")
            .replace("\"first_seq\": ", "\"first_seq\": 1");
        std::fs::write(&p, text).expect("write");
        assert!(verify_dir(dir.path(), Some(&public), None).is_err());
    }

    #[test]
    fn a_torn_tail_is_cut_kept_and_journaled() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (pkcs8, public) = key();
        {
            let (j, _) = Journal::open(config(dir.path(), &pkcs8, 1 << 20), t(0)).expect("open");
            j.append(&event(1), t(1)).expect("append");
        }
        let seg = dir.path().join(segment::file_name(1));
        let len = std::fs::metadata(&seg).expect("meta").len();
        // A half-written batch: a complete unsigned event and a partial frame.
        let mut tail = Vec::new();
        let bytes = std::fs::read(&seg).expect("read");
        let last_hash: [u8; 32] = bytes[bytes.len() - 32..].try_into().expect("hash");
        frame::encode(
            &mut tail,
            &last_hash,
            Kind::Event,
            3,
            0,
            b"{\"type\":\"forged\"}",
        );
        tail.extend_from_slice(&[9, 9, 9]);
        std::fs::OpenOptions::new()
            .append(true)
            .open(&seg)
            .expect("open")
            .write_all(&tail)
            .expect("write");
        let damaged = verify_dir(dir.path(), Some(&public), None).expect_err("damaged");
        assert!(damaged.what.contains("cut short"), "{damaged}");
        {
            let (_j, rec) =
                Journal::open(config(dir.path(), &pkcs8, 1 << 20), t(5)).expect("recover");
            let Some(Event::JournalTruncated { offset, bytes, .. }) = rec.truncated else {
                panic!("no truncation reported: {rec:?}");
            };
            assert_eq!((offset, bytes), (len, tail.len() as u64));
        }
        let cut: Vec<_> = std::fs::read_dir(dir.path())
            .expect("dir")
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().starts_with("cut-"))
            .collect();
        assert_eq!(cut.len(), 1);
        assert_eq!(
            std::fs::read(cut[0].path()).expect("cut"),
            tail,
            "the cut bytes are kept"
        );
        verify_dir(dir.path(), Some(&public), None).expect("intact after recovery");
        let kinds: Vec<String> = query::read(dir.path(), &query::Filter::default())
            .expect("read")
            .iter()
            .map(|r| r.event["type"].as_str().unwrap_or("").to_owned())
            .collect();
        assert_eq!(kinds, vec!["device.revoked", "journal.truncated"]);
    }

    #[test]
    fn a_segment_torn_while_being_begun_is_cut_whole() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (pkcs8, public) = key();
        {
            let (j, _) = Journal::open(config(dir.path(), &pkcs8, 1 << 20), t(0)).expect("open");
            j.append(&event(1), t(1)).expect("append");
        }
        // A crash right after the next segment was created: half a header.
        let torn = dir.path().join(segment::file_name(2));
        std::fs::write(&torn, [0x50, 0x00, 0x00, 0x00, 0x00, 0x02]).expect("write");
        {
            let (j, rec) =
                Journal::open(config(dir.path(), &pkcs8, 1 << 20), t(5)).expect("recovers");
            assert!(
                matches!(
                    rec.truncated,
                    Some(Event::JournalTruncated {
                        offset: 0,
                        bytes: 6,
                        ..
                    })
                ),
                "{rec:?}"
            );
            j.append(&event(2), t(6)).expect("append after recovery");
        }
        assert!(!torn.exists() || std::fs::metadata(&torn).map(|m| m.len()).unwrap_or(0) > 6);
        let report = verify_dir(dir.path(), Some(&public), None).expect("intact");
        assert_eq!(report.events, 3, "two events and the truncation");
    }

    #[test]
    fn one_writer_at_a_time_and_only_for_its_gateway() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (pkcs8, _) = key();
        let (j, _) = Journal::open(config(dir.path(), &pkcs8, 1 << 20), t(0)).expect("open");
        j.append(&event(1), t(1)).expect("append");
        assert!(matches!(
            Journal::open(config(dir.path(), &pkcs8, 1 << 20), t(0)),
            Err(JournalError::Busy(_))
        ));
        drop(j);
        let mut other = config(dir.path(), &pkcs8, 1 << 20);
        other.gateway = [7; 32];
        assert!(matches!(
            Journal::open(other, t(0)),
            Err(JournalError::OtherGateway)
        ));
    }
}

//! Streaming the journal to the security operations centre (G10, G11): each
//! `[export.NAME]` target gets every journal record, in order, at least once.
//!
//! - Delivery starts from a cursor stored in the state directory (`export/NAME.cursor`:
//!   the sequence number of the first record not yet delivered) and the cursor moves only
//!   once the receiver has the records: an https receiver answered 2xx to the request
//!   that carried them; a syslog receiver kept the connection open [`SETTLE`] after they
//!   were written (a receiver that dies closes it, and what it may not have stored is
//!   sent again). After a failure, a restart or a reconnection, records are sent again
//!   from the cursor: a receiver may get one twice, never miss one, and sees which by the
//!   sequence numbers.
//! - The journal is the backlog: a target reads it from disk a batch at a time, so a slow
//!   or dead receiver holds no memory and never blocks or slows admissions (appends never
//!   wait for an export). Records purged by retention before a receiver got them are
//!   counted and logged as an error.
//! - How far each target is behind is a metric (`ztgw_export_lag_records`).

pub mod message;
mod transport;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use ztgw_config::{ExportKind, ExportTarget};
use ztgw_journal::follow::{Batch, Follower};

use crate::context::Context;

/// How long a syslog connection must stay open after records were written for them to
/// count as delivered.
pub const SETTLE: Duration = Duration::from_secs(2);
/// How often a target looks for new records when it has delivered everything.
const POLL: Duration = Duration::from_millis(200);
/// Waits between attempts to reach a receiver that does not answer: doubling from the
/// first to the last.
const BACKOFF: (Duration, Duration) = (Duration::from_secs(1), Duration::from_secs(30));

/// What each target has done, for the metrics.
#[derive(Debug, Default)]
pub struct TargetStatus {
    pub name: String,
    /// The first record not yet delivered (the stored cursor).
    pub delivered: AtomicU64,
    pub connected: AtomicBool,
    pub sent: AtomicU64,
    pub failures: AtomicU64,
    /// Records purged by retention before this target got them.
    pub skipped: AtomicU64,
}

/// Every target's status, in name order.
#[derive(Debug, Default)]
pub struct Statuses(pub Vec<Arc<TargetStatus>>);

impl Statuses {
    /// One status per configured target, starting from its stored cursor.
    pub fn new(
        state_dir: &Path,
        targets: &std::collections::BTreeMap<String, ExportTarget>,
    ) -> Self {
        Self(
            targets
                .keys()
                .map(|name| {
                    let s = TargetStatus {
                        name: name.clone(),
                        ..TargetStatus::default()
                    };
                    s.delivered.store(
                        read_cursor(&cursor_path(state_dir, name)).unwrap_or(0),
                        Ordering::Relaxed,
                    );
                    Arc::new(s)
                })
                .collect(),
        )
    }

    fn get(&self, name: &str) -> Option<Arc<TargetStatus>> {
        self.0.iter().find(|s| s.name == name).cloned()
    }
}

/// The stored cursor.
#[derive(Debug, Serialize, Deserialize)]
struct Cursor {
    /// The first record not yet delivered.
    next_seq: u64,
    /// Where it was delivered (for people reading the file).
    destination: String,
}

fn cursor_path(state_dir: &Path, name: &str) -> PathBuf {
    state_dir.join("export").join(format!("{name}.cursor"))
}

fn read_cursor(path: &Path) -> Option<u64> {
    let text = std::fs::read_to_string(path).ok()?;
    serde_json::from_str::<Cursor>(&text)
        .ok()
        .map(|c| c.next_seq)
}

fn write_cursor(path: &Path, next_seq: u64, destination: &str) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let text = serde_json::to_vec(&Cursor {
        next_seq,
        destination: destination.to_owned(),
    })
    .map_err(std::io::Error::other)?;
    ztgw_pki::write_private_file(path, &text, ztgw_pki::Existing::Replace)
}

/// Runs every configured target until the gateway stops.
pub async fn run_all(ctx: Arc<Context>) {
    let mut set = tokio::task::JoinSet::new();
    for name in ctx.settings.export.keys() {
        set.spawn(run(ctx.clone(), name.clone()));
    }
    while set.join_next().await.is_some() {}
}

/// One target: connect, deliver from the cursor, and on any failure wait and start again
/// from the cursor.
async fn run(ctx: Arc<Context>, name: String) {
    let (Some(target), Some(status)) = (ctx.settings.export.get(&name), ctx.export.get(&name))
    else {
        return;
    };
    let mut target_state = Delivery {
        cursor_file: cursor_path(&ctx.settings.gateway.state_dir, &name),
        follower: Follower::new(
            &ctx.settings.journal.dir,
            status.delivered.load(Ordering::Relaxed),
        ),
        status: status.clone(),
        destination: target.destination().to_owned(),
    };
    let mut wait = BACKOFF.0;
    let mut last_error = String::new();
    loop {
        let outcome = match target.kind {
            ExportKind::Syslog => transport::syslog(&ctx, target, &mut target_state).await,
            ExportKind::Https => transport::https(&ctx, target, &mut target_state).await,
        };
        status.connected.store(false, Ordering::Relaxed);
        let Err(e) = outcome else { continue };
        status.failures.fetch_add(1, Ordering::Relaxed);
        if e.delivered_some {
            wait = BACKOFF.0;
        }
        // Said once per kind of failure, not at every attempt.
        if e.what != last_error {
            tracing::warn!(target = %name, destination = %target.destination(), error = %e.what, "journal export interrupted; records will be sent again from the cursor");
            last_error = e.what.clone();
        }
        tokio::time::sleep(wait).await;
        wait = (wait * 2).min(BACKOFF.1);
    }
}

/// Why a connection to a receiver ended.
#[derive(Debug)]
struct Interrupted {
    what: String,
    /// Whether it delivered something before (the next attempt starts with a short wait).
    delivered_some: bool,
}

impl Interrupted {
    fn new(what: String, delivered_some: bool) -> Self {
        Self {
            what,
            delivered_some,
        }
    }
}

/// A target's progress through the journal.
struct Delivery {
    cursor_file: PathBuf,
    follower: Follower,
    status: Arc<TargetStatus>,
    destination: String,
}

impl Delivery {
    /// The records after the follower's position (at most `max`), read off the async
    /// threads.
    async fn next_batch(&mut self, ctx: &Context, max: usize) -> Result<Batch, String> {
        let limit = ctx.journal.durable_end();
        let mut follower = self.follower.clone();
        let (follower, batch) = tokio::task::spawn_blocking(move || {
            let b = follower.next_batch(limit, max);
            (follower, b)
        })
        .await
        .map_err(|e| e.to_string())?;
        self.follower = follower;
        let batch = batch.map_err(|d| format!("the journal cannot be read: {d}"))?;
        if let Some((from, to)) = batch.skipped {
            self.status.skipped.fetch_add(to - from, Ordering::Relaxed);
            tracing::error!(
                destination = %self.destination,
                from,
                to,
                "journal records were purged before the export delivered them"
            );
        }
        Ok(batch)
    }

    /// Whether the journal holds records past the follower's position.
    fn behind(&self, ctx: &Context) -> bool {
        self.follower.next_seq() < ctx.journal.next_seq()
    }

    /// Starts again from the stored cursor (a new connection).
    fn rewind(&mut self) {
        self.follower
            .rewind(self.status.delivered.load(Ordering::Relaxed));
    }

    /// Records before `next_seq` are delivered: the cursor moves and is stored.
    fn delivered(&self, next_seq: u64) {
        if next_seq <= self.status.delivered.load(Ordering::Relaxed) {
            return;
        }
        self.status.delivered.store(next_seq, Ordering::Relaxed);
        if let Err(e) = write_cursor(&self.cursor_file, next_seq, &self.destination) {
            // The cursor in memory stands; after a restart the records since the last
            // stored one are sent again.
            tracing::error!(file = %self.cursor_file.display(), error = %e, "cannot store the export cursor");
        }
    }
}

/// The lag of `status` behind a journal whose next record is `next_seq`.
pub fn lag(status: &TargetStatus, next_seq: u64) -> u64 {
    next_seq.saturating_sub(status.delivered.load(Ordering::Relaxed))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cursor_survives_a_restart_and_a_damaged_one_starts_over() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = cursor_path(dir.path(), "soc");
        assert_eq!(read_cursor(&path), None);
        write_cursor(&path, 1234, "siem:6514").expect("write");
        assert_eq!(read_cursor(&path), Some(1234));
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(&path).expect("meta").permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        std::fs::write(&path, "garbage").expect("write");
        assert_eq!(
            read_cursor(&path),
            None,
            "from the start: duplicates, no loss"
        );
    }
}

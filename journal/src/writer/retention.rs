//! Retention (G15): segments older than the retention period go, under a signed record
//! of where the kept journal starts (`purged.json`), so that it still verifies; the purge
//! is journaled.

use std::sync::mpsc;

use time::OffsetDateTime;

use super::{JournalError, SegInfo, Writer, sync_dir, write_new};
use crate::checkpoint::PurgeState;
use crate::event::Event;
use crate::hex;
use crate::segment::PURGE_FILE;

impl Writer {
    pub(super) fn purge_older(
        &mut self,
        older_than: OffsetDateTime,
    ) -> Result<Vec<String>, JournalError> {
        let cutoff = (older_than.unix_timestamp_nanos() / 1_000_000) as i64;
        let old: Vec<SegInfo> = self
            .closed
            .iter()
            .filter(|s| s.last_time_ms < cutoff)
            .cloned()
            .collect();
        // Only a prefix of the journal can go: stop at the first segment that stays.
        let keep_from = self
            .closed
            .iter()
            .position(|s| s.last_time_ms >= cutoff)
            .unwrap_or(self.closed.len());
        let old: Vec<SegInfo> = old.into_iter().take(keep_from).collect();
        let Some(last_purged) = old.last().cloned() else {
            return Ok(Vec::new());
        };
        let mut removed = self
            .purge
            .as_ref()
            .map(|p| p.segments_removed.clone())
            .unwrap_or_default();
        removed.extend(old.iter().map(|s| s.file.name()));
        let state = self.cfg.key.sign_purge(PurgeState {
            gateway: hex(&self.cfg.gateway),
            first_seq: last_purged.end_seq,
            chain: hex(&last_purged.end_prev),
            frontier: last_purged.end_frontier.clone(),
            segments_removed: removed,
            time_ms: cutoff,
            key_id: String::new(),
            signature: String::new(),
        });
        let text =
            serde_json::to_vec_pretty(&state).map_err(|e| JournalError::Io(e.to_string()))?;
        let path = self.cfg.dir.join(PURGE_FILE);
        let tmp = self.cfg.dir.join(format!("{PURGE_FILE}.tmp"));
        let _ = std::fs::remove_file(&tmp);
        write_new(&tmp, &text, 0o640)
            .and_then(|()| std::fs::rename(&tmp, &path))
            .map_err(|e| JournalError::Io(e.to_string()))?;
        sync_dir(&self.cfg.dir).map_err(|e| JournalError::Io(e.to_string()))?;
        let names: Vec<String> = old.iter().map(|s| s.file.name()).collect();
        for s in &old {
            std::fs::remove_file(&s.file.path).map_err(|e| JournalError::Io(e.to_string()))?;
        }
        sync_dir(&self.cfg.dir).map_err(|e| JournalError::Io(e.to_string()))?;
        self.closed.drain(..old.len());
        self.purge = Some(state);
        let event = Event::JournalPurged {
            segments: names.clone(),
            first_seq_kept: last_purged.end_seq,
            older_than: older_than
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_default(),
        };
        let payload = serde_json::to_vec(&event).map_err(|e| JournalError::Io(e.to_string()))?;
        let (reply, answer) = mpsc::sync_channel(1);
        self.commit(vec![(payload, cutoff, reply)]);
        answer
            .recv()
            .map_err(|_| JournalError::Unavailable("the journal writer stopped".into()))??;
        Ok(names)
    }
}

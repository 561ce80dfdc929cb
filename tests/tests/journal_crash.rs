//! `kill -9` of a process appending to the journal, 200 times at random moments: every
//! event it acknowledged is present afterwards, and the journal verifies after recovery.

use std::collections::BTreeSet;
use std::io::{BufRead as _, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use ztgw_gateway::journal::query::{self, Filter};
use ztgw_gateway::journal::verify::verify_dir;
use ztgw_gateway::journal::{Journal, JournalConfig, JournalKey, hex};
use ztgw_tests::rand_bytes;

const KILLS: usize = 200;

#[test]
fn acknowledged_events_survive_two_hundred_kill_nines() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("journal");
    let key_file = tmp.path().join("journal.key");
    let (key, pkcs8) = JournalKey::generate().expect("key");
    std::fs::write(&key_file, pkcs8.expose()).expect("key file");
    let public = key.public();
    let gateway: [u8; 32] = rand_bytes();
    let mut acked: BTreeSet<u64> = BTreeSet::new();
    let mut acks_total = 0usize;
    let mut cuts = 0usize;
    for round in 0..KILLS {
        let mut child = Command::new(env!("CARGO_BIN_EXE_journal-writer"))
            .args([
                dir.to_str().expect("path"),
                key_file.to_str().expect("path"),
                &hex(&gateway),
                &((round as u64 + 1) * 10_000_000).to_string(),
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the writer");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = mpsc::channel();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        // Let it run a random while (0 to 40 ms after its first acknowledgement).
        let first = rx.recv_timeout(Duration::from_secs(20));
        let wait = Duration::from_micros(u64::from(u16::from_le_bytes(rand_bytes())) % 40_000);
        let deadline = Instant::now() + wait;
        let mut lines: Vec<String> = first.into_iter().collect();
        while Instant::now() < deadline {
            if let Ok(l) = rx.recv_timeout(Duration::from_millis(1)) {
                lines.push(l);
            }
        }
        child.kill().expect("SIGKILL");
        let _ = child.wait();
        let _ = reader.join();
        lines.extend(rx.try_iter());
        assert!(
            !lines.is_empty(),
            "round {round}: the writer acknowledged nothing"
        );
        for line in &lines {
            let mut parts = line.split_whitespace();
            if let (Some("ACK"), Some(_seq), Some(n)) = (parts.next(), parts.next(), parts.next()) {
                acked.insert(n.parse().expect("n"));
                acks_total += 1;
            }
        }
        // Recovery: the next open cuts a torn tail, keeps it, and journals the cut.
        let (journal, recovery) = Journal::open(
            JournalConfig {
                dir: dir.clone(),
                gateway,
                key: JournalKey::from_pkcs8(pkcs8.expose()).expect("key"),
                segment_max_bytes: 64 * 1024,
                segment_max_age: time::Duration::days(1),
                group: None,
            },
            time::OffsetDateTime::now_utc(),
        )
        .unwrap_or_else(|e| panic!("round {round}: the journal does not reopen: {e}"));
        cuts += usize::from(recovery.truncated.is_some());
        drop(journal);
        if round % 50 == 49 {
            verify_dir(&dir, Some(&public), None).unwrap_or_else(|e| panic!("round {round}: {e}"));
        }
    }
    let present: BTreeSet<u64> = query::read(
        &dir,
        &Filter {
            kinds: vec!["enrolment.refused".into()],
            ..Default::default()
        },
    )
    .expect("read")
    .iter()
    .filter_map(|r| {
        r.event["invitation"]
            .as_str()?
            .strip_prefix('n')?
            .parse()
            .ok()
    })
    .collect();
    let missing: Vec<&u64> = acked.difference(&present).take(10).collect();
    assert!(missing.is_empty(), "acknowledged events lost: {missing:?}");
    assert_eq!(
        acks_total,
        acked.len(),
        "each acknowledgement is for a distinct event"
    );
    eprintln!(
        "{KILLS} kills, {} acknowledged events all present, {cuts} torn tails cut",
        acked.len()
    );
}

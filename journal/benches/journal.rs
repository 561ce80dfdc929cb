//! Journal throughput on this machine, each figure beside a plain baseline measured in
//! the same run:
//! - durable appends (64 threads, group commit, fsync, a signed checkpoint per write)
//!   against appending unchained, unsynced JSON lines to a file;
//! - `verify` (every link, leaf and signature) against reading those JSON lines back.
//!
//! Run: `cargo bench -p ztgw-journal --bench journal` (targets: ≥ 100,000 appends/s,
//! ≥ 1,000,000 records/s verified).

use std::io::{BufRead as _, BufWriter, Write as _};
use std::sync::Arc;
use std::time::Instant;

use ztgw_journal::verify::verify_dir;
use ztgw_journal::{Event, Journal, JournalConfig, JournalKey};

const THREADS: u64 = 64;
const PER_THREAD: u64 = 4_000;

fn event(n: u64) -> Event {
    Event::DeviceRevoked {
        device: ztgw_pki::DeviceId::new(format!("dev-{n:016}")).expect("id"),
        employee: ztgw_pki::EmployeeId::new(format!("e{}", n % 5000)).expect("id"),
        operator: "security-unit (uid 0)".into(),
        reason: "lost".into(),
        note: None,
    }
}

fn main() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let total = THREADS * PER_THREAD;

    // Baseline: unchained, unsynced JSON lines.
    let plain = tmp.path().join("plain.jsonl");
    let started = Instant::now();
    {
        let mut w = BufWriter::new(std::fs::File::create(&plain).expect("create"));
        for n in 0..total {
            serde_json::to_writer(&mut w, &event(n)).expect("json");
            w.write_all(b"\n").expect("write");
        }
        w.flush().expect("flush");
    }
    let plain_rate = total as f64 / started.elapsed().as_secs_f64();

    // The journal: durable, chained, signed, from many threads.
    let dir = tmp.path().join("journal");
    let (key, _) = JournalKey::generate().expect("key");
    let public = key.public();
    let (journal, _) = Journal::open(
        JournalConfig {
            dir: dir.clone(),
            gateway: [7; 32],
            key,
            segment_max_bytes: 64 * 1024 * 1024,
            segment_max_age: time::Duration::days(1),
            group: None,
        },
        time::OffsetDateTime::now_utc(),
    )
    .expect("open");
    let journal = Arc::new(journal);
    let now = time::OffsetDateTime::now_utc();
    let started = Instant::now();
    let workers: Vec<_> = (0..THREADS)
        .map(|t| {
            let j = journal.clone();
            std::thread::spawn(move || {
                for i in 0..PER_THREAD {
                    j.append(&event(t * PER_THREAD + i), now).expect("append");
                }
            })
        })
        .collect();
    for w in workers {
        w.join().expect("thread");
    }
    let durable_rate = total as f64 / started.elapsed().as_secs_f64();
    drop(journal);

    // Verification against reading the plain lines back.
    let started = Instant::now();
    let mut lines = 0u64;
    for line in std::io::BufReader::new(std::fs::File::open(&plain).expect("open")).lines() {
        let v: serde_json::Value = serde_json::from_str(&line.expect("line")).expect("json");
        lines += u64::from(v.is_object());
    }
    let read_rate = lines as f64 / started.elapsed().as_secs_f64();
    let started = Instant::now();
    let report = verify_dir(&dir, Some(&public), None).expect("intact");
    let verify_rate = report.records as f64 / started.elapsed().as_secs_f64();

    let started = Instant::now();
    let unsigned = verify_dir(&dir, None, None).expect("intact");
    eprintln!(
        "(structure only, no signatures: {:.0} records/s)",
        unsigned.records as f64 / started.elapsed().as_secs_f64()
    );
    println!("journal: {total} events from {THREADS} threads");
    println!(
        "journal: durable appends {:.0}/s (fsync + signed checkpoint per write, {} checkpoints) vs plain unsynced JSON lines {:.0}/s: ratio {:.2}",
        durable_rate,
        report.checkpoints,
        plain_rate,
        durable_rate / plain_rate
    );
    println!(
        "journal: verify {:.0} records/s ({} records, signatures checked) vs reading plain JSON lines back {:.0}/s: ratio {:.2}",
        verify_rate,
        report.records,
        read_rate,
        verify_rate / read_rate
    );
}

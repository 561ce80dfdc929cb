//! Test helper: appends events to a journal from several threads as fast as it can (up
//! to 100 each) and prints `ACK <seq> <n>` for each append the journal acknowledged,
//! then waits to be killed.
//! The crash test kills it with SIGKILL at random moments.
//!
//! Usage: journal-writer DIR KEY_FILE GATEWAY_HEX START

use std::io::Write as _;
use std::sync::Arc;

use ztgw_gateway::journal::{Event, Journal, JournalConfig, JournalKey};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, dir, key, gateway, start] = args.as_slice() else {
        eprintln!("usage: journal-writer DIR KEY_FILE GATEWAY_HEX START");
        std::process::exit(2);
    };
    let key = JournalKey::from_pkcs8(&std::fs::read(key).expect("key file")).expect("key");
    let gateway = ztgw_gateway::journal::unhex32(gateway).expect("gateway hex");
    let start: u64 = start.parse().expect("start");
    let now = time::OffsetDateTime::now_utc();
    let (journal, _) = Journal::open(
        JournalConfig {
            dir: dir.into(),
            gateway,
            key,
            segment_max_bytes: 64 * 1024,
            segment_max_age: time::Duration::days(1),
            group: None,
        },
        now,
    )
    .expect("open journal");
    let journal = Arc::new(journal);
    let out = Arc::new(std::sync::Mutex::new(std::io::stdout()));
    let workers: Vec<_> = (0..4u64)
        .map(|w| {
            let journal = journal.clone();
            let out = out.clone();
            std::thread::spawn(move || {
                for i in 0..100 {
                    let n = start + w * 1_000_000 + i;
                    let event = Event::EnrolmentRefused {
                        invitation: Some(format!("n{n}")),
                        reason: "crash-test".into(),
                    };
                    let seq = journal
                        .append(&event, time::OffsetDateTime::now_utc())
                        .expect("append");
                    let mut o = out.lock().expect("stdout");
                    let _ = writeln!(o, "ACK {seq} {n}");
                    let _ = o.flush();
                }
            })
        })
        .collect();
    for w in workers {
        let _ = w.join();
    }
    // Stay until killed, like a gateway would.
    loop {
        std::thread::sleep(std::time::Duration::from_secs(1));
    }
}

//! The journal's segments stay readable by the auditors' group under the shipped unit's
//! `UMask=0077` (this test sets that umask for its whole process, which is why it is a
//! test binary of its own).

use std::os::unix::fs::MetadataExt as _;

use ztgw_gateway::journal::{Event, Journal, JournalConfig, JournalKey, segment};

#[test]
fn segments_are_readable_by_the_auditors_group_whatever_the_umask() {
    rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o077));
    let dir = tempfile::tempdir().expect("tempdir");
    let journal_dir = dir.path().join("journal");
    let gid = rustix::process::getegid().as_raw();
    let (key, pkcs8) = JournalKey::generate().expect("key");
    let now = time::OffsetDateTime::now_utc();
    let config = |key| JournalConfig {
        dir: journal_dir.clone(),
        gateway: [1; 32],
        key,
        // Small segments: the rotated ones are checked too.
        segment_max_bytes: 4096,
        segment_max_age: time::Duration::days(1),
        group: Some(gid),
    };
    let (journal, _) = Journal::open(config(key), now).expect("open");
    for _ in 0..50 {
        journal
            .append(
                &Event::GatewayStopped {
                    reason: "test".into(),
                },
                now,
            )
            .expect("append");
    }
    drop(journal);
    let segments = segment::list(&journal_dir).expect("segments");
    assert!(segments.len() > 2, "{} segments", segments.len());
    for seg in segments {
        let meta = std::fs::metadata(&seg.path).expect("metadata");
        assert_eq!(meta.mode() & 0o777, 0o640, "{}", seg.path.display());
        assert_eq!(meta.gid(), gid, "{}", seg.path.display());
    }
    let dir_mode = std::fs::metadata(&journal_dir).expect("dir").mode() & 0o777;
    assert_eq!(dir_mode, 0o750);

    // Something takes the group's access away from a closed segment (a `chown -R`, a
    // service manager re-owning its directory): the next start gives it back.
    let first = &segment::list(&journal_dir).expect("segments")[0].path;
    std::fs::set_permissions(first, std::os::unix::fs::PermissionsExt::from_mode(0o600))
        .expect("chmod");
    let other_gid = if gid == 0 { 65534 } else { gid };
    std::os::unix::fs::chown(first, None, Some(other_gid)).expect("chgrp");
    let key = JournalKey::from_pkcs8(pkcs8.expose()).expect("key");
    drop(Journal::open(config(key), now).expect("reopen"));
    let meta = std::fs::metadata(first).expect("metadata");
    assert_eq!(meta.mode() & 0o777, 0o640);
    assert_eq!(meta.gid(), gid);
}

//! The tamper matrix: every kind of tampering with the journal makes `verify` fail and
//! name the place; a garbage, empty or foreign journal gets a clear error, never a panic.
//! Every case is also given to the independent verifier written from docs/journal.md
//! (`audit/verify-journal.py`, Python with PyPI's `cryptography`), which must reach the
//! same verdict.

use std::path::{Path, PathBuf};

use ztgw_gateway::journal::frame::{self, Kind};
use ztgw_gateway::journal::verify::{Damage, verify_dir};
use ztgw_gateway::journal::{
    Event, Journal, JournalConfig, JournalKey, PublicKey, SignedTreeHead, segment,
};
use ztgw_tests::rand_bytes;

struct Fixture {
    _tmp: tempfile::TempDir,
    dir: PathBuf,
    public: PublicKey,
    gateway: [u8; 32],
}

/// A journal of 30 events over several segments.
fn journal(seed_events: u64) -> Fixture {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("journal");
    let (key, _) = JournalKey::generate().expect("key");
    let public = key.public();
    let gateway: [u8; 32] = rand_bytes();
    let (j, _) = Journal::open(
        JournalConfig {
            dir: dir.clone(),
            gateway,
            key,
            segment_max_bytes: 3000,
            segment_max_age: time::Duration::days(1),
            group: None,
        },
        time::OffsetDateTime::now_utc(),
    )
    .expect("open");
    for i in 0..seed_events {
        let e = Event::DeviceRevoked {
            device: ztgw_pki::DeviceId::new(format!("dev-{i}")).expect("id"),
            employee: ztgw_pki::EmployeeId::new(format!("e{i}")).expect("id"),
            operator: "amina".into(),
            reason: "lost".into(),
            note: None,
        };
        j.append(&e, time::OffsetDateTime::now_utc())
            .expect("append");
    }
    drop(j);
    Fixture {
        _tmp: tmp,
        dir,
        public,
        gateway,
    }
}

/// (offset, size, seq, kind) of every frame of a segment.
fn frames(bytes: &[u8]) -> Vec<(usize, usize, u64, Kind)> {
    let mut out = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        let (f, n) = frame::decode(&bytes[at..]).expect("frame");
        out.push((at, n, f.seq, f.kind));
        at += n;
    }
    out
}

fn seg_path(dir: &Path, n: u64) -> PathBuf {
    dir.join(segment::file_name(n))
}

#[track_caller]
fn damaged(f: &Fixture) -> Damage {
    assert_eq!(
        python(&f.dir, Some(&f.public), None),
        Some(false),
        "the independent verifier must find it damaged too"
    );
    verify_dir(&f.dir, Some(&f.public), None).expect_err("verify must fail")
}

/// The independent verifier's verdict on `dir`: `Some(true)` intact, `Some(false)`
/// damaged (exit 7); it must never fail otherwise.
#[track_caller]
fn python(dir: &Path, key: Option<&PublicKey>, kept: Option<&SignedTreeHead>) -> Option<bool> {
    let python = Path::new("/usr/bin/python3");
    assert!(
        python.exists()
            && std::process::Command::new(python)
                .args(["-c", "import cryptography"])
                .status()
                .is_ok_and(|s| s.success()),
        "the independent verifier needs Debian's python3 with cryptography: apt-get install python3-cryptography (deploy/scripts/test.sh does)"
    );
    let scratch = tempfile::tempdir().expect("tempdir");
    let mut cmd = std::process::Command::new(python);
    cmd.arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("../audit/verify-journal.py"))
        .arg(dir);
    if let Some(k) = key {
        let path = scratch.path().join("journal.pub");
        std::fs::write(&path, k.to_base64()).expect("key");
        cmd.arg("--public-key").arg(path);
    }
    if let Some(c) = kept {
        let path = scratch.path().join("kept.json");
        std::fs::write(&path, serde_json::to_string(c).expect("json")).expect("checkpoint");
        cmd.arg("--checkpoint").arg(path);
    }
    let out = cmd.output().expect("python3");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    match out.status.code() {
        Some(0) => Some(true),
        Some(7) => Some(false),
        other => panic!("verify-journal.py exited {other:?}: {said}"),
    }
}

#[track_caller]
fn assert_damage(d: &Damage, segment: &str, seq: Option<u64>, what: &str) {
    assert_eq!(d.place.segment, segment, "{d}");
    if seq.is_some() {
        assert_eq!(d.place.seq, seq, "{d}");
    }
    assert!(d.what.contains(what), "expected {what:?} in: {d}");
}

#[test]
fn the_untouched_journal_verifies() {
    let f = journal(30);
    assert!(
        segment::list(&f.dir).expect("list").len() >= 3,
        "the fixture spans segments"
    );
    let r = verify_dir(&f.dir, Some(&f.public), None).expect("intact");
    assert_eq!(r.events, 30);
    assert_eq!(python(&f.dir, Some(&f.public), None), Some(true));
    assert_eq!(
        python(&f.dir, None, None),
        Some(true),
        "without the key too"
    );
    let kept = r.last_checkpoint.expect("checkpoint");
    assert_eq!(python(&f.dir, Some(&f.public), Some(&kept)), Some(true));
}

#[test]
fn a_flipped_byte_is_found_where_it_is() {
    let f = journal(30);
    let path = seg_path(&f.dir, 2);
    let mut bytes = std::fs::read(&path).expect("read");
    let (off, _, seq, kind) = frames(&bytes)[1];
    assert_eq!(kind, Kind::Event);
    bytes[off + 30] ^= 0x01;
    std::fs::write(&path, &bytes).expect("write");
    assert_damage(
        &damaged(&f),
        "seg-00000002.zj",
        Some(seq),
        "hash does not match",
    );
}

#[test]
fn a_deleted_record_is_found() {
    let f = journal(30);
    let path = seg_path(&f.dir, 2);
    let bytes = std::fs::read(&path).expect("read");
    let (off, n, seq, _) = frames(&bytes)[1];
    let mut cut = bytes[..off].to_vec();
    cut.extend_from_slice(&bytes[off + n..]);
    std::fs::write(&path, &cut).expect("write");
    assert_damage(
        &damaged(&f),
        "seg-00000002.zj",
        Some(seq + 1),
        &format!("expected record {seq} here"),
    );
}

#[test]
fn swapped_records_are_found() {
    let f = journal(30);
    let path = seg_path(&f.dir, 2);
    let bytes = std::fs::read(&path).expect("read");
    let fr = frames(&bytes);
    // Frames: header, event, checkpoint, event, checkpoint… swap the first two events.
    let (a, b) = (fr[1], fr[3]);
    let mut swapped = bytes[..a.0].to_vec();
    swapped.extend_from_slice(&bytes[b.0..b.0 + b.1]);
    swapped.extend_from_slice(&bytes[a.0 + a.1..b.0]);
    swapped.extend_from_slice(&bytes[a.0..a.0 + a.1]);
    swapped.extend_from_slice(&bytes[b.0 + b.1..]);
    std::fs::write(&path, &swapped).expect("write");
    assert_damage(
        &damaged(&f),
        "seg-00000002.zj",
        Some(b.2),
        &format!("expected record {} here", a.2),
    );
}

#[test]
fn truncation_is_found_mid_record_before_a_signature_and_against_a_kept_checkpoint() {
    let f = journal(30);
    let segs = segment::list(&f.dir).expect("list");
    let last = segs.last().expect("segment").clone();
    let bytes = std::fs::read(&last.path).expect("read");
    let fr = frames(&bytes);
    let kept: SignedTreeHead = verify_dir(&f.dir, Some(&f.public), None)
        .expect("intact")
        .last_checkpoint
        .expect("checkpoint");

    // In the middle of a record.
    std::fs::write(&last.path, &bytes[..bytes.len() - 10]).expect("write");
    assert_damage(&damaged(&f), &last.name(), None, "cut short");

    // After an event, before the checkpoint that signs it.
    let (event_off, event_len, _, kind) = fr[fr.len() - 2];
    assert_eq!(kind, Kind::Event);
    std::fs::write(&last.path, &bytes[..event_off + event_len]).expect("write");
    assert_damage(
        &damaged(&f),
        &last.name(),
        None,
        "not covered by a signed checkpoint",
    );

    // At a checkpoint: the shorter journal is consistent in itself, but not with the
    // checkpoint the auditor kept.
    let previous_checkpoint = fr[..fr.len() - 2]
        .iter()
        .rev()
        .find(|x| x.3 == Kind::Checkpoint);
    // The damage is reported where the journal now ends: that segment's last byte.
    let (end_segment, end_offset) = match previous_checkpoint {
        Some((off, n, _, _)) => {
            std::fs::write(&last.path, &bytes[..off + n]).expect("write");
            (last.name(), (off + n) as u64)
        }
        None => {
            std::fs::remove_file(&last.path).expect("remove the last segment");
            let before = &segs[segs.len() - 2];
            (
                before.name(),
                std::fs::metadata(&before.path).expect("meta").len(),
            )
        }
    };
    verify_dir(&f.dir, Some(&f.public), None).expect("a clean cut at a checkpoint verifies alone");
    assert_eq!(python(&f.dir, Some(&f.public), None), Some(true));
    assert_eq!(python(&f.dir, Some(&f.public), Some(&kept)), Some(false));
    let d = verify_dir(&f.dir, Some(&f.public), Some(kept))
        .expect_err("the kept checkpoint catches it");
    assert!(d.what.contains("truncated"), "{d}");
    assert_eq!(
        (d.place.segment.as_str(), d.place.offset),
        (end_segment.as_str(), end_offset),
        "{d}"
    );
    assert!(end_offset > 0);
}

#[test]
fn appended_forgeries_are_found() {
    let f = journal(30);
    let last = segment::list(&f.dir)
        .expect("list")
        .last()
        .expect("segment")
        .clone();
    let bytes = std::fs::read(&last.path).expect("read");
    let fr = frames(&bytes);
    let (_, _, last_seq, _) = *fr.last().expect("frame");
    let prev: [u8; 32] = bytes[bytes.len() - 32..].try_into().expect("hash");
    let forged_event = br#"{"type":"device.approved","device":"dev-x","employee":"e9","operator":"nobody","note":null}"#;

    // A forged record with a correct chain but no signature.
    let mut more = bytes.clone();
    let (h, _) = frame::encode(&mut more, &prev, Kind::Event, last_seq + 1, 0, forged_event);
    std::fs::write(&last.path, &more).expect("write");
    assert_damage(
        &damaged(&f),
        &last.name(),
        None,
        "not covered by a signed checkpoint",
    );

    // …and a checkpoint for it signed with the forger's own key.
    let (forger, _) = JournalKey::generate().expect("key");
    let mut frontier = ztgw_gateway::journal::verify::Walk::default().frontier;
    // Recompute the Merkle frontier of the whole journal up to the forged record.
    for seg in segment::list(&f.dir).expect("list") {
        let b = std::fs::read(&seg.path).expect("read");
        for (off, n, _, _) in frames(&b) {
            let (fr, _) = frame::decode(&b[off..off + n]).expect("frame");
            frontier.push(ztgw_gateway::journal::merkle::leaf_hash(fr.body));
        }
    }
    let head =
        ztgw_gateway::journal::checkpoint::head(&f.gateway, last_seq + 2, &frontier.root(), &h, 0);
    let sth = forger.sign_head(head);
    frame::encode(
        &mut more,
        &h,
        Kind::Checkpoint,
        last_seq + 2,
        0,
        &serde_json::to_vec(&sth).expect("json"),
    );
    std::fs::write(&last.path, &more).expect("write");
    assert_damage(
        &damaged(&f),
        &last.name(),
        Some(last_seq + 2),
        "not by the journal key",
    );
}

#[test]
fn a_replaced_segment_is_found() {
    let f = journal(30);
    let other = journal(30);
    std::fs::copy(seg_path(&other.dir, 2), seg_path(&f.dir, 2)).expect("copy");
    assert_damage(&damaged(&f), "seg-00000002.zj", None, "another gateway");
}

#[test]
fn an_altered_checkpoint_signature_is_found_even_with_the_chain_rebuilt() {
    let f = journal(30);
    let path = seg_path(&f.dir, 2);
    let bytes = std::fs::read(&path).expect("read");
    let fr = frames(&bytes);
    let (cp_off, cp_len, cp_seq, kind) = fr[2];
    assert_eq!(kind, Kind::Checkpoint);
    // Rebuild this segment from the checkpoint on, with a changed signature and every
    // chain hash recomputed, as a forger without the key would.
    let prev: [u8; 32] = bytes[cp_off - 32..cp_off].try_into().expect("hash");
    let (cp, _) = frame::decode(&bytes[cp_off..cp_off + cp_len]).expect("frame");
    let mut sth: SignedTreeHead = serde_json::from_slice(cp.payload).expect("checkpoint");
    let mut sig = sth.signature.into_bytes();
    sig[5] = if sig[5] == b'A' { b'B' } else { b'A' };
    sth.signature = String::from_utf8(sig).expect("ascii");
    let mut rebuilt = bytes[..cp_off].to_vec();
    let (mut h, _) = frame::encode(
        &mut rebuilt,
        &prev,
        Kind::Checkpoint,
        cp.seq,
        cp.time_ms,
        &serde_json::to_vec(&sth).expect("json"),
    );
    for (off, n, _, _) in &fr[3..] {
        let (x, _) = frame::decode(&bytes[*off..off + n]).expect("frame");
        h = frame::encode(&mut rebuilt, &h, x.kind, x.seq, x.time_ms, x.payload).0;
    }
    std::fs::write(&path, &rebuilt).expect("write");
    assert_damage(
        &damaged(&f),
        "seg-00000002.zj",
        Some(cp_seq),
        "signature does not verify",
    );
}

#[test]
fn garbage_empty_and_foreign_journals_get_clear_errors() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let empty = tmp.path().join("empty");
    std::fs::create_dir(&empty).expect("mkdir");
    let (key, _) = JournalKey::generate().expect("key");
    assert_eq!(python(&empty, Some(&key.public()), None), Some(false));
    let d = verify_dir(&empty, Some(&key.public()), None).expect_err("empty");
    assert!(d.what.contains("no journal segment"), "{d}");

    let garbage = tmp.path().join("garbage");
    std::fs::create_dir(&garbage).expect("mkdir");
    std::fs::write(garbage.join(segment::file_name(1)), rand_bytes::<4096>()).expect("write");
    assert_eq!(python(&garbage, Some(&key.public()), None), Some(false));
    let d = verify_dir(&garbage, Some(&key.public()), None).expect_err("garbage");
    assert_eq!(d.place.segment, "seg-00000001.zj");

    // A new journal (`ztgw init` opens it; the first record comes with the first start)
    // is one segment the writer has begun and not written yet: intact, with no record.
    let zero = tmp.path().join("zero");
    std::fs::create_dir(&zero).expect("mkdir");
    std::fs::write(zero.join(segment::file_name(1)), b"").expect("write");
    assert_eq!(python(&zero, Some(&key.public()), None), Some(true));
    let r = verify_dir(&zero, Some(&key.public()), None).expect("a new journal");
    assert_eq!((r.events, r.segments), (0, 0));
    // Only the last segment may be empty: one emptied before it is found.
    let emptied = journal(30);
    std::fs::write(seg_path(&emptied.dir, 2), b"").expect("empty a segment");
    let d = damaged(&emptied);
    assert_damage(&d, "seg-00000002.zj", None, "empty");

    let foreign = journal(3);
    assert_eq!(python(&foreign.dir, Some(&key.public()), None), Some(false));
    let d =
        verify_dir(&foreign.dir, Some(&key.public()), None).expect_err("another gateway's journal");
    assert!(d.what.contains("not by the journal key"), "{d}");
}

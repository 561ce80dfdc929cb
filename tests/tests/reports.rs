//! Reports auditors can hand on (#19): `ztgw-audit report hours|posture` as CSV (checked
//! against golden files), as a printable HTML page and as a PDF that Debian's poppler
//! renders, each stating the signed journal checkpoint it was computed from. The journal
//! is written by the real writer with a fixed key at fixed times, so every byte of the
//! reports, stamp included, is known.
//!
//! `ZTGW_UPDATE_GOLDEN=1` rewrites the golden files (review the difference before
//! committing it).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use time::OffsetDateTime;
use ztgw_gateway::journal::{Event, Journal, JournalConfig, JournalKey};
use ztgw_pki::{DeviceId, EmployeeId};
use ztgw_tests::netns;
use ztgw_tests::site::lab_policy;

/// A fixed Ed25519 journal key (PKCS#8 v2, seed 01..20): the signatures are known.
const KEY: &str = "3053020101300506032b6570042204200102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f20a12303210079b5562e8fe654f94078b112e8a98ba7901f853ae695bed7e0e3910bad049664";

/// Office hours in UTC, so that the reports do not depend on the time-zone database.
const OFFICE_UTC: &str = "timezone = \"UTC\"\ndays = [\"mon\", \"tue\", \"wed\", \"thu\", \"fri\"]\nhours = [\"08:00-16:00\"]";

fn dev(s: &str) -> DeviceId {
    DeviceId::new(s).expect("device id")
}

fn emp(s: &str) -> EmployeeId {
    EmployeeId::new(s).expect("employee id")
}

fn at(s: &str) -> OffsetDateTime {
    OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).expect("time")
}

/// A week of telework for two employees, journaled by the real writer.
fn journal(dir: &Path) -> PathBuf {
    let bytes: Vec<u8> = (0..KEY.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&KEY[i..i + 2], 16).expect("hex"))
        .collect();
    let key = JournalKey::from_pkcs8(&bytes).expect("key");
    let public = dir.join("journal.pub");
    std::fs::write(&public, key.public().to_base64()).expect("journal.pub");
    let (j, _) = Journal::open(
        JournalConfig {
            dir: dir.join("journal"),
            gateway: [0x42; 32],
            key,
            segment_max_bytes: 64 << 20,
            segment_max_age: time::Duration::days(30),
            group: None,
        },
        at("2027-04-05T07:00:00Z"),
    )
    .expect("journal");
    let session = |n: u32, employee: &str, start: &str, end: &str| {
        let s = format!("s-{n}");
        let d = dev(&format!("dev-{employee}"));
        j.append(
            &Event::PostureChecked {
                device: d.clone(),
                employee: emp(employee),
                compliant: true,
                failed: Vec::new(),
            },
            at(start),
        )
        .expect("append");
        j.append(
            &Event::AdmissionGranted {
                session: s.clone(),
                device: d.clone(),
                employee: emp(employee),
                role: "finance".into(),
            },
            at(start),
        )
        .expect("append");
        j.append(
            &Event::SessionStarted {
                session: s.clone(),
                device: d.clone(),
                employee: emp(employee),
                role: "finance".into(),
                schedule: "office".into(),
            },
            at(start),
        )
        .expect("append");
        j.append(
            &Event::SessionEnded {
                session: s,
                device: d,
                employee: emp(employee),
                reason: "disconnected".into(),
                duration_secs: (at(end) - at(start)).whole_seconds().unsigned_abs(),
                bytes_in: 0,
                bytes_out: 0,
            },
            at(end),
        )
        .expect("append");
    };
    session(1, "e1029", "2027-04-05T08:10:00Z", "2027-04-05T12:00:00Z");
    session(2, "e1029", "2027-04-05T13:00:00Z", "2027-04-05T17:30:00Z");
    session(3, "e2044", "2027-04-06T09:00:00Z", "2027-04-06T15:45:00Z");
    // Refusals: out of hours, and a laptop without its updates.
    j.append(
        &Event::AdmissionDenied {
            device: dev("dev-e1029"),
            employee: emp("e1029"),
            reasons: vec!["outside-schedule".into()],
        },
        at("2027-04-06T21:00:00Z"),
    )
    .expect("append");
    j.append(
        &Event::PostureChecked {
            device: dev("dev-e2044"),
            employee: emp("e2044"),
            compliant: false,
            failed: vec!["posture.updates".into()],
        },
        at("2027-04-07T08:30:00Z"),
    )
    .expect("append");
    j.append(
        &Event::AdmissionDenied {
            device: dev("dev-e2044"),
            employee: emp("e2044"),
            reasons: vec!["posture.updates".into()],
        },
        at("2027-04-07T08:30:00Z"),
    )
    .expect("append");
    drop(j);
    std::fs::write(dir.join("policy.toml"), lab_policy(OFFICE_UTC)).expect("policy");
    public
}

fn audit(dir: &Path, args: &[&str]) -> Output {
    Command::new(ztgw_tests::binary("ztgw-audit"))
        .current_dir(dir)
        .args(args)
        .output()
        .expect("ztgw-audit")
}

fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

const HOURS: &[&str] = &[
    "report",
    "hours",
    "--dir",
    "journal",
    "--policy",
    "policy.toml",
    "--from",
    "2027-04-05",
    "--to",
    "2027-04-09",
    "--timezone",
    "UTC",
    "--public-key",
    "journal.pub",
];
const POSTURE: &[&str] = &[
    "report",
    "posture",
    "--dir",
    "journal",
    "--from",
    "2027-04-05",
    "--to",
    "2027-04-09",
    "--timezone",
    "UTC",
    "--public-key",
    "journal.pub",
];

fn golden(name: &str, got: &str) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("golden")
        .join(name);
    if std::env::var_os("ZTGW_UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, got).expect("golden");
    }
    let want = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert_eq!(got, want, "{} differs", path.display());
}

#[test]
fn reports_as_golden_csv_stamped_with_their_checkpoint() {
    let dir = tempfile::tempdir().expect("tempdir");
    journal(dir.path());
    golden(
        "hours.csv",
        &ok(&audit(dir.path(), &[HOURS, &["--format", "csv"]].concat())),
    );
    golden(
        "posture.csv",
        &ok(&audit(
            dir.path(),
            &[POSTURE, &["--format", "csv"]].concat(),
        )),
    );
    // The checkpoint the CSV states is the journal's.
    let cp = dir.path().join("kept.json");
    ok(&audit(
        dir.path(),
        &["checkpoint", "--dir", "journal", "--out", "kept.json"],
    ));
    let kept: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(cp).expect("checkpoint")).expect("JSON");
    let csv = ok(&audit(dir.path(), &[HOURS, &["--format", "csv"]].concat()));
    let root = kept["root"].as_str().expect("root");
    assert!(
        csv.lines().nth(1).is_some_and(|l| l.contains(root)),
        "{csv}"
    );
    let json: serde_json::Value =
        serde_json::from_str(&ok(&audit(dir.path(), &[HOURS, &["--json"]].concat())))
            .expect("JSON");
    assert_eq!(json["checkpoint"]["root"], kept["root"]);
    assert_eq!(json["checkpoint"]["verified"], true);
    assert_eq!(json["rows"][0]["employee"], "e1029");

    // A journal altered after the fact gives no report.
    let segment = std::fs::read_dir(dir.path().join("journal"))
        .expect("journal")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.extension().is_some_and(|x| x == "zj"))
        .expect("a segment");
    let mut bytes = std::fs::read(&segment).expect("segment");
    let i = bytes
        .windows(5)
        .position(|w| w == b"e2044")
        .expect("an employee id");
    bytes[i + 4] = b'5';
    std::fs::write(&segment, bytes).expect("segment");
    let out = audit(dir.path(), &[HOURS, &["--format", "csv"]].concat());
    assert_eq!(
        out.status.code(),
        Some(7),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn a_printable_report_states_its_checkpoint_and_renders() {
    netns::require("pdftoppm", "poppler-utils");
    let dir = tempfile::tempdir().expect("tempdir");
    journal(dir.path());
    let d = dir.path();
    let csv = ok(&audit(d, &[HOURS, &["--format", "csv"]].concat()));
    let root = csv
        .lines()
        .nth(1)
        .and_then(|l| l.split("Merkle root ").nth(1))
        .and_then(|r| r.split(')').next())
        .expect("root in the stamp")
        .to_owned();

    // HTML: one page, no outside resource, the checkpoint stated.
    ok(&audit(
        d,
        &[HOURS, &["--format", "html", "--out", "hours.html"]].concat(),
    ));
    let html = std::fs::read_to_string(d.join("hours.html")).expect("html");
    assert!(html.contains(&root) && html.contains("e2044"), "{html}");
    assert!(!html.contains("<script") && !html.contains("src="));

    // PDF: needs a file; poppler reads it, renders every page and finds the stamp.
    let out = audit(d, &[POSTURE, &["--format", "pdf"]].concat());
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("add --out FILE.pdf"));
    ok(&audit(
        d,
        &[POSTURE, &["--format", "pdf", "--out", "posture.pdf"]].concat(),
    ));
    let text = netns::run(
        Command::new("pdftotext")
            .arg(d.join("posture.pdf"))
            .arg("-"),
    );
    assert!(text.contains("Admissions and posture compliance"), "{text}");
    assert!(text.contains(&root), "the root is stated: {text}");
    assert!(text.contains("posture.updates=1"), "{text}");
    assert!(text.contains("journal and signature verified"), "{text}");
    netns::run(
        Command::new("pdftoppm")
            .args(["-png", "-r", "40"])
            .arg(d.join("posture.pdf"))
            .arg(d.join("page")),
    );
    let page = d.join("page-1.png");
    let png = std::fs::read(&page).unwrap_or_else(|e| panic!("{}: {e}", page.display()));
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 1000,
        "a rendered page"
    );
}

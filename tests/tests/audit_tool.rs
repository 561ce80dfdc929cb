//! `ztgw-audit` (#19): the auditors' tool on a copy of the journal says what `ztgw
//! journal …` says, with the same exit codes, and its package links none of the gateway.

use std::path::Path;
use std::process::{Command, Output};

fn run(program: &str, dir: &Path, args: &[&str]) -> Output {
    Command::new(ztgw_tests::binary(program))
        .current_dir(dir)
        .env("ZTGW_CONFIG", dir.join("gw/gateway.toml"))
        .args(args)
        .output()
        .expect("run")
}

#[test]
fn ztgw_audit_agrees_with_ztgw_journal_on_a_copy() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    let ok = |o: &Output| {
        assert!(
            o.status.success(),
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    ok(&run(
        "ztgw",
        dir,
        &[
            "init",
            "--dir",
            "gw",
            "--name",
            "gw.test",
            "--endpoint",
            "192.0.2.1:51820",
        ],
    ));
    ok(&run(
        "ztgw",
        dir,
        &[
            "invite",
            "--employee",
            "e1029",
            "--role",
            "finance",
            "--approved-by",
            "Head of IT",
            "--reference",
            "DEC-1",
        ],
    ));
    // The auditor's copy.
    let copy = dir.join("copy");
    std::fs::create_dir(&copy).expect("copy");
    for e in std::fs::read_dir(dir.join("gw/journal")).expect("journal") {
        let e = e.expect("entry");
        std::fs::copy(e.path(), copy.join(e.file_name())).expect("copy");
    }
    let verify = [
        "--dir",
        "copy",
        "--public-key",
        "gw/journal.pub",
        "--checkpoint",
        "kept.json",
    ];
    let said = ok(&run(
        "ztgw-audit",
        dir,
        &["checkpoint", "--dir", "copy", "--out", "kept.json"],
    ));
    assert!(said.starts_with("checkpoint of "), "{said}");
    let audit = ok(&run(
        "ztgw-audit",
        dir,
        &[&["verify"][..], &verify].concat(),
    ));
    let gateway = ok(&run(
        "ztgw",
        dir,
        &[&["journal", "verify"][..], &verify].concat(),
    ));
    assert_eq!(audit, gateway);
    assert!(audit.contains("journal intact"), "{audit}");
    assert!(
        audit.contains("kept checkpoint: the journal still holds"),
        "{audit}"
    );
    let query = ["--dir", "copy", "--type", "invitation.created", "--json"];
    let audit = ok(&run("ztgw-audit", dir, &[&["query"][..], &query].concat()));
    assert_eq!(
        audit,
        ok(&run(
            "ztgw",
            dir,
            &[&["journal", "query"][..], &query].concat()
        ))
    );
    assert!(audit.contains("\"employee\":\"e1029\""), "{audit}");
    let csv = ok(&run(
        "ztgw-audit",
        dir,
        &["export", "--dir", "copy", "--format", "csv"],
    ));
    assert!(csv.lines().count() >= 2, "{csv}");
    let posture = ok(&run(
        "ztgw-audit",
        dir,
        &[
            "report",
            "posture",
            "--dir",
            "copy",
            "--from",
            "2026-01-01",
            "--to",
            "2026-01-02",
        ],
    ));
    assert!(posture.starts_with("DATE"), "{posture}");

    // A truncated copy: exit 7 from both, the same sentence.
    let segment = std::fs::read_dir(&copy)
        .expect("copy")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.extension().is_some_and(|x| x == "zj"))
        .expect("a segment");
    let len = std::fs::metadata(&segment).expect("segment").len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&segment)
        .and_then(|f| f.set_len(len - 10))
        .expect("truncate");
    let audit = run("ztgw-audit", dir, &[&["verify"][..], &verify].concat());
    let gateway = run("ztgw", dir, &[&["journal", "verify"][..], &verify].concat());
    assert_eq!(audit.status.code(), Some(7));
    assert_eq!(gateway.status.code(), Some(7));
    let said = String::from_utf8_lossy(&audit.stderr);
    assert!(said.contains("the record is cut short"), "{said}");
    assert_eq!(
        said.trim_start_matches("ztgw-audit: "),
        String::from_utf8_lossy(&gateway.stderr).trim_start_matches("ztgw: ")
    );
    // A wrong command line is exit 2; a key that is not one, 3.
    assert_eq!(run("ztgw-audit", dir, &["verify"]).status.code(), Some(2));
    std::fs::write(dir.join("bad.pub"), "not a key").expect("bad key");
    let bad = run(
        "ztgw-audit",
        dir,
        &["verify", "--dir", "copy", "--public-key", "bad.pub"],
    );
    assert_eq!(bad.status.code(), Some(3));
}

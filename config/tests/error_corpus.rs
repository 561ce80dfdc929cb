//! The corpus of invalid policies: each file starts with `#! LINE:COLUMN: message`
//! lines, the exact errors it must produce, in order. All errors of a file are reported
//! in one run.

use std::path::Path;

use ztgw_config::policy::Policy;

fn expected(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|l| l.strip_prefix("#! "))
        .map(str::to_owned)
        .collect()
}

fn actual(path: &Path, text: &str) -> Vec<String> {
    match Policy::parse(path, text) {
        Ok(_) => vec![],
        Err(e) => e
            .diagnostics
            .iter()
            .map(|d| match d.location {
                Some(l) => format!("{}:{}: {}", l.line, l.column, d.message),
                None => d.message.clone(),
            })
            .collect(),
    }
}

#[test]
fn every_invalid_policy_gets_its_exact_errors() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("corpus")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    assert!(files.len() >= 9, "the corpus is missing");
    let mut failures = Vec::new();
    for path in files {
        let text = std::fs::read_to_string(&path).expect("read");
        let want = expected(&text);
        assert!(
            !want.is_empty(),
            "{} lists no expected error",
            path.display()
        );
        let got = actual(&path, &text);
        if got != want {
            failures.push(format!(
                "{}:\n  expected:\n    {}\n  got:\n    {}",
                path.display(),
                want.join("\n    "),
                got.join("\n    ")
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn unreadable_files_get_clear_errors() {
    let dir = tempfile::tempdir().expect("tempdir");
    let empty = dir.path().join("empty.toml");
    std::fs::write(&empty, "  \n# only a comment is not empty\n").expect("write");
    let err = Policy::load(&empty).err().map(|e| e.to_string());
    assert!(
        err.is_none() || !err.as_deref().unwrap_or("").contains("empty"),
        "{err:?}"
    );
    std::fs::write(&empty, " \n\n").expect("write");
    let err = Policy::load(&empty).expect_err("empty").to_string();
    assert_eq!(err, format!("{}: the policy is empty", empty.display()));

    let latin1 = dir.path().join("latin1.toml");
    std::fs::write(&latin1, b"[roles.finance]\ndescription = \"caf\xe9\"\n").expect("write");
    let err = Policy::load(&latin1).expect_err("not UTF-8").to_string();
    assert_eq!(
        err,
        format!(
            "{}:2:19: the file is not valid UTF-8 here",
            latin1.display()
        )
    );

    let huge = dir.path().join("huge.toml");
    let f = std::fs::File::create(&huge).expect("create");
    f.set_len(ztgw_config::policy::MAX_POLICY_LEN + 1)
        .expect("grow");
    let err = Policy::load(&huge).expect_err("huge").to_string();
    assert!(err.contains("more than the 4194304 allowed"), "{err}");

    let missing = dir.path().join("missing.toml");
    let err = Policy::load(&missing).expect_err("missing").to_string();
    assert!(
        err.starts_with(&format!("{}: cannot read:", missing.display())),
        "{err}"
    );
}

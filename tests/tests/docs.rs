//! The docs' commands are executable evidence (#23).
//!
//! - Every ```` ```console ```` block of `README.md` and `docs/*.md` is run: each `$ `
//!   line is a shell command, run in order in a directory of its own per file, where
//!   `ztgw init --dir gw` has made a gateway's configuration and state (`ZTGW_CONFIG`
//!   points at it) and `policy.toml` is the policy it wrote; the lines after a command
//!   are output it must print, in that order (`…` stands for anything). A command ending
//!   in `# exit N` must exit with N, every other with 0.
//! - Every `ztgw …`, `ztgw-agent …` and `ztgw-audit …` line of the other shell blocks must name a command
//!   that exists, with flags it takes (checked against its `--help`).

use std::path::{Path, PathBuf};
use std::process::Command;

/// One `$ ` command of a console block, what it must print and how it must exit.
#[derive(Debug)]
struct Step {
    line: usize,
    command: String,
    exit: i32,
    expected: Vec<String>,
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn documents() -> Vec<PathBuf> {
    let mut docs = vec![root().join("README.md")];
    let mut more: Vec<PathBuf> = std::fs::read_dir(root().join("docs"))
        .expect("docs/")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "md"))
        .collect();
    more.sort();
    docs.extend(more);
    docs
}

/// The fenced blocks of `text`: (info string, first line number of the body, body lines).
fn blocks(text: &str) -> Vec<(String, usize, Vec<String>)> {
    let mut out = Vec::new();
    let mut open: Option<(String, usize, Vec<String>)> = None;
    for (i, line) in text.lines().enumerate() {
        let fence = line.trim_start().starts_with("```");
        match (&mut open, fence) {
            (None, true) => {
                let info = line.trim_start().trim_start_matches('`').trim().to_owned();
                open = Some((info, i + 2, Vec::new()));
            }
            (Some(_), true) => out.extend(open.take()),
            (Some((_, _, body)), false) => body.push(line.to_owned()),
            (None, false) => {}
        }
    }
    out
}

fn steps(first_line: usize, body: &[String]) -> Vec<Step> {
    let mut steps: Vec<Step> = Vec::new();
    for (i, line) in body.iter().enumerate() {
        if let Some(command) = line.strip_prefix("$ ") {
            let (command, exit) = match command.rsplit_once("# exit ") {
                Some((c, n)) => (c.trim_end(), n.trim().parse().expect("# exit N")),
                None => (command, 0),
            };
            steps.push(Step {
                line: first_line + i,
                command: command.to_owned(),
                exit,
                expected: Vec::new(),
            });
        } else if let Some(s) = steps.last_mut()
            && !line.trim().is_empty()
        {
            s.expected.push(line.trim_end().to_owned());
        }
    }
    steps
}

/// Whether `line` matches `pattern`, where `…` stands for anything.
fn matches(pattern: &str, line: &str) -> bool {
    let parts: Vec<&str> = pattern.split('…').collect();
    let mut rest = line;
    for (i, part) in parts.iter().enumerate() {
        if i == 0 {
            match rest.strip_prefix(part) {
                Some(r) => rest = r,
                None => return false,
            }
        } else if i == parts.len() - 1 {
            return rest.ends_with(part);
        } else {
            match rest.find(part) {
                Some(at) => rest = &rest[at + part.len()..],
                None => return false,
            }
        }
    }
    parts.len() > 1 || rest.is_empty()
}

/// A directory with a gateway made by `ztgw init` (`gw/`), its policy as `policy.toml`.
fn workspace() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = Command::new(ztgw_tests::binary("ztgw"))
        .current_dir(dir.path())
        .args([
            "init",
            "--dir",
            "gw",
            "--name",
            "gw.finances.test",
            "--endpoint",
            "192.0.2.1:51820",
        ])
        .output()
        .expect("ztgw init");
    assert!(
        out.status.success(),
        "ztgw init: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::copy(
        dir.path().join("gw/policy.toml"),
        dir.path().join("policy.toml"),
    )
    .expect("policy.toml");
    dir
}

fn path_with_binaries() -> String {
    let bin = ztgw_tests::binary("ztgw");
    let dir = bin.parent().expect("binary directory");
    format!(
        "{}:{}",
        dir.display(),
        std::env::var("PATH").unwrap_or_default()
    )
}

#[test]
fn every_console_block_of_the_docs_runs_as_written() {
    let mut failures = Vec::new();
    let mut ran = 0;
    for doc in documents() {
        let text = std::fs::read_to_string(&doc).expect("document");
        let name = doc
            .strip_prefix(root())
            .unwrap_or(&doc)
            .display()
            .to_string();
        let console: Vec<Step> = blocks(&text)
            .into_iter()
            .filter(|(info, _, _)| info == "console")
            .flat_map(|(_, first, body)| steps(first, &body))
            .collect();
        if console.is_empty() {
            continue;
        }
        let dir = workspace();
        for step in console {
            ran += 1;
            let out = Command::new("bash")
                .args(["-o", "pipefail", "-c", &step.command])
                .current_dir(dir.path())
                .env("PATH", path_with_binaries())
                .env("ZTGW_CONFIG", dir.path().join("gw/gateway.toml"))
                .env("TZ", "UTC")
                .output()
                .expect("bash");
            let printed = format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            let at = format!("{name}:{}: `{}`", step.line, step.command);
            if out.status.code() != Some(step.exit) {
                failures.push(format!(
                    "{at}: exited {:?}, not {}:\n{printed}",
                    out.status.code(),
                    step.exit
                ));
                continue;
            }
            let mut lines = printed.lines();
            for want in &step.expected {
                if !lines.any(|l| matches(want, l.trim_end())) {
                    failures.push(format!(
                        "{at}: does not print (in this order) {want:?}; it printed:\n{printed}"
                    ));
                    break;
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
    assert!(ran >= 10, "only {ran} documented commands ran");
}

/// The command path (`ztgw policy check`) and flags (`--role`) of a documented line.
fn command_of(line: &str) -> Option<(Vec<String>, Vec<String>)> {
    let line = line.split(" #").next().unwrap_or(line).trim();
    let line = line.strip_prefix("sudo ").unwrap_or(line);
    let mut words = line.split_whitespace();
    let program = words.next()?;
    if !["ztgw", "ztgw-agent", "ztgw-audit"].contains(&program) {
        return None;
    }
    let mut path = vec![program.to_owned()];
    let mut flags = Vec::new();
    let mut in_path = true;
    for w in words {
        if w.starts_with("--") {
            in_path = false;
            let flag = w.split(['=', '[', ']']).next().unwrap_or(w);
            let flag = flag.trim_end_matches([',', '.', ')', '|']);
            if flag.len() > 2 {
                flags.push(flag.to_owned());
            }
        } else if in_path
            && w.chars().all(|c| c.is_ascii_lowercase() || c == '-')
            && !w.starts_with('-')
        {
            path.push(w.to_owned());
        } else {
            in_path = false;
        }
    }
    Some((path, flags))
}

#[test]
fn every_documented_command_and_flag_exists() {
    let mut failures = Vec::new();
    let mut checked = 0;
    for doc in documents() {
        let text = std::fs::read_to_string(&doc).expect("document");
        for (info, first, body) in blocks(&text) {
            if !(info.is_empty() || info == "sh" || info == "console" || info == "powershell") {
                continue;
            }
            for (i, raw) in body.iter().enumerate() {
                let line = raw.strip_prefix("$ ").unwrap_or(raw);
                let Some((mut path, flags)) = command_of(line) else {
                    continue;
                };
                // The longest prefix of the path that is a command; the words after it
                // are its arguments, unless it only takes a subcommand.
                let mut popped = false;
                let help = loop {
                    let out = Command::new(ztgw_tests::binary(&path[0]))
                        .args(&path[1..])
                        .arg("--help")
                        .output()
                        .expect("--help");
                    if out.status.success() || path.len() == 1 {
                        break String::from_utf8_lossy(&out.stdout).into_owned();
                    }
                    path.pop();
                    popped = true;
                };
                checked += 1;
                let at = format!(
                    "{}:{}",
                    doc.strip_prefix(root()).unwrap_or(&doc).display(),
                    first + i
                );
                let usage = help.lines().find(|l| l.starts_with("Usage:")).unwrap_or("");
                if popped && usage.trim_end().ends_with("<COMMAND>") {
                    failures.push(format!(
                        "{at}: `{}` has no such command (documented: {line})",
                        path.join(" ")
                    ));
                    continue;
                }
                for f in flags {
                    if f == "--help" || f == "--version" {
                        continue;
                    }
                    if !help.contains(&f) {
                        failures.push(format!(
                            "{at}: `{}` takes no {f} (documented: {line})",
                            path.join(" ")
                        ));
                    }
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(
        checked >= 30,
        "only {checked} documented command lines found"
    );
}

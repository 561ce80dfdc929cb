//! The system's own tools, asked what is in force (`nft -j list ruleset`, `mdatp
//! health`, PowerShell's queries on Windows): found only in the system's directories
//! (never through `PATH`), given no input, ended after a timeout, their output bounded.

use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// How long a tool may take.
pub const TIMEOUT: Duration = Duration::from_secs(5);
/// Most output read from a tool.
pub const MAX_OUTPUT: usize = 4 << 20;

/// The system's directories: where its own tools are looked for.
fn system_dirs() -> Vec<PathBuf> {
    if cfg!(windows) {
        let root = std::env::var_os("SystemRoot")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(r"C:\Windows"));
        vec![
            root.join("System32"),
            root.join(r"System32\WindowsPowerShell\v1.0"),
        ]
    } else {
        ["/usr/sbin", "/usr/bin", "/sbin", "/bin"]
            .iter()
            .map(PathBuf::from)
            .collect()
    }
}

/// `program` in the system's directories, or at the absolute path given.
pub fn find(program: &str) -> Option<PathBuf> {
    if Path::new(program).is_absolute() {
        return Path::new(program).is_file().then(|| program.into());
    }
    system_dirs()
        .into_iter()
        .map(|d| d.join(program))
        .find(|p| p.is_file())
}

/// Runs `program` with `args`; its standard output, or why there is none.
pub fn output(program: &str, args: &[&str]) -> Result<String, String> {
    let path = find(program).ok_or_else(|| format!("{program} is not installed"))?;
    let mut child = Command::new(&path)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .env_clear()
        .env("LC_ALL", "C")
        .envs(std::env::var_os("SystemRoot").map(|r| ("SystemRoot", r)))
        .spawn()
        .map_err(|e| format!("{program} could not be started: {e}"))?;
    let mut stdout = child.stdout.take().ok_or("no output")?;
    let reader = std::thread::spawn(move || {
        let mut out = Vec::new();
        let _ = (&mut stdout)
            .take(MAX_OUTPUT as u64 + 1)
            .read_to_end(&mut out);
        out
    });
    let started = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if started.elapsed() > TIMEOUT => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("{program} did not answer within {TIMEOUT:?}"));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => return Err(format!("{program}: {e}")),
        }
    };
    let out = reader
        .join()
        .map_err(|_| format!("reading {program}'s output failed"))?;
    if out.len() > MAX_OUTPUT {
        return Err(format!("{program} wrote more than {MAX_OUTPUT} bytes"));
    }
    let mut err = String::new();
    if let Some(mut e) = child.stderr.take() {
        let _ = e.by_ref().take(4096).read_to_string(&mut err);
    }
    if !status.success() {
        let first = err.lines().next().unwrap_or("").trim();
        return Err(format!("{program} failed ({status}): {first}"));
    }
    crate::probe::decode(&out).ok_or_else(|| format!("{program}'s output is not text"))
}

/// Whether this process runs as root (`/proc/self/status`).
pub fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status").is_ok_and(|s| {
        s.lines()
            .find_map(|l| l.strip_prefix("Uid:"))
            .and_then(|u| u.split_whitespace().nth(1))
            == Some("0")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tools_answer_fail_or_are_missing_with_a_reason() {
        assert_eq!(output("echo", &["hello"]).as_deref(), Ok("hello\n"));
        let e = output("false", &[]).expect_err("fails");
        assert!(e.contains("false failed"), "{e}");
        let e = output("no-such-tool-ztgw", &[]).expect_err("missing");
        assert!(e.contains("not installed"), "{e}");
        let e = output("sleep", &["30"]).expect_err("slow");
        assert!(e.contains("did not answer"), "{e}");
    }
}

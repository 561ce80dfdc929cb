//! The Windows build of the agent (`ztgw-agent.exe`, the release build for
//! x86_64-pc-windows-gnu that `deploy/scripts/package.sh` builds and the installer ships)
//! run under Wine: it starts, reports the posture of the Windows it runs on (Wine's:
//! every fact known or unknown with its reason, no crash), and enrols against a test
//! gateway on loopback — the TLS stack and the CA pinning of the Windows build — refusing
//! a gateway whose CA is not the one the invitation pins.
//!
//! The installer `deploy/scripts/package.sh` builds (NSIS) installs the agent silently,
//! registers it with Windows, and its uninstaller removes it and keeps the device's keys.
//!
//! Wine 8 (Debian 12) lacks `bcryptprimitives.dll`, which Rust's standard library calls
//! for randomness and every Windows 10/11 has: the test builds a stand-in
//! (`deploy/windows/bcryptprimitives-wine.c`) beside the copy of the agent it runs.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use ztgw_pki::invitation::Invitation;
use ztgw_tests::{GatewayOptions, TestGateway};

const WINE_TIMEOUT: &str = "240";

fn windows_agent() -> PathBuf {
    let target = ztgw_tests::binary("ztgw-agent")
        .parent()
        .and_then(Path::parent)
        .expect("target directory")
        .to_owned();
    let exe = target.join("x86_64-pc-windows-gnu/release/ztgw-agent.exe");
    assert!(
        exe.exists(),
        "{} is missing: build it with `rustup target add x86_64-pc-windows-gnu && apt-get install gcc-mingw-w64-x86-64 && cargo build --release -p ztgw-agent --target x86_64-pc-windows-gnu` (deploy/scripts/package.sh does)",
        exe.display()
    );
    exe
}

fn wine() -> PathBuf {
    ["/usr/lib/wine/wine64", "/usr/bin/wine64", "/usr/bin/wine"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .expect("Wine is missing: install it with `apt-get install wine64`")
}

/// A Wine prefix of this test's own, its server stopped when dropped (also on failure).
struct Prefix(tempfile::TempDir);

impl Drop for Prefix {
    fn drop(&mut self) {
        let _ = Command::new("wineserver")
            .arg("-k")
            .env("WINEPREFIX", self.0.path())
            .status();
    }
}

/// `Z:\...`: a Linux path as Wine's programs see it.
fn windows_path(p: &Path) -> String {
    format!("Z:{}", p.display()).replace('/', "\\")
}

fn run(prefix: &Prefix, exe: &Path, args: &[&str]) -> Output {
    Command::new("timeout")
        .arg(WINE_TIMEOUT)
        .arg(wine())
        .arg(exe)
        .args(args)
        .env("WINEPREFIX", prefix.0.path())
        .env("WINEDEBUG", "-all")
        .env("WINEDLLOVERRIDES", "mscoree,mshtml=")
        .output()
        .expect("wine")
}

/// Builds Wine's missing `bcryptprimitives.dll` into `dir`.
fn bcrypt_stand_in(dir: &Path) {
    let shim =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/windows/bcryptprimitives-wine.c");
    let built = Command::new("x86_64-w64-mingw32-gcc")
        .args(["-shared", "-O2", "-o"])
        .arg(dir.join("bcryptprimitives.dll"))
        .arg(&shim)
        .arg("-ladvapi32")
        .status()
        .expect(
            "x86_64-w64-mingw32-gcc is missing: install it with `apt-get install gcc-mingw-w64-x86-64`",
        );
    assert!(
        built.success(),
        "building the bcryptprimitives stand-in failed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_windows_agent_runs_reports_and_enrols_under_wine() {
    let work = tempfile::tempdir().expect("tempdir");
    // The agent and Wine's missing DLL, side by side.
    let exe = work.path().join("ztgw-agent.exe");
    std::fs::copy(windows_agent(), &exe).expect("copy the agent");
    bcrypt_stand_in(work.path());
    let prefix = Prefix(tempfile::tempdir().expect("prefix"));

    let out = run(&prefix, &exe, &["--version"]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "ztgw-agent 0.1.0",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // The posture of the Windows it runs on: Wine answers few of the queries, so most
    // facts are unknown, each with its reason; the command ends normally.
    let state = work.path().join("agent");
    let state_arg = windows_path(&state);
    let out = run(
        &prefix,
        &exe,
        &["--state-dir", &state_arg, "posture", "--json"],
    );
    assert!(matches!(out.status.code(), Some(0 | 1)), "{out:?}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!("{e}: {}", String::from_utf8_lossy(&out.stderr));
    });
    for (name, fact) in v["report"].as_object().expect("report") {
        if let Some(status) = fact.get("status") {
            match status.as_str() {
                Some("known") => assert!(fact["source"].as_str().is_some_and(|s| !s.is_empty())),
                Some("unknown") => assert!(
                    fact["reason"].as_str().is_some_and(|r| !r.is_empty()),
                    "{name} is unknown without a reason"
                ),
                other => panic!("{name}: {other:?}"),
            }
        }
    }

    // Enrolment against a gateway on loopback: TLS, the pinned CA, the keys written.
    let gw = TestGateway::start(GatewayOptions::default()).await;
    let invitation = gw.invite("e7701");
    let out = run(
        &prefix,
        &exe,
        &[
            "--state-dir",
            &state_arg,
            "enroll",
            &invitation,
            "--ownership",
            "administration",
        ],
    );
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(state.join("device.pem").exists() && state.join("enrolment.json").exists());
    let devices = gw.ctx().registry.devices().expect("devices");
    let enrolled: Vec<_> = devices
        .iter()
        .filter(|d| d.employee.as_str() == "e7701")
        .collect();
    assert_eq!(enrolled.len(), 1, "the gateway knows the device");
    // Named after the computer, and known as Windows (no /etc/hostname or os-release).
    assert_ne!(enrolled[0].hostname, "unknown");
    assert_eq!(enrolled[0].os, "Windows");

    // An invitation whose pinned CA is not the one of the gateway it names: refused
    // before anything is sent.
    let other = TestGateway::start(GatewayOptions::default()).await;
    let mut forged = Invitation::decode(&gw.invite("e7702")).expect("invitation");
    forged.control_address = other.running.control_addr.to_string();
    let forged = forged.encode().expect("encode");
    let state2 = windows_path(&work.path().join("agent2"));
    let out = run(
        &prefix,
        &exe,
        &[
            "--state-dir",
            &state2,
            "enroll",
            &forged,
            "--ownership",
            "administration",
        ],
    );
    assert!(
        !out.status.success(),
        "a gateway with another CA was trusted"
    );
    let said = String::from_utf8_lossy(&out.stderr).to_lowercase();
    assert!(
        said.contains("fingerprint") || said.contains("pin") || said.contains("certificate"),
        "{said}"
    );
    assert!(!work.path().join("agent2/device.pem").exists());
    gw.running.shutdown("test").await;
    other.running.shutdown("test").await;
}

/// The installer from `deploy/scripts/package.sh`, run silently (`/S`) in a Wine prefix
/// of its own: the agent and the employees' guide land in `Program Files\ztgw`, the state
/// directory in `ProgramData`, Windows lists the agent among installed programs, the
/// installed agent runs; the uninstaller removes the program and keeps the keys.
#[test]
fn the_installer_installs_and_uninstalls_the_agent() {
    let windows = ztgw_tests::binary("ztgw-agent")
        .parent()
        .and_then(Path::parent)
        .expect("target directory")
        .join("windows");
    let setup = std::fs::read_dir(&windows)
        .ok()
        .and_then(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.path())
                .find(|p| p.to_string_lossy().ends_with("-setup.exe"))
        })
        .unwrap_or_else(|| {
            panic!(
                "no installer in {}: build it with `bash deploy/scripts/package.sh` (it needs nsis and the x86_64-pc-windows-gnu target)",
                windows.display()
            )
        });
    let prefix = Prefix(tempfile::tempdir().expect("prefix"));
    let out = run(&prefix, &setup, &["/S"]);
    assert!(out.status.success(), "{out:?}");
    let drive = prefix.0.path().join("drive_c");
    let installed = drive.join("Program Files/ztgw");
    for file in [
        "ztgw-agent.exe",
        "employees.md",
        "posture.md",
        "uninstall.exe",
    ] {
        assert!(installed.join(file).exists(), "{file} installed");
    }
    assert!(
        drive.join("ProgramData/ztgw-agent").is_dir(),
        "the state directory"
    );
    let listed = |registry: &str| registry.contains(r"Uninstall\\ztgw-agent]");
    let registry = std::fs::read_to_string(prefix.0.path().join("system.reg")).expect("registry");
    assert!(
        listed(&registry) && registry.contains(r#""DisplayVersion"="0.1.0""#),
        "Windows lists the agent among installed programs"
    );
    bcrypt_stand_in(&installed);
    let out = run(&prefix, &installed.join("ztgw-agent.exe"), &["--version"]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "ztgw-agent 0.1.0"
    );

    // A key the agent would have written: the uninstaller leaves it.
    std::fs::write(drive.join("ProgramData/ztgw-agent/device.key"), "kept").expect("key");
    let out = run(
        &prefix,
        &installed.join("uninstall.exe"),
        &["/S", r"_?=C:\Program Files\ztgw"],
    );
    assert!(out.status.success(), "{out:?}");
    assert!(
        !installed.join("ztgw-agent.exe").exists(),
        "the agent is removed"
    );
    assert!(
        drive.join("ProgramData/ztgw-agent/device.key").exists(),
        "the keys stay"
    );
    let registry = std::fs::read_to_string(prefix.0.path().join("system.reg")).expect("registry");
    assert!(!listed(&registry), "no longer listed");
}

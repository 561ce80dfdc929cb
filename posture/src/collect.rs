//! Collecting a device's report: the options every collector takes, and the one entry
//! point, which picks the collector for the system it is asked to read.

use std::path::PathBuf;

use crate::report::PostureReport;

/// What the collector is told.
#[derive(Debug, Clone)]
pub struct CollectOptions {
    /// The filesystem root to read under.
    pub root: PathBuf,
    pub nonce: String,
    /// RFC 3339.
    pub now: String,
    pub agent_version: String,
    /// Executable names to look for on PATH (the profile's forbidden tools).
    pub watch_tools: Vec<String>,
    /// Administration-data markers: (name, path under the root, relative to each home
    /// directory when it does not start with `/`).
    pub markers: Vec<(String, String)>,
    /// The PATH to search, as on the device.
    pub path: String,
    /// Whether `root` is the running system, whose own tools may be asked what is in
    /// force (the firewall's ruleset, an endpoint protection's health). Off for a copied
    /// root, where only files are read.
    pub run_commands: bool,
}

/// Collects a report of the system under `o.root`: a Windows laptop's or a Mac's capture
/// when the root holds one (`windows-posture/`, `macos-posture/`), the running system on
/// Windows and macOS, else the Linux files under the root.
pub fn collect(o: &CollectOptions) -> PostureReport {
    let windows = o.root.join(crate::windows::CAPTURE_DIR);
    if windows.is_dir() {
        return crate::windows::collect(o, &crate::probe::Captured(windows));
    }
    let macos = o.root.join(crate::macos::CAPTURE_DIR);
    if macos.is_dir() {
        return crate::macos::collect(o, &crate::probe::Captured(macos));
    }
    if cfg!(windows) && o.run_commands {
        return crate::windows::collect(o, &crate::probe::Live);
    }
    if cfg!(target_os = "macos") && o.run_commands {
        return crate::macos::collect(o, &crate::probe::Live);
    }
    crate::linux::collect(o)
}

//! The macOS collector (14 and later). Each fact comes from one command whose raw output
//! a pure parser reads ([`parse`]); the running Mac ([`Live`]) or a capture of it
//! (`macos-posture/` under a posture root, saved by `ztgw-agent posture --capture`)
//! gives it, as for Windows.

pub mod parse;

use std::path::Path;

use crate::collect::CollectOptions;
use crate::probe::fact;
pub use crate::probe::{Captured, Captures, Live, Probe};
use crate::report::{Fact, PostureReport, SCHEMA_VERSION};

/// The directory, under a posture root, that holds a Mac's capture.
pub const CAPTURE_DIR: &str = "macos-posture";

/// Where a fact comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Version,
    History,
    Firewall,
    FileVault,
    Gatekeeper,
    ScreenLock,
    Applications,
    Wifi,
}

impl Source {
    pub const ALL: [Source; 8] = [
        Source::Version,
        Source::History,
        Source::Firewall,
        Source::FileVault,
        Source::Gatekeeper,
        Source::ScreenLock,
        Source::Applications,
        Source::Wifi,
    ];
}

impl crate::probe::Source for Source {
    fn file(self) -> &'static str {
        match self {
            Source::Version => "sw_vers.txt",
            Source::History => "softwareupdate-history.txt",
            Source::Firewall => "socketfilterfw-globalstate.txt",
            Source::FileVault => "fdesetup-status.txt",
            Source::Gatekeeper => "spctl-status.txt",
            Source::ScreenLock => "screen-lock.txt",
            Source::Applications => "applications.json",
            Source::Wifi => "airport.json",
        }
    }

    fn command(self) -> (&'static str, Vec<&'static str>) {
        match self {
            Source::Version => ("/usr/bin/sw_vers", vec![]),
            Source::History => ("/usr/sbin/softwareupdate", vec!["--history", "--all"]),
            Source::Firewall => (
                "/usr/libexec/ApplicationFirewall/socketfilterfw",
                vec!["--getglobalstate"],
            ),
            Source::FileVault => ("/usr/bin/fdesetup", vec!["status"]),
            Source::Gatekeeper => ("/usr/sbin/spctl", vec!["--status"]),
            // sysadminctl logs on standard error; the idle time is the console user's.
            Source::ScreenLock => (
                "/bin/sh",
                vec![
                    "-c",
                    "/usr/sbin/sysadminctl -screenLock status 2>&1; u=$(/usr/bin/stat -f%Su /dev/console); /usr/bin/sudo -u \"$u\" /usr/bin/defaults -currentHost read com.apple.screensaver idleTime 2>/dev/null || echo 'idleTime unset'",
                ],
            ),
            Source::Applications => (
                "/usr/sbin/system_profiler",
                vec!["SPApplicationsDataType", "-json", "-detailLevel", "mini"],
            ),
            Source::Wifi => (
                "/usr/sbin/system_profiler",
                vec!["SPAirPortDataType", "-json"],
            ),
        }
    }
}

/// Collects a Mac's report through `probe`.
pub fn collect(o: &CollectOptions, probe: &dyn Probe<Source>) -> PostureReport {
    let software = fact(probe, Source::Applications, parse::software);
    PostureReport {
        schema_version: SCHEMA_VERSION,
        collected_at: o.now.clone(),
        agent_version: o.agent_version.clone(),
        nonce: o.nonce.clone(),
        os: fact(probe, Source::Version, parse::os),
        last_update: fact(probe, Source::History, parse::last_update),
        antivirus: fact(probe, Source::History, parse::xprotect),
        firewall: fact(probe, Source::Firewall, parse::firewall),
        volumes: fact(probe, Source::FileVault, parse::filevault),
        screen_lock: fact(probe, Source::ScreenLock, parse::screen_lock),
        browsers: match &software {
            Fact::Known { value, source } => Fact::known(parse::browsers(value), source.clone()),
            Fact::Unknown { reason } => Fact::unknown(reason.clone()),
        },
        tools_on_path: match &software {
            Fact::Known { .. } => Fact::known(crate::probe::tools_on_path(o, ""), "PATH"),
            Fact::Unknown { reason } => Fact::unknown(reason.clone()),
        },
        software,
        removable_storage: Fact::unknown(
            "macOS has no system-wide USB storage policy to read (a configuration profile sets one)",
        ),
        wifi: fact(probe, Source::Wifi, parse::wifi),
        data_markers: crate::probe::data_markers(o, probe.captured_dir(), Path::new("/Users")),
    }
}

/// Saves every source's raw output into `dir/macos-posture/`, with the markers found.
pub fn capture(
    probe: &dyn Probe<Source>,
    o: &CollectOptions,
    dir: &Path,
) -> std::io::Result<Captures> {
    crate::probe::capture(
        probe,
        &Source::ALL,
        &crate::probe::data_markers(o, None, Path::new("/Users")),
        &dir.join(CAPTURE_DIR),
    )
}

#[cfg(test)]
mod tests;

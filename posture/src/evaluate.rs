//! Evaluating a report against a profile: every check's result, a sentence for the
//! employee and what to do about it. Unknown never passes. Time is a parameter.

use std::cmp::Ordering;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::profile::Profile;
use crate::remedy::{Fix, remedy};
use crate::report::{Fact, OsFamily, PostureReport, RemovableStorage};
use crate::version;

/// How far a device's clock may run ahead of the gateway's.
pub const MAX_CLOCK_SKEW_SECS: i64 = 120;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    Pass,
    Fail,
    /// The fact could not be determined: not compliant.
    Unknown,
}

/// One check's result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Check {
    /// Stable id, e.g. `posture.antivirus`.
    pub id: String,
    pub outcome: Outcome,
    /// What was found, for the employee.
    pub sentence: String,
    /// What to do, when it did not pass.
    pub remediation: Option<String>,
}

/// The whole evaluation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Evaluation {
    pub compliant: bool,
    pub checks: Vec<Check>,
}

impl Evaluation {
    /// The ids of the checks that did not pass.
    pub fn failed(&self) -> Vec<String> {
        self.checks
            .iter()
            .filter(|c| c.outcome != Outcome::Pass)
            .map(|c| c.id.clone())
            .collect()
    }
}

/// Whether the report's freshness and nonce are checked (at the gateway) or not (when
/// the employee previews the checks on the laptop).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Freshness<'a> {
    Require { nonce: &'a str },
    Preview,
}

/// Evaluates `report` against `profile` at `now`.
pub fn evaluate(
    report: &PostureReport,
    profile: &Profile,
    now: Timestamp,
    freshness: Freshness<'_>,
) -> Evaluation {
    let mut c = Checks(Vec::new());
    let family = report.os.value().map(|o| &o.family);
    let fix = |f: Fix| remedy(family, f);
    if let Freshness::Require { nonce } = freshness {
        let same = !nonce.is_empty() && constant_time_eq(report.nonce.as_bytes(), nonce.as_bytes());
        c.pass_if(
            "report.nonce",
            same,
            "the report answers this gateway's request",
            "the report was not made for this request (a replay, or an old report)",
            "Run the connection again: the agent makes a fresh report.",
        );
        match report.collected_at.parse::<Timestamp>() {
            Ok(at) => {
                let age = now.as_second() - at.as_second();
                c.pass_if(
                    "report.age",
                    age <= profile.max_report_age as i64 && age >= -MAX_CLOCK_SKEW_SECS,
                    "the report is recent",
                    &format!("the report is {age} seconds old (at most {} accepted), or the device's clock is wrong", profile.max_report_age),
                    "Check the device's date and time, then connect again.",
                );
            }
            Err(_) => c.fail(
                "report.age",
                "the report's time cannot be read",
                "Update ztgw-agent.",
            ),
        }
    }
    os(&mut c, report, profile);
    updates(&mut c, report, profile, now, &fix);
    antivirus(&mut c, report, profile, now, &fix);
    if profile.firewall_required {
        match &report.firewall {
            Fact::Known { value, .. } => c.pass_if(
                "posture.firewall",
                value.active,
                &format!("the firewall ({}) is active", value.product),
                &format!("the firewall ({}) is not active", value.product),
                &fix(Fix::Firewall),
            ),
            Fact::Unknown { reason } => c.unknown("posture.firewall", reason, &fix(Fix::Firewall)),
        }
    }
    if profile.disk_encryption_required {
        match &report.volumes {
            Fact::Known { value, .. } => {
                let clear: Vec<&str> = value
                    .iter()
                    .filter(|v| !v.encrypted)
                    .map(|v| v.mount.as_str())
                    .collect();
                c.pass_if(
                    "posture.disk-encryption",
                    clear.is_empty() && !value.is_empty(),
                    "the system and home volumes are encrypted",
                    &format!("not encrypted: {}", clear.join(", ")),
                    &fix(Fix::DiskEncryption),
                );
            }
            Fact::Unknown { reason } => {
                c.unknown("posture.disk-encryption", reason, &fix(Fix::DiskEncryption))
            }
        }
    }
    if profile.screen_lock_required {
        match &report.screen_lock {
            Fact::Known { value, .. } => {
                let delay_ok = value
                    .idle_delay_secs
                    .is_some_and(|d| d > 0 && u64::from(d) <= profile.max_idle_delay);
                c.pass_if(
                    "posture.screen-lock",
                    value.enabled && delay_ok,
                    "the screen locks when idle",
                    &format!(
                        "the screen lock is {} with an idle delay of {}",
                        if value.enabled { "on" } else { "off" },
                        value
                            .idle_delay_secs
                            .map_or("unknown".into(), |d| format!("{d} s"))
                    ),
                    &fix(Fix::ScreenLock(profile.max_idle_delay / 60)),
                );
            }
            Fact::Unknown { reason } => c.unknown(
                "posture.screen-lock",
                reason,
                &fix(Fix::ScreenLock(profile.max_idle_delay / 60)),
            ),
        }
    }
    browsers(&mut c, report, profile);
    software(&mut c, report, profile);
    if !profile.forbidden_data_markers.is_empty() {
        match &report.data_markers {
            Fact::Known { value, .. } => c.pass_if("posture.data-markers", value.is_empty(), "no administration data was found on the device", &format!("administration data found: {}", value.join(", ")), "Remove administration data from this device: it must stay on the administration's systems."),
            Fact::Unknown { reason } => c.unknown("posture.data-markers", reason, "Remove administration data from this device."),
        }
    }
    if profile.removable_storage_blocked {
        match &report.removable_storage {
            Fact::Known { value, .. } => c.pass_if(
                "posture.removable-storage",
                *value == RemovableStorage::Blocked,
                "USB storage is blocked",
                "USB storage is allowed",
                "Ask the IT unit to block USB storage on this device.",
            ),
            Fact::Unknown { reason } => c.unknown(
                "posture.removable-storage",
                reason,
                "Ask the IT unit to block USB storage.",
            ),
        }
    }
    if profile.open_wifi_forbidden {
        match &report.wifi {
            Fact::Known { value, .. } => c.pass_if(
                "posture.wifi",
                !matches!(
                    value,
                    crate::report::WifiSecurity::Open | crate::report::WifiSecurity::Wep
                ),
                "the network connection is protected",
                "the device is on an open or WEP Wi-Fi network",
                &fix(Fix::Wifi),
            ),
            Fact::Unknown { reason } => c.unknown("posture.wifi", reason, &fix(Fix::Wifi)),
        }
    }
    let compliant = c.0.iter().all(|x| x.outcome == Outcome::Pass);
    Evaluation {
        compliant,
        checks: c.0,
    }
}

struct Checks(Vec<Check>);

impl Checks {
    fn push(&mut self, id: &str, outcome: Outcome, sentence: &str, remediation: Option<&str>) {
        self.0.push(Check {
            id: id.into(),
            outcome,
            sentence: sentence.into(),
            remediation: remediation.map(str::to_owned),
        });
    }
    fn pass_if(&mut self, id: &str, ok: bool, pass: &str, fail: &str, fix: &str) {
        if ok {
            self.push(id, Outcome::Pass, pass, None);
        } else {
            self.push(id, Outcome::Fail, fail, Some(fix));
        }
    }
    fn fail(&mut self, id: &str, why: &str, fix: &str) {
        self.push(id, Outcome::Fail, why, Some(fix));
    }
    fn unknown(&mut self, id: &str, reason: &str, fix: &str) {
        self.push(
            id,
            Outcome::Unknown,
            &format!("could not be checked: {reason}"),
            Some(fix),
        );
    }
}

fn os(c: &mut Checks, r: &PostureReport, p: &Profile) {
    match &r.os {
        Fact::Known { value, .. } if p.os.is_empty() => c.push(
            "posture.os",
            Outcome::Pass,
            &format!("{} is accepted", value.name),
            None,
        ),
        Fact::Known { value, .. } => {
            let allowed = p.os.iter().find(|a| a.id == value.id);
            match allowed {
                None => c.fail(
                    "posture.os",
                    &format!("{} is not an accepted system", value.name),
                    &format!(
                        "Use an accepted system: {}.",
                        p.os.iter()
                            .map(|a| a.id.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                ),
                Some(a) => {
                    let new_enough = a.min_version.as_deref().is_none_or(|m| {
                        version::compare(&value.family, &value.version, m) != Ordering::Less
                    });
                    c.pass_if(
                        "posture.os",
                        new_enough,
                        &format!("{} is accepted", value.name),
                        &format!(
                            "{} is older than the required {}",
                            value.name,
                            a.min_version.as_deref().unwrap_or("")
                        ),
                        "Upgrade the operating system to a supported version.",
                    );
                }
            }
        }
        Fact::Unknown { reason } => c.unknown(
            "posture.os",
            reason,
            "Use a supported, genuine operating system.",
        ),
    }
}

fn updates(
    c: &mut Checks,
    r: &PostureReport,
    p: &Profile,
    now: Timestamp,
    fix: &dyn Fn(Fix) -> String,
) {
    let Some(max) = p.max_days_since_update else {
        return;
    };
    match &r.last_update {
        Fact::Known { value, .. } => match value.parse::<Timestamp>() {
            Ok(t) => {
                let days = (now.as_second() - t.as_second()) / 86_400;
                c.pass_if(
                    "posture.updates",
                    days <= i64::from(max),
                    &format!("the system was updated {days} days ago"),
                    &format!(
                        "the system was last updated {days} days ago (at most {max} accepted)"
                    ),
                    &fix(Fix::Updates),
                );
            }
            Err(_) => c.unknown(
                "posture.updates",
                "the update time cannot be read",
                &fix(Fix::Updates),
            ),
        },
        Fact::Unknown { reason } => c.unknown("posture.updates", reason, &fix(Fix::Updates)),
    }
}

fn antivirus(
    c: &mut Checks,
    r: &PostureReport,
    p: &Profile,
    now: Timestamp,
    fix: &dyn Fn(Fix) -> String,
) {
    if !p.antivirus_required {
        return;
    }
    let list = match &r.antivirus {
        Fact::Known { value, .. } => value,
        Fact::Unknown { reason } => {
            return c.unknown("posture.antivirus", reason, &fix(Fix::InstallAntivirus));
        }
    };
    let Some(av) = list.first() else {
        return c.fail(
            "posture.antivirus",
            "no antivirus was found",
            &fix(Fix::InstallAntivirus),
        );
    };
    if p.antivirus_running {
        c.pass_if(
            "posture.antivirus-running",
            list.iter().any(|a| a.running),
            &format!("{} is running", av.product),
            &format!("{} is installed but not running", av.product),
            &fix(Fix::StartAntivirus),
        );
    }
    let newest = list
        .iter()
        .filter_map(|a| a.signatures_time.as_deref()?.parse::<Timestamp>().ok())
        .max();
    match newest {
        Some(t) => {
            let age = now.as_second() - t.as_second();
            c.pass_if(
                "posture.antivirus-signatures",
                age <= p.max_signature_age as i64,
                "the antivirus signatures are up to date",
                &format!("the antivirus signatures are {} days old", age / 86_400),
                &fix(Fix::Signatures),
            );
        }
        None => c.unknown(
            "posture.antivirus-signatures",
            "the signatures' date is not known",
            &fix(Fix::Signatures),
        ),
    }
}

fn browsers(c: &mut Checks, r: &PostureReport, p: &Profile) {
    if p.min_browser_versions.is_empty() {
        return;
    }
    match &r.browsers {
        Fact::Known { value, .. } => {
            // Browsers' versions are ordered as their system's packages are.
            let family = r.os.value().map_or(OsFamily::Linux, |o| o.family.clone());
            let old: Vec<String> = value
                .iter()
                .filter_map(|b| {
                    let min = p.min_browser_versions.get(&b.name)?;
                    (version::compare(&family, &b.version, min) == Ordering::Less)
                        .then(|| format!("{} {} (needs {min})", b.name, b.version))
                })
                .collect();
            // The sentence says what was looked at: an absent browser passes (there is
            // nothing to be out of date), and says so.
            let checked: Vec<String> = value
                .iter()
                .filter(|b| p.min_browser_versions.contains_key(&b.name))
                .map(|b| format!("{} {}", b.name, b.version))
                .collect();
            let pass = if checked.is_empty() {
                format!(
                    "none of the browsers the profile names is installed ({})",
                    p.min_browser_versions
                        .keys()
                        .map(String::as_str)
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            } else {
                format!("up to date: {}", checked.join(", "))
            };
            c.pass_if(
                "posture.browsers",
                old.is_empty(),
                &pass,
                &format!("outdated: {}", old.join(", ")),
                "Update the browser.",
            );
        }
        Fact::Unknown { reason } => {
            c.unknown("posture.browsers", reason, "Keep the browser up to date.")
        }
    }
}

fn software(c: &mut Checks, r: &PostureReport, p: &Profile) {
    let installed: Option<&Vec<crate::report::Package>> = r.software.value();
    let on_path: Vec<&str> = r
        .tools_on_path
        .value()
        .map(|v| v.iter().map(String::as_str).collect())
        .unwrap_or_default();
    let package_names = || installed.into_iter().flatten().map(|pkg| pkg.name.as_str());
    if !p.forbidden_software.is_empty() {
        let finder = Finder::new(&p.forbidden_software);
        let mut found: Vec<&str> = finder.matches(package_names().chain(on_path.iter().copied()));
        found.sort_unstable();
        found.dedup();
        if installed.is_none() && found.is_empty() {
            c.unknown(
                "posture.forbidden-software",
                "the installed software could not be read",
                "Remove hacking tools from this device.",
            );
        } else {
            c.pass_if(
                "posture.forbidden-software",
                found.is_empty(),
                "no forbidden software was found",
                &format!("forbidden software found: {}", found.join(", ")),
                &format!(
                    "Remove it (for example: sudo apt purge {}).",
                    found.join(" ")
                ),
            );
        }
    }
    if !p.required_software.is_empty() {
        match installed {
            Some(_) => {
                let present = Finder::new(&p.required_software).matches(package_names());
                let missing: Vec<&str> = p
                    .required_software
                    .iter()
                    .map(String::as_str)
                    .filter(|s| !present.contains(s))
                    .collect();
                c.pass_if(
                    "posture.required-software",
                    missing.is_empty(),
                    "the required software is installed",
                    &format!("missing: {}", missing.join(", ")),
                    &format!(
                        "Install it (for example: sudo apt install {}).",
                        missing.join(" ")
                    ),
                );
            }
            None => c.unknown(
                "posture.required-software",
                "the installed software could not be read",
                "Install the software the IT unit requires.",
            ),
        }
    }
}

/// Finds which of a few names occur in a long list, in one pass: a name whose length no
/// wanted name has is skipped with one bit test; the rest are looked up in a hash set.
struct Finder<'p> {
    lengths: u128,
    names: NameSet<'p>,
}

impl<'p> Finder<'p> {
    fn new(names: &'p [String]) -> Self {
        let mut lengths = 0u128;
        for n in names {
            lengths |= 1u128 << n.len().min(127);
        }
        Self {
            lengths,
            names: names.iter().map(String::as_str).collect(),
        }
    }

    fn matches<'c>(&self, candidates: impl Iterator<Item = &'c str>) -> Vec<&'c str> {
        candidates
            .filter(|c| self.lengths & (1u128 << c.len().min(127)) != 0 && self.names.contains(c))
            .collect()
    }
}

/// A set of names with a cheap hash (word-wise FNV-1a): the names are not attacker-chosen keys
/// of a long-lived table, only the lookups of one evaluation.
type NameSet<'a> = std::collections::HashSet<&'a str, std::hash::BuildHasherDefault<Fnv>>;

#[derive(Default)]
struct Fnv(u64);

impl std::hash::Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        // FNV-1a over 8-byte words: names are short, so a few multiplications each.
        let mut h = if self.0 == 0 {
            0xcbf2_9ce4_8422_2325
        } else {
            self.0
        };
        let mut chunks = bytes.chunks_exact(8);
        for w in &mut chunks {
            let mut word = [0u8; 8];
            word.copy_from_slice(w);
            h = (h ^ u64::from_le_bytes(word)).wrapping_mul(0x0100_0000_01b3);
        }
        let mut last = [0u8; 8];
        last[..chunks.remainder().len()].copy_from_slice(chunks.remainder());
        h = (h ^ u64::from_le_bytes(last) ^ bytes.len() as u64).wrapping_mul(0x0100_0000_01b3);
        self.0 = h;
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

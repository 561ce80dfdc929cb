//! Where a collector that asks the system (Windows, macOS) gets each source's raw output:
//! the running system ([`Live`], which runs the source's command), or a capture of it
//! ([`Captured`]: the files `ztgw-agent posture --capture DIR` saved on a laptop, one per
//! source), so a laptop is checked elsewhere from its capture and the tests run whole
//! collectors against fixtures.

use std::io::Read as _;
use std::path::{Path, PathBuf};

use crate::report::Fact;

/// Largest raw output read from one captured source.
pub const MAX_SOURCE_BYTES: usize = 4 << 20;
/// The administration-data markers found on the laptop when it was captured (a JSON
/// list of their names).
pub const MARKERS_FILE: &str = "data-markers.json";

/// A source of facts: the file a capture keeps it in, and the command that gives it.
pub trait Source: Copy {
    fn file(self) -> &'static str;
    fn command(self) -> (&'static str, Vec<&'static str>);
}

/// Gives a source's raw output.
pub trait Probe<S: Source> {
    fn get(&self, source: S) -> Result<String, String>;
    /// What the facts' sources say they came from.
    fn origin(&self) -> String;
    /// The capture directory, when the probe reads one.
    fn captured_dir(&self) -> Option<&Path> {
        None
    }
}

/// A capture directory.
#[derive(Debug, Clone)]
pub struct Captured(pub PathBuf);

impl<S: Source> Probe<S> for Captured {
    fn get(&self, source: S) -> Result<String, String> {
        read_bounded(&self.0.join(source.file()))
    }
    fn origin(&self) -> String {
        format!("captured in {}", self.0.display())
    }
    fn captured_dir(&self) -> Option<&Path> {
        Some(&self.0)
    }
}

/// The running system.
#[derive(Debug, Clone, Copy)]
pub struct Live;

impl<S: Source> Probe<S> for Live {
    fn get(&self, source: S) -> Result<String, String> {
        let (program, args) = source.command();
        crate::run::output(program, &args)
    }
    fn origin(&self) -> String {
        "this system".into()
    }
}

/// A file's text, at most [`MAX_SOURCE_BYTES`].
pub fn read_bounded(path: &Path) -> Result<String, String> {
    read_at_most(path, MAX_SOURCE_BYTES)
}

/// A file's text, at most `max` bytes: a larger file is an error (it is not read into
/// memory whole), as is one that is not text.
pub fn read_at_most(path: &Path, max: usize) -> Result<String, String> {
    let file = std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut bytes = Vec::new();
    file.take(max as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    if bytes.len() > max {
        return Err(format!("{} is larger than {max} bytes", path.display()));
    }
    decode(&bytes).ok_or_else(|| format!("{} is not text", path.display()))
}

/// UTF-8, or the UTF-16LE (with its byte-order mark) Windows PowerShell writes with `>`.
pub fn decode(bytes: &[u8]) -> Option<String> {
    if let Some(rest) = bytes.strip_prefix(&[0xff, 0xfe]) {
        let units: Vec<u16> = rest
            .chunks_exact(2)
            .map(|c| u16::from_le_bytes([c[0], c[1]]))
            .collect();
        return String::from_utf16(&units).ok();
    }
    let bytes = bytes.strip_prefix(&[0xef, 0xbb, 0xbf]).unwrap_or(bytes);
    String::from_utf8(bytes.to_vec()).ok()
}

/// A fact from one source, through its parser: known with where it came from, or
/// unknown with why.
pub fn fact<S: Source, T>(
    probe: &dyn Probe<S>,
    s: S,
    f: impl FnOnce(&str) -> Result<T, String>,
) -> Fact<T> {
    match probe.get(s).and_then(|t| f(&t)) {
        Ok(v) => Fact::known(v, format!("{} ({})", s.file(), probe.origin())),
        Err(e) => Fact::unknown(format!("{}: {e}", s.file())),
    }
}

/// What a capture did with each source: saved it, or why not.
pub type Captures = Vec<(&'static str, Result<(), String>)>;

/// Writes each of `sources`' raw output into `out`, with the markers `found` on this
/// laptop.
pub fn capture<S: Source>(
    probe: &dyn Probe<S>,
    sources: &[S],
    found: &Fact<Vec<String>>,
    out: &Path,
) -> std::io::Result<Captures> {
    std::fs::create_dir_all(out)?;
    if let Fact::Known { value, .. } = found {
        std::fs::write(
            out.join(MARKERS_FILE),
            serde_json::to_vec(value).map_err(std::io::Error::other)?,
        )?;
    }
    let mut done = Vec::new();
    for s in sources {
        let r = match probe.get(*s) {
            Ok(text) => std::fs::write(out.join(s.file()), text).map_err(|e| e.to_string()),
            Err(e) => Err(e),
        };
        done.push((s.file(), r));
    }
    Ok(done)
}

/// The profile's administration-data markers: those a capture found (`captured`), or
/// those present in a folder under `users` (`/Users`, `C:\Users`) on the running
/// system; unknown on a copied root without a capture.
pub fn data_markers(
    o: &crate::collect::CollectOptions,
    captured: Option<&Path>,
    users: &Path,
) -> Fact<Vec<String>> {
    if o.markers.is_empty() {
        return Fact::known(Vec::new(), "no marker to look for");
    }
    if let Some(dir) = captured {
        return captured_markers(dir, &o.markers);
    }
    if !o.run_commands {
        return Fact::unknown(
            "administration-data markers are looked for on the running laptop only",
        );
    }
    let homes: Vec<PathBuf> = std::fs::read_dir(users)
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.path())
                .take(1000)
                .collect()
        })
        .unwrap_or_default();
    let mut found: Vec<String> = o
        .markers
        .iter()
        .filter(|(_, rel)| homes.iter().any(|h| h.join(rel).exists()))
        .map(|(name, _)| name.clone())
        .collect();
    found.sort();
    found.dedup();
    Fact::known(found, "the profile's marker paths in each user's folder")
}

/// The markers a capture found, among those the profile asks about.
fn captured_markers(dir: &Path, markers: &[(String, String)]) -> Fact<Vec<String>> {
    let file = dir.join(MARKERS_FILE);
    match read_bounded(&file).and_then(|t| {
        serde_json::from_str::<Vec<String>>(&t).map_err(|e| format!("{MARKERS_FILE}: {e}"))
    }) {
        Ok(found) => Fact::known(
            found
                .into_iter()
                .filter(|n| markers.iter().any(|(m, _)| m == n))
                .collect(),
            format!("{MARKERS_FILE} ({})", dir.display()),
        ),
        Err(e) => Fact::unknown(format!("the capture has no marker scan: {e}")),
    }
}

/// The profile's forbidden tools found as executables on the running system's PATH
/// (`suffix` is `.exe` on Windows); none looked up in a capture.
pub fn tools_on_path(o: &crate::collect::CollectOptions, suffix: &str) -> Vec<String> {
    if !o.run_commands {
        return Vec::new();
    }
    let mut found: Vec<String> = o
        .watch_tools
        .iter()
        .filter(|tool| {
            !tool.contains(['/', '\\'])
                && std::env::split_paths(&o.path)
                    .any(|d| d.join(format!("{tool}{suffix}")).is_file())
        })
        .cloned()
        .collect();
    found.sort();
    found.dedup();
    found
}

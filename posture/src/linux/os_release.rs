//! `/etc/os-release` and `/etc/hostname`, read under a filesystem root.

use std::collections::BTreeMap;
use std::path::Path;

/// Largest os-release or hostname file read.
const MAX_FILE_LEN: usize = 64 * 1024;

/// The fields of `os-release(5)` that posture and enrolment use.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct OsRelease {
    pub id: Option<String>,
    pub name: Option<String>,
    pub version_id: Option<String>,
    pub pretty_name: Option<String>,
}

impl OsRelease {
    /// Reads `ROOT/etc/os-release`, falling back to `ROOT/usr/lib/os-release` as
    /// os-release(5) says. `None` if neither is readable.
    pub fn read(root: &Path) -> Option<Self> {
        ["etc/os-release", "usr/lib/os-release"]
            .iter()
            .find_map(|p| read_bounded(&root.join(p)))
            .map(|text| Self::parse(&text))
    }

    /// Parses os-release text: `KEY=value` lines, values optionally quoted.
    pub fn parse(text: &str) -> Self {
        let mut fields = BTreeMap::new();
        for line in text.lines() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let Some((key, value)) = line.split_once('=') else {
                continue;
            };
            fields.insert(key.trim().to_owned(), unquote(value.trim()));
        }
        let mut take = |k: &str| fields.remove(k).filter(|v| !v.is_empty());
        Self {
            id: take("ID"),
            name: take("NAME"),
            version_id: take("VERSION_ID"),
            pretty_name: take("PRETTY_NAME"),
        }
    }

    /// A one-line description: PRETTY_NAME, else NAME VERSION_ID, else "Linux".
    pub fn describe(&self) -> String {
        if let Some(p) = &self.pretty_name {
            return p.clone();
        }
        match (&self.name, &self.version_id) {
            (Some(n), Some(v)) => format!("{n} {v}"),
            (Some(n), None) => n.clone(),
            _ => "Linux".into(),
        }
    }
}

/// Reads `ROOT/etc/hostname` (first line, trimmed).
pub fn read_hostname(root: &Path) -> Option<String> {
    let text = read_bounded(&root.join("etc/hostname"))?;
    let name = text.lines().next()?.trim();
    (!name.is_empty()).then(|| name.to_owned())
}

fn read_bounded(path: &Path) -> Option<String> {
    crate::probe::read_at_most(path, MAX_FILE_LEN).ok()
}

fn unquote(v: &str) -> String {
    let inner = v
        .strip_prefix('"')
        .and_then(|s| s.strip_suffix('"'))
        .or_else(|| v.strip_prefix('\'').and_then(|s| s.strip_suffix('\'')))
        .unwrap_or(v);
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            if let Some(next) = chars.next() {
                out.push(next);
            }
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEBIAN: &str = r#"PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"
NAME="Debian GNU/Linux"
VERSION_ID="12"
VERSION="12 (bookworm)"
VERSION_CODENAME=bookworm
ID=debian
HOME_URL="https://www.debian.org/"
"#;

    const FEDORA: &str = "NAME=\"Fedora Linux\"\nVERSION_ID=40\nID=fedora\n";

    #[test]
    fn parses_real_files() {
        let d = OsRelease::parse(DEBIAN);
        assert_eq!(d.id.as_deref(), Some("debian"));
        assert_eq!(d.version_id.as_deref(), Some("12"));
        assert_eq!(d.describe(), "Debian GNU/Linux 12 (bookworm)");
        let f = OsRelease::parse(FEDORA);
        assert_eq!(f.describe(), "Fedora Linux 40");
        assert_eq!(OsRelease::parse("garbage\n=\n").describe(), "Linux");
    }

    #[test]
    fn reads_under_a_root_with_fallback() {
        let root = tempfile::tempdir().expect("tempdir");
        assert_eq!(OsRelease::read(root.path()), None);
        std::fs::create_dir_all(root.path().join("usr/lib")).expect("mkdir");
        std::fs::write(root.path().join("usr/lib/os-release"), FEDORA).expect("write");
        assert_eq!(
            OsRelease::read(root.path())
                .map(|o| o.describe())
                .as_deref(),
            Some("Fedora Linux 40")
        );
        std::fs::create_dir_all(root.path().join("etc")).expect("mkdir");
        std::fs::write(root.path().join("etc/hostname"), "pc-finance-07\n").expect("write");
        assert_eq!(read_hostname(root.path()).as_deref(), Some("pc-finance-07"));
    }

    #[test]
    fn this_machine_has_an_os_release() {
        let os = OsRelease::read(Path::new("/")).expect("this machine has os-release");
        assert!(os.id.is_some());
    }
}

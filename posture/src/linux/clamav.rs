//! ClamAV: its signature databases' headers and whether its daemon runs.

use std::path::Path;

use crate::report::Antivirus;

/// The header of a `.cvd`/`.cld` file: `ClamAV-VDB:TIME:VERSION:SIGS:LEVEL:MD5:DSIG:BUILDER:STIME`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DbHeader {
    pub version: u64,
    /// RFC 3339.
    pub time: Option<String>,
}

/// Parses the 512-byte header of a ClamAV database file.
pub fn parse_header(bytes: &[u8]) -> Option<DbHeader> {
    let head = std::str::from_utf8(bytes.get(..bytes.len().min(512))?).ok()?;
    let head = head.trim_end_matches(['\0', ' ']);
    let fields: Vec<&str> = head.split(':').collect();
    if fields.first() != Some(&"ClamAV-VDB") || fields.len() < 4 {
        return None;
    }
    let version = fields.get(2)?.trim().parse().ok()?;
    // The build time is also given as seconds since the epoch in the last field.
    let time = fields
        .last()
        .and_then(|s| s.trim().parse::<i64>().ok())
        .and_then(|secs| jiff::Timestamp::from_second(secs).ok())
        .map(|t| t.to_string());
    Some(DbHeader { version, time })
}

/// ClamAV as installed under `root`, or `None` when it is not.
pub fn detect(root: &Path, running: bool) -> Option<Antivirus> {
    let dir = root.join("var/lib/clamav");
    let mut newest: Option<DbHeader> = None;
    for name in ["daily.cld", "daily.cvd", "main.cld", "main.cvd"] {
        let Ok(bytes) = read_prefix(&dir.join(name), 512) else {
            continue;
        };
        if let Some(h) = parse_header(&bytes)
            && newest.as_ref().is_none_or(|n| h.time > n.time)
        {
            newest = Some(h);
        }
    }
    if newest.is_none() && !running {
        return None;
    }
    Some(Antivirus {
        product: "ClamAV".into(),
        running,
        signatures_version: newest.as_ref().map(|h| h.version.to_string()),
        signatures_time: newest.and_then(|h| h.time),
    })
}

fn read_prefix(path: &Path, n: usize) -> std::io::Result<Vec<u8>> {
    use std::io::Read as _;
    let mut buf = Vec::with_capacity(n);
    std::fs::File::open(path)?
        .take(n as u64)
        .read_to_end(&mut buf)?;
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A daily.cvd header in the real format (the build time uses `-`, not `:`, between
    /// hours and minutes; padded to 512 bytes).
    fn header() -> Vec<u8> {
        let mut h = b"ClamAV-VDB:28 Nov 2026 08-26 +0000:27470:2067394:90:3c1b4b1e6d3b5d8e9c3a1f2e4d5c6b7a:AbCdEf:raynman:1795854360".to_vec();
        h.resize(512, b' ');
        h
    }

    #[test]
    fn parses_database_headers() {
        let h = parse_header(&header()).expect("header");
        assert_eq!(h.version, 27470);
        assert_eq!(h.time.as_deref(), Some("2026-11-28T08:26:00Z"));
        assert_eq!(parse_header(b"not a database"), None);
        assert_eq!(parse_header(&[0xff; 600]), None);
    }

    #[test]
    fn detects_clamav_under_a_root() {
        let root = tempfile::tempdir().expect("tempdir");
        assert_eq!(detect(root.path(), false), None);
        std::fs::create_dir_all(root.path().join("var/lib/clamav")).expect("mkdir");
        std::fs::write(root.path().join("var/lib/clamav/daily.cld"), header()).expect("write");
        let av = detect(root.path(), true).expect("clamav");
        assert!(av.running);
        assert_eq!(av.signatures_version.as_deref(), Some("27470"));
    }
}

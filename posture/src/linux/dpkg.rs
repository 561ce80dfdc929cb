//! The dpkg database (`/var/lib/dpkg/status`) and Debian version ordering.

use std::cmp::Ordering;

use crate::report::Package;

/// Installed packages from the text of a dpkg status file.
pub fn installed(status: &str) -> Vec<Package> {
    let mut out = Vec::new();
    for stanza in status.split("\n\n") {
        let mut name = None;
        let mut version = None;
        let mut installed = false;
        for line in stanza.lines() {
            if let Some(v) = line.strip_prefix("Package: ") {
                name = Some(v.trim());
            } else if let Some(v) = line.strip_prefix("Version: ") {
                version = Some(v.trim());
            } else if let Some(v) = line.strip_prefix("Status: ") {
                installed = v.trim().ends_with(" installed");
            }
        }
        if let (Some(n), Some(v), true) = (name, version, installed) {
            out.push(Package {
                name: n.to_owned(),
                version: v.to_owned(),
            });
        }
    }
    out
}

/// Compares two versions as dpkg does (`epoch:upstream-revision`, `~` sorting first).
pub fn compare(a: &str, b: &str) -> Ordering {
    let (ea, ra) = split_epoch(a);
    let (eb, rb) = split_epoch(b);
    ea.cmp(&eb).then_with(|| {
        let (ua, va) = ra.rsplit_once('-').unwrap_or((ra, ""));
        let (ub, vb) = rb.rsplit_once('-').unwrap_or((rb, ""));
        compare_part(ua, ub).then_with(|| compare_part(va, vb))
    })
}

fn split_epoch(v: &str) -> (u64, &str) {
    match v.split_once(':') {
        Some((e, rest)) if e.chars().all(|c| c.is_ascii_digit()) => (e.parse().unwrap_or(0), rest),
        _ => (0, v),
    }
}

fn order(c: Option<char>) -> i32 {
    match c {
        None => 0,
        Some('~') => -1,
        Some(c) if c.is_ascii_alphabetic() => c as i32,
        Some(c) => c as i32 + 256,
    }
}

fn compare_part(a: &str, b: &str) -> Ordering {
    let (mut a, mut b) = (a.chars().peekable(), b.chars().peekable());
    loop {
        // Non-digit prefixes, character by character.
        loop {
            let ca = a.peek().copied().filter(|c| !c.is_ascii_digit());
            let cb = b.peek().copied().filter(|c| !c.is_ascii_digit());
            if ca.is_none() && cb.is_none() {
                break;
            }
            match order(ca).cmp(&order(cb)) {
                Ordering::Equal => {
                    a.next();
                    b.next();
                }
                other => return other,
            }
        }
        // Then numbers.
        let na: String = std::iter::from_fn(|| a.next_if(|c| c.is_ascii_digit())).collect();
        let nb: String = std::iter::from_fn(|| b.next_if(|c| c.is_ascii_digit())).collect();
        let (na, nb) = (na.trim_start_matches('0'), nb.trim_start_matches('0'));
        match na.len().cmp(&nb.len()).then_with(|| na.cmp(nb)) {
            Ordering::Equal => {}
            other => return other,
        }
        if a.peek().is_none() && b.peek().is_none() {
            return Ordering::Equal;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_order_as_dpkg() {
        let less: &[(&str, &str)] = &[
            ("115.0esr", "128.1.0esr-1~deb12u1"),
            ("1.0", "1.0.1"),
            ("1.0~rc1", "1.0"),
            ("1:0.9", "2:0.1"),
            ("2.3-1", "2.3-2"),
            ("9", "10"),
            ("1.0a", "1.0b"),
            ("122.0.6261.57-1~deb12u1", "122.0.6261.94-1~deb12u1"),
        ];
        for (a, b) in less {
            assert_eq!(compare(a, b), Ordering::Less, "{a} < {b}");
            assert_eq!(compare(b, a), Ordering::Greater, "{b} > {a}");
        }
        assert_eq!(compare("1.0-1", "1.0-1"), Ordering::Equal);
        assert_eq!(compare("01.0", "1.0"), Ordering::Equal);
    }

    #[test]
    fn reads_a_real_status_excerpt() {
        let status = "Package: nmap\nStatus: install ok installed\nPriority: extra\nVersion: 7.93+dfsg1-1\n\nPackage: firefox-esr\nStatus: install ok installed\nVersion: 115.12.0esr-1~deb12u1\n\nPackage: removed-thing\nStatus: deinstall ok config-files\nVersion: 1.0\n";
        let p = installed(status);
        assert_eq!(p.len(), 2);
        assert_eq!(
            (p[0].name.as_str(), p[0].version.as_str()),
            ("nmap", "7.93+dfsg1-1")
        );
    }
}

//! `[export.NAME]`: receivers the journal is streamed to (a SIEM, a log collector).
//!
//! ```toml
//! [export.soc]
//! kind = "syslog"                        # RFC 5424 over TLS (RFC 5425)
//! address = "siem.finances.gov.ma:6514"
//! ca_file = "siem-ca.pem"                # the CA that signs the receiver's certificate
//!
//! [export.lake]
//! kind = "https"                         # JSON lines, POSTed in batches
//! url = "https://collector.finances.gov.ma/ztgw"
//! ca_file = "collector-ca.pem"
//! token_file = "collector.token"         # optional: Authorization: Bearer …
//! ```

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::duration::HumanDuration;
use crate::location::ConfigError;

/// One receiver.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExportTarget {
    pub kind: ExportKind,
    /// `syslog`: the receiver's `HOST:PORT` (6514 is syslog over TLS's port).
    #[serde(default)]
    pub address: Option<String>,
    /// `https`: where batches are POSTed, `https://HOST[:PORT]/PATH`.
    #[serde(default)]
    pub url: Option<String>,
    /// The CA that signs the receiver's certificate (PEM), relative to this file's
    /// directory. The receiver's name (the host of `address` or `url`) must be in its
    /// certificate.
    pub ca_file: PathBuf,
    /// `https`: a file (0600) holding a token sent as `Authorization: Bearer TOKEN`.
    #[serde(default)]
    pub token_file: Option<PathBuf>,
    /// Most records in one write (syslog) or one request (https).
    #[serde(default = "default_batch")]
    pub batch: usize,
    /// How long connecting, one write or one request may take.
    #[serde(default = "default_timeout")]
    pub timeout: HumanDuration,
}

/// How records reach a receiver.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ExportKind {
    /// RFC 5424 messages over TLS, octet-counted (RFC 5425).
    Syslog,
    /// JSON lines, one record a line, POSTed over HTTPS.
    Https,
}

impl ExportKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Syslog => "syslog",
            Self::Https => "https",
        }
    }
}

/// The largest batch a target may ask for.
pub const MAX_BATCH: usize = 10_000;

fn default_batch() -> usize {
    500
}

fn default_timeout() -> HumanDuration {
    HumanDuration::from_secs(10)
}

impl ExportTarget {
    /// Where the receiver is, for people: its address or URL.
    pub fn destination(&self) -> &str {
        self.address
            .as_deref()
            .or(self.url.as_deref())
            .unwrap_or_default()
    }

    /// The receiver's host name (what its certificate must name) and port.
    pub fn host_port(&self) -> Option<(String, u16)> {
        let authority = match self.kind {
            ExportKind::Syslog => self.address.as_deref()?,
            ExportKind::Https => {
                let rest = self.url.as_deref()?.strip_prefix("https://")?;
                rest.split(['/', '?', '#']).next()?
            }
        };
        let (host, port) = if let Some(rest) = authority.strip_prefix('[') {
            let (host, after) = rest.split_once(']')?;
            match after {
                "" => (host, None),
                p => (host, Some(p.strip_prefix(':')?)),
            }
        } else {
            match authority.split_once(':') {
                Some((h, p)) if !p.contains(':') => (h, Some(p)),
                Some(_) => return None,
                None => (authority, None),
            }
        };
        let port = match (port, self.kind) {
            (Some(p), _) => p.parse::<u16>().ok().filter(|p| *p != 0)?,
            (None, ExportKind::Https) => 443,
            (None, ExportKind::Syslog) => return None,
        };
        let valid = !host.is_empty()
            && host.len() <= 253
            && host
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':'));
        valid.then(|| (host.to_owned(), port))
    }

    pub(super) fn resolve(&mut self, base: &Path) {
        self.ca_file = base.join(&self.ca_file);
        if let Some(t) = &mut self.token_file {
            *t = base.join(&*t);
        }
    }
}

/// Checks every target: names, the fields each kind needs, the sizes.
pub(super) fn check(
    targets: &std::collections::BTreeMap<String, ExportTarget>,
    file: &Path,
    text: &str,
) -> Result<(), ConfigError> {
    for (name, t) in targets {
        let header = format!("[export.{name}]");
        let table = crate::location::table_start(text, &header);
        let at = |key: &str, message: String| {
            let span = table.and_then(|start| {
                text[start..]
                    .find(&format!("\n{key}"))
                    .map(|i| start + i + 1..start + i + 1 + key.len())
                    .or(Some(start..start + header.len()))
            });
            ConfigError::at(file, text, span, message)
        };
        if name.is_empty()
            || name.len() > 32
            || !name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        {
            return Err(at(
                "kind",
                format!(
                    "export target {name:?}: a name is 1 to 32 lowercase letters, digits and hyphens"
                ),
            ));
        }
        let prefix = format!("export.{name}");
        match t.kind {
            ExportKind::Syslog => {
                if t.url.is_some() || t.token_file.is_some() {
                    return Err(at(
                        if t.url.is_some() { "url" } else { "token_file" },
                        format!(
                            "{prefix}: a syslog target takes `address` (HOST:PORT), not `url` or `token_file`"
                        ),
                    ));
                }
                if t.address.is_none() {
                    return Err(at(
                        "kind",
                        format!("{prefix}: a syslog target needs `address = \"HOST:PORT\"`"),
                    ));
                }
            }
            ExportKind::Https => {
                if t.address.is_some() {
                    return Err(at(
                        "address",
                        format!("{prefix}: an https target takes `url`, not `address`"),
                    ));
                }
                match &t.url {
                    None => {
                        return Err(at(
                            "kind",
                            format!("{prefix}: an https target needs `url = \"https://…\"`"),
                        ));
                    }
                    Some(u) if !u.starts_with("https://") => {
                        return Err(at(
                            "url",
                            format!(
                                "{prefix}.url must start with https:// (records are never sent in clear)"
                            ),
                        ));
                    }
                    Some(_) => {}
                }
            }
        }
        if t.host_port().is_none() {
            let key = if t.kind == ExportKind::Syslog {
                "address"
            } else {
                "url"
            };
            return Err(at(
                key,
                format!(
                    "{prefix}.{key} {:?}: expected {}",
                    t.destination(),
                    if t.kind == ExportKind::Syslog {
                        "HOST:PORT"
                    } else {
                        "https://HOST[:PORT]/PATH"
                    }
                ),
            ));
        }
        if !(1..=MAX_BATCH).contains(&t.batch) {
            return Err(at(
                "batch",
                format!("{prefix}.batch must be between 1 and {MAX_BATCH}"),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(kind: ExportKind, address: Option<&str>, url: Option<&str>) -> ExportTarget {
        ExportTarget {
            kind,
            address: address.map(str::to_owned),
            url: url.map(str::to_owned),
            ca_file: PathBuf::from("ca.pem"),
            token_file: None,
            batch: 500,
            timeout: default_timeout(),
        }
    }

    #[test]
    fn receivers_are_found_in_addresses_and_urls() {
        let s = |a| target(ExportKind::Syslog, Some(a), None).host_port();
        let h = |u| target(ExportKind::Https, None, Some(u)).host_port();
        assert_eq!(s("siem.gov.ma:6514"), Some(("siem.gov.ma".into(), 6514)));
        assert_eq!(s("10.0.0.5:6514"), Some(("10.0.0.5".into(), 6514)));
        assert_eq!(s("[fd00::5]:6514"), Some(("fd00::5".into(), 6514)));
        assert_eq!(s("siem.gov.ma"), None, "syslog has no default port here");
        assert_eq!(s("siem.gov.ma:0"), None);
        assert_eq!(s("si em:6514"), None);
        assert_eq!(
            h("https://collector.gov.ma/ztgw"),
            Some(("collector.gov.ma".into(), 443))
        );
        assert_eq!(
            h("https://collector.gov.ma:8443/a?b"),
            Some(("collector.gov.ma".into(), 8443))
        );
        assert_eq!(h("https://[fd00::9]:8443/"), Some(("fd00::9".into(), 8443)));
        assert_eq!(h("http://collector.gov.ma/"), None);
        assert_eq!(h("https:///x"), None);
    }
}

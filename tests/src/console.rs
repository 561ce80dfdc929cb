//! A gateway with its web console on, reachable from this host's namespace (where the
//! browser runs) over a veth pair the test makes, and its operators' PKCS#12 files.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU8, Ordering};

use crate::netns::HostLink;
use crate::site::Site;

/// The console's port in the gateway's namespace.
pub const CONSOLE_PORT: u16 = 9443;
/// The passphrase of every operator's PKCS#12 file in the tests.
pub const PASSPHRASE: &str = "correct horse battery staple";

static LINKS: AtomicU8 = AtomicU8::new(0);

#[derive(Debug)]
pub struct ConsoleSite {
    pub site: Site,
    /// `https://ADDRESS:9443`, the console as the browser reaches it.
    pub url: String,
    pub ca: PathBuf,
    _link: HostLink,
}

impl ConsoleSite {
    /// A site with `policy`, its gateway's console on, and `edit` applied to its settings.
    pub fn new(policy: &str, edit: impl FnOnce(String) -> String) -> Self {
        // A /30 of the benchmarking range (RFC 2544) of its own: this process and call.
        let n = LINKS.fetch_add(1, Ordering::Relaxed) % 60;
        let a = std::process::id() % 250;
        let host = format!("198.18.{a}.{}", n * 4 + 1);
        let console = format!("198.18.{a}.{}", n * 4 + 2);
        let site = Site::new_named(policy, &[&console], |text| {
            edit(format!(
                "{text}\n[console]\nlisten = \"0.0.0.0:{CONSOLE_PORT}\"\n"
            ))
        });
        let link = HostLink::new(&format!("{host}/30"), &site.gw, &format!("{console}/30"));
        let ca = site.config.with_file_name("ca.pem");
        Self {
            url: format!("https://{console}:{CONSOLE_PORT}"),
            site,
            ca,
            _link: link,
        }
    }

    /// `ztgw operator add NAME --role ROLE`: the PKCS#12 file (passphrase [`PASSPHRASE`]).
    pub fn operator(&self, name: &str, role: &str) -> PathBuf {
        add_operator(
            |args| {
                self.site.ztgw_ok(args);
            },
            self.site.dir.path(),
            name,
            role,
            "365d",
        )
    }
}

/// `ztgw operator add NAME --role ROLE --valid-for VALID_FOR`, run by `ztgw_ok` (which
/// runs `ztgw ARGS` on a gateway and fails the test if it fails): the PKCS#12 file it
/// wrote in `dir` (passphrase [`PASSPHRASE`]).
pub fn add_operator(
    ztgw_ok: impl FnOnce(&[&str]),
    dir: &Path,
    name: &str,
    role: &str,
    valid_for: &str,
) -> PathBuf {
    let pass = dir.join("operator.pass");
    std::fs::write(&pass, PASSPHRASE).expect("passphrase");
    let p12 = dir.join(format!("{name}.p12"));
    ztgw_ok(&[
        "operator",
        "add",
        name,
        "--role",
        role,
        "--valid-for",
        valid_for,
        "--out",
        &p12.display().to_string(),
        "--passphrase-file",
        &pass.display().to_string(),
    ]);
    p12
}

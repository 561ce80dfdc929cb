//! A gateway with its web console on, reachable from a namespace of the browser's own
//! over a veth pair the test makes, and its operators' PKCS#12 files.

use crate::netns::{self, Netns};
use crate::site::Site;
use std::path::{Path, PathBuf};

/// The console's port in the gateway's namespace.
pub const CONSOLE_PORT: u16 = 9443;
/// The passphrase of every operator's PKCS#12 file in the tests.
pub const PASSPHRASE: &str = "correct horse battery staple";

#[derive(Debug)]
pub struct ConsoleSite {
    pub site: Site,
    /// `https://ADDRESS:9443`, the console as the browser reaches it.
    pub url: String,
    pub ca: PathBuf,
    /// The browser's namespace, linked to the gateway's. Chromium aborts a page load in
    /// flight (`ERR_NETWORK_CHANGED`) when an address or link of its namespace changes,
    /// as they do in the host's namespace whenever another test makes or removes a link
    /// there: in a namespace of its own, only this site's link is there.
    pub client: Netns,
}

impl ConsoleSite {
    /// A site with `policy`, its gateway's console on, and `edit` applied to its settings.
    pub fn new(policy: &str, edit: impl FnOnce(String) -> String) -> Self {
        let (client_addr, console) = netns::slash30();
        let site = Site::new_named(policy, &[&console.to_string()], |text| {
            edit(format!(
                "{text}\n[console]\nlisten = \"0.0.0.0:{CONSOLE_PORT}\"\n"
            ))
        });
        let client = Netns::new("cb");
        netns::link(
            &client,
            &format!("{client_addr}/30"),
            &site.gw,
            &format!("{console}/30"),
        );
        let ca = site.config.with_file_name("ca.pem");
        Self {
            url: format!("https://{console}:{CONSOLE_PORT}"),
            site,
            ca,
            client,
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

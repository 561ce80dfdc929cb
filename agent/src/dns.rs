//! Split DNS for a session (#18): the role's internal resolvers answer only for the
//! role's domains; every other name resolves as the laptop's own resolver says. Applied
//! for the life of the session and undone after it:
//!
//! - Linux with systemd-resolved: per-link resolvers and routing-only domains on the
//!   tunnel interface (`resolvectl dns|domain|default-route`), `resolvectl revert` after;
//!   a wg-quick file carries the same commands as `PostUp`/`PreDown`.
//! - Windows: a name-resolution policy rule per session (`Add-DnsClientNrptRule`,
//!   tagged with the session's comment), removed after.
//!
//! Without systemd-resolved (or PowerShell on Windows) the agent says that internal names
//! are not resolved through the tunnel, and the tunnel works by address as before.
//!
//! Every value is checked ([`SplitDns::new`]: resolvers are IP addresses, domains
//! letters, digits, hyphens and dots) before it is used, so none can add a command.
//!
//! The grant sets it at admission; a posture re-check that moves the session into its
//! quarantine role (or back) gives that role's resolvers, and the agent changes them.

use std::process::{Command, Stdio};

use ztgw_api::control::{RecheckView, SessionGrant};

/// The comment that marks the agent's Windows name-resolution rules.
pub const NRPT_COMMENT: &str = "ztgw-agent session";

/// A role's internal resolvers and the domains they answer for (both empty: none).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SplitDns {
    servers: Vec<String>,
    domains: Vec<String>,
}

impl SplitDns {
    /// Checks the gateway's values: resolvers are addresses, domains canonical domain
    /// names, and either both are given or neither. `Err` names what was wrong.
    pub fn new(servers: &[String], domains: &[String]) -> Result<Self, &'static str> {
        for d in servers {
            d.parse::<std::net::IpAddr>().map_err(|_| "DNS server")?;
        }
        // Domains go into resolver settings and wg-quick lines: only what a domain can be.
        for d in domains {
            match ztgw_config::policy::parse_domain(d) {
                Ok(canonical) if &canonical == d => {}
                _ => return Err("DNS domain"),
            }
        }
        if servers.is_empty() != domains.is_empty() {
            return Err("DNS setting (resolvers without domains, or the reverse)");
        }
        Ok(Self {
            servers: servers.to_vec(),
            domains: domains.to_vec(),
        })
    }

    /// The grant's.
    pub fn of_grant(grant: &SessionGrant) -> Result<Self, &'static str> {
        Self::new(&grant.dns, &grant.dns_domains)
    }

    /// The role's after a re-check.
    pub fn of_recheck(view: &RecheckView) -> Result<Self, &'static str> {
        Self::new(&view.dns, &view.dns_domains)
    }

    /// Whether there is anything to set.
    pub fn wanted(&self) -> bool {
        !self.servers.is_empty()
    }
}

/// The `resolvectl` invocations that give `iface` the resolvers for their domains only
/// (`~domain`: routing-only; no default route, so other names do not go there).
pub fn resolvectl_commands(iface: &str, dns: &SplitDns) -> Vec<Vec<String>> {
    let mut servers = vec!["dns".to_owned(), iface.to_owned()];
    servers.extend(dns.servers.iter().cloned());
    let mut domain = vec!["domain".to_owned(), iface.to_owned()];
    domain.extend(dns.domains.iter().map(|d| format!("~{d}")));
    vec![
        servers,
        domain,
        vec!["default-route".into(), iface.into(), "false".into()],
    ]
}

/// The same as wg-quick lines (`%i` is the interface), to put in a configuration file.
pub fn wg_quick_lines(dns: &SplitDns) -> String {
    if !dns.wanted() {
        return String::new();
    }
    let commands: Vec<String> = resolvectl_commands("%i", dns)
        .into_iter()
        .map(|c| format!("resolvectl {}", c.join(" ")))
        .collect();
    format!(
        "PostUp = {}\nPreDown = resolvectl revert %i\n",
        commands.join("; ")
    )
}

/// Whether systemd-resolved answers here.
fn resolved_runs() -> bool {
    Command::new("resolvectl")
        .arg("status")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Applies split DNS to `iface`. `Err` says, for the employee, why internal names are
/// not resolved through the tunnel (the tunnel itself is up).
pub fn apply_linux(iface: &str, dns: &SplitDns) -> Result<(), String> {
    if !dns.wanted() {
        return Ok(());
    }
    if !resolved_runs() {
        return Err(format!(
            "internal names ({}) are not resolved through the tunnel: this laptop does not run systemd-resolved; reach internal services by address, or ask your IT unit",
            dns.domains.join(", ")
        ));
    }
    for args in resolvectl_commands(iface, dns) {
        let out = Command::new("resolvectl")
            .args(&args)
            .output()
            .map_err(|e| format!("resolvectl: {e}"))?;
        if !out.status.success() {
            revert_linux(iface);
            return Err(format!(
                "internal names are not resolved through the tunnel: resolvectl {}: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
    }
    Ok(())
}

/// Undoes [`apply_linux`] (nothing happens when there was nothing to undo).
pub fn revert_linux(iface: &str) {
    let _ = Command::new("resolvectl")
        .args(["revert", iface])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// The PowerShell that adds one name-resolution rule for the domains.
pub fn nrpt_add_script(dns: &SplitDns) -> String {
    let quoted = |items: &mut dyn Iterator<Item = String>| {
        items
            .map(|s| format!("'{s}'"))
            .collect::<Vec<_>>()
            .join(",")
    };
    format!(
        "Add-DnsClientNrptRule -Namespace {} -NameServers {} -Comment '{NRPT_COMMENT}'",
        quoted(&mut dns.domains.iter().map(|d| format!(".{d}"))),
        quoted(&mut dns.servers.iter().cloned()),
    )
}

/// The PowerShell that removes every rule the agent added.
pub fn nrpt_remove_script() -> String {
    format!(
        "Get-DnsClientNrptRule | Where-Object {{ $_.Comment -eq '{NRPT_COMMENT}' }} | Remove-DnsClientNrptRule -Force"
    )
}

fn powershell(script: &str) -> Result<(), String> {
    let out = Command::new("powershell")
        .args(["-NoProfile", "-NonInteractive", "-Command", script])
        .output()
        .map_err(|e| format!("PowerShell: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).trim().to_owned())
    }
}

/// Applies split DNS on Windows (rules left by an earlier session first removed).
pub fn apply_windows(dns: &SplitDns) -> Result<(), String> {
    if !dns.wanted() {
        return Ok(());
    }
    let _ = powershell(&nrpt_remove_script());
    powershell(&nrpt_add_script(dns)).map_err(|e| {
        format!(
            "internal names ({}) are not resolved through the tunnel: the name-resolution policy could not be set ({e})",
            dns.domains.join(", ")
        )
    })
}

/// Undoes [`apply_windows`].
pub fn revert_windows() {
    let _ = powershell(&nrpt_remove_script());
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grant(dns: &[&str], domains: &[&str]) -> SplitDns {
        let owned = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        SplitDns::new(&owned(dns), &owned(domains)).expect("valid")
    }

    #[test]
    fn values_that_could_add_a_command_are_refused() {
        let one = |s: &str| vec![s.to_owned()];
        let domain = one("finances.gov.ma");
        let server = one("10.20.0.53");
        assert_eq!(
            SplitDns::new(&one("10.20.0.53; rm -rf /"), &domain),
            Err("DNS server")
        );
        assert_eq!(
            SplitDns::new(&server, &one("x.ma' ; Remove-Item C:\\")),
            Err("DNS domain")
        );
        assert_eq!(
            SplitDns::new(&server, &one("Finances.GOV.ma")),
            Err("DNS domain"),
            "not canonical"
        );
        assert!(SplitDns::new(&server, &[]).is_err());
        assert!(SplitDns::new(&[], &domain).is_err());
        assert_eq!(SplitDns::new(&[], &[]), Ok(SplitDns::default()));
    }

    #[test]
    fn only_the_listed_domains_are_routed_to_the_internal_resolvers() {
        let g = grant(
            &["10.20.0.53", "fd00:20::53"],
            &["finances.gov.ma", "ad.finances.gov.ma"],
        );
        assert_eq!(
            resolvectl_commands("wg0", &g),
            vec![
                vec!["dns", "wg0", "10.20.0.53", "fd00:20::53"],
                vec!["domain", "wg0", "~finances.gov.ma", "~ad.finances.gov.ma"],
                vec!["default-route", "wg0", "false"],
            ]
        );
        assert_eq!(
            wg_quick_lines(&g),
            "PostUp = resolvectl dns %i 10.20.0.53 fd00:20::53; resolvectl domain %i ~finances.gov.ma ~ad.finances.gov.ma; resolvectl default-route %i false\nPreDown = resolvectl revert %i\n"
        );
        assert_eq!(
            nrpt_add_script(&g),
            "Add-DnsClientNrptRule -Namespace '.finances.gov.ma','.ad.finances.gov.ma' -NameServers '10.20.0.53','fd00:20::53' -Comment 'ztgw-agent session'"
        );
    }

    #[test]
    fn a_grant_without_dns_changes_nothing() {
        let g = grant(&[], &[]);
        assert!(!g.wanted());
        assert_eq!(wg_quick_lines(&g), "");
        assert_eq!(apply_linux("wg0", &g), Ok(()));
        assert_eq!(apply_windows(&g), Ok(()));
    }
}

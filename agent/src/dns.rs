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
//! Every value comes from a grant checked by [`crate::connect::check_grant`] (resolvers
//! are IP addresses, domains letters, digits, hyphens and dots), so none can add a
//! command.

use std::process::{Command, Stdio};

use ztgw_pki::wire::SessionGrant;

/// The comment that marks the agent's Windows name-resolution rules.
pub const NRPT_COMMENT: &str = "ztgw-agent session";

/// What the grant asks for: nothing, or resolvers for domains.
pub fn wanted(grant: &SessionGrant) -> bool {
    !grant.dns.is_empty() && !grant.dns_domains.is_empty()
}

/// The `resolvectl` invocations that give `iface` the grant's resolvers for its domains
/// only (`~domain`: routing-only; no default route, so other names do not go there).
pub fn resolvectl_commands(iface: &str, grant: &SessionGrant) -> Vec<Vec<String>> {
    let mut dns = vec!["dns".to_owned(), iface.to_owned()];
    dns.extend(grant.dns.iter().cloned());
    let mut domain = vec!["domain".to_owned(), iface.to_owned()];
    domain.extend(grant.dns_domains.iter().map(|d| format!("~{d}")));
    vec![
        dns,
        domain,
        vec!["default-route".into(), iface.into(), "false".into()],
    ]
}

/// The same as wg-quick lines (`%i` is the interface), to put in a configuration file.
pub fn wg_quick_lines(grant: &SessionGrant) -> String {
    if !wanted(grant) {
        return String::new();
    }
    let commands: Vec<String> = resolvectl_commands("%i", grant)
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

/// Applies the grant's split DNS to `iface`. `Err` says, for the employee, why internal
/// names are not resolved through the tunnel (the tunnel itself is up).
pub fn apply_linux(iface: &str, grant: &SessionGrant) -> Result<(), String> {
    if !wanted(grant) {
        return Ok(());
    }
    if !resolved_runs() {
        return Err(format!(
            "internal names ({}) are not resolved through the tunnel: this laptop does not run systemd-resolved; reach internal services by address, or ask your IT unit",
            grant.dns_domains.join(", ")
        ));
    }
    for args in resolvectl_commands(iface, grant) {
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

/// The PowerShell that adds one name-resolution rule for the grant's domains.
pub fn nrpt_add_script(grant: &SessionGrant) -> String {
    let quoted = |items: &mut dyn Iterator<Item = String>| {
        items
            .map(|s| format!("'{s}'"))
            .collect::<Vec<_>>()
            .join(",")
    };
    format!(
        "Add-DnsClientNrptRule -Namespace {} -NameServers {} -Comment '{NRPT_COMMENT}'",
        quoted(&mut grant.dns_domains.iter().map(|d| format!(".{d}"))),
        quoted(&mut grant.dns.iter().cloned()),
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

/// Applies the grant's split DNS on Windows (rules left by an earlier session first
/// removed).
pub fn apply_windows(grant: &SessionGrant) -> Result<(), String> {
    if !wanted(grant) {
        return Ok(());
    }
    let _ = powershell(&nrpt_remove_script());
    powershell(&nrpt_add_script(grant)).map_err(|e| {
        format!(
            "internal names ({}) are not resolved through the tunnel: the name-resolution policy could not be set ({e})",
            grant.dns_domains.join(", ")
        )
    })
}

/// Undoes [`apply_windows`].
pub fn revert_windows() {
    let _ = powershell(&nrpt_remove_script());
}

#[cfg(test)]
mod tests {
    use ztgw_pki::wire::RedactedString;

    use super::*;

    fn grant(dns: &[&str], domains: &[&str]) -> SessionGrant {
        SessionGrant {
            session: "s-1".into(),
            role: "finance".into(),
            gateway_public_key: String::new(),
            endpoint: "gw:51820".into(),
            tunnel_address: "100.64.0.2".into(),
            tunnel_address6: None,
            preshared_key: RedactedString::new(String::new()),
            allowed_ips: vec!["10.20.0.53/32".into()],
            dns: dns.iter().map(|s| (*s).to_owned()).collect(),
            dns_domains: domains.iter().map(|s| (*s).to_owned()).collect(),
            keepalive_secs: 25,
            ends_at: String::new(),
            recheck_secs: 300,
        }
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
        assert!(!wanted(&g));
        assert_eq!(wg_quick_lines(&g), "");
        assert_eq!(apply_linux("wg0", &g), Ok(()));
        assert_eq!(apply_windows(&g), Ok(()));
    }
}

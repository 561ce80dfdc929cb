//! `ztgw-agent connect` and `disconnect`: admission with a fresh posture report, then the
//! standard WireGuard client configured with what the gateway granted, re-checks on
//! time, and the tunnel torn down when the session ends.
//!
//! The WireGuard client is driven with `wg` and `ip` on an existing interface (a
//! wireguard-go or kernel interface the employee's system provides), or a wg-quick file
//! is written instead.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde::{Deserialize, Serialize};
use ztgw_api::control::{
    AdmissionRequest, EndRequest, NonceRequest, NonceView, RecheckRequest, RecheckView,
    RedactedString, SessionGrant, WatchView, path,
};

use crate::client::ControlClient;
use crate::dns::SplitDns;
use crate::error::AgentError;
use crate::posture::{collect_for, profile_with};
use crate::renew::device_client;
use crate::state::AgentState;
use ztgw_pki::Existing;
use ztgw_posture::profile::Profile;

/// What the agent remembers of its session (no key material).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionRecord {
    pub session: String,
    pub role: String,
    pub tunnel_address: String,
    /// Dual stack: the IPv6 tunnel address.
    #[serde(default)]
    pub tunnel_address6: Option<String>,
    pub ends_at: String,
    pub interface: Option<String>,
}

/// Where the tunnel goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// An existing WireGuard interface, configured with `wg` and `ip`.
    Interface(String),
    /// A wg-quick configuration file (mode 0600).
    ConfigFile(PathBuf),
    /// WireGuard for Windows: the configuration written to this file (its name is the
    /// tunnel's) and installed as a tunnel service for the session's life.
    WindowsService(PathBuf),
}

/// WireGuard for Windows' command (`%ProgramFiles%\WireGuard\wireguard.exe`).
pub fn wireguard_windows() -> PathBuf {
    std::env::var_os("ProgramFiles")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(r"C:\Program Files"))
        .join("WireGuard")
        .join("wireguard.exe")
}

fn session_path(state: &AgentState) -> PathBuf {
    state.dir.join("session.json")
}

/// A fresh posture report for a new nonce, as JSON, and whether the gateway wants a
/// second-factor code with it. The nonce comes with the profile to collect for (a
/// gateway that does not send it is asked for it), over `client`'s connection, which the
/// admission or re-check then uses too.
async fn fresh_report(client: &ControlClient, root: &Path) -> Result<(String, bool), AgentError> {
    let nonce: NonceView = client.post(path::SESSION_NONCE, &NonceRequest {}).await?;
    let profile = match &nonce.profile {
        Some(p) => Profile::deserialize(p)
            .map_err(|e| AgentError::Protocol(format!("the posture profile: {e}")))?,
        None => profile_with(client).await?.1,
    };
    let report = collect_for(&profile, root.to_owned(), nonce.nonce);
    let json = serde_json::to_string(&report).map_err(|e| AgentError::Local(e.to_string()))?;
    Ok((json, nonce.second_factor))
}

/// Asks for a session: device certificate (mTLS), WireGuard key, fresh posture, and
/// (when the role requires it) a second-factor code from `code`.
pub async fn admit(
    state: &AgentState,
    posture_root: &Path,
    code: impl FnOnce() -> Option<String>,
) -> Result<SessionGrant, AgentError> {
    let record = state.record()?;
    let client = device_client(state)?;
    let (posture, wants_code) = fresh_report(&client, posture_root).await?;
    let grant: SessionGrant = client
        .post(
            path::SESSION,
            &AdmissionRequest {
                wg_public_key: record.wireguard_public_key.to_base64(),
                posture,
                second_factor: wants_code.then(code).flatten().map(RedactedString::new),
            },
        )
        .await?;
    check_grant(&grant)?;
    Ok(grant)
}

/// Longest free-text value accepted from the gateway (session ids, role names, times).
const MAX_TEXT: usize = 256;

/// Checks everything the gateway granted before any of it reaches `wg`, `ip` or a
/// wg-quick file (run as root): keys are base64 of 32 bytes, addresses and networks
/// parse, the endpoint is `HOST:PORT`, and no value holds a control character (a newline
/// in a wg-quick file would add lines of the gateway's choosing, such as `PostUp`).
pub fn check_grant(g: &SessionGrant) -> Result<(), AgentError> {
    let bad =
        |what: &str| AgentError::Protocol(format!("the gateway's answer has an invalid {what}"));
    for (what, v) in [
        ("session", g.session.as_str()),
        ("role", g.role.as_str()),
        ("end time", g.ends_at.as_str()),
    ] {
        if v.is_empty() || v.len() > MAX_TEXT || v.chars().any(char::is_control) {
            return Err(bad(what));
        }
    }
    for (what, key) in [
        ("gateway key", g.gateway_public_key.as_str()),
        ("pre-shared key", g.preshared_key.expose()),
    ] {
        if !is_key(key) {
            return Err(bad(what));
        }
    }
    if !is_endpoint(&g.endpoint) {
        return Err(bad("endpoint"));
    }
    g.tunnel_address
        .parse::<std::net::IpAddr>()
        .map_err(|_| bad("tunnel address"))?;
    if let Some(a6) = &g.tunnel_address6 {
        a6.parse::<std::net::Ipv6Addr>()
            .map_err(|_| bad("IPv6 tunnel address"))?;
    }
    check_networks(&g.allowed_ips).map_err(|_| bad("list of networks"))?;
    crate::dns::SplitDns::of_grant(g).map_err(bad)?;
    Ok(())
}

/// Base64 of exactly 32 bytes (a WireGuard key).
fn is_key(s: &str) -> bool {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD
        .decode(s)
        .is_ok_and(|k| k.len() == 32)
}

/// `HOST:PORT`, `[IPV6]:PORT`: a DNS name or an address, and a port.
fn is_endpoint(s: &str) -> bool {
    if s.parse::<std::net::SocketAddr>().is_ok() {
        return true;
    }
    let Some((host, port)) = s.rsplit_once(':') else {
        return false;
    };
    port.parse::<u16>().is_ok_and(|p| p > 0)
        && !host.is_empty()
        && host.len() <= 253
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-')
}

/// Networks as `ADDRESS/PREFIX`, or a host as `ADDRESS`.
fn check_networks(nets: &[String]) -> Result<(), ()> {
    for n in nets {
        let (addr, prefix) = n.split_once('/').unwrap_or((n.as_str(), "0"));
        let addr: std::net::IpAddr = addr.parse().map_err(|_| ())?;
        let prefix: u8 = prefix.parse().map_err(|_| ())?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        if prefix > max {
            return Err(());
        }
    }
    Ok(())
}

/// Re-submits posture for `session`.
pub async fn recheck(
    state: &AgentState,
    session: &str,
    posture_root: &Path,
    code: impl FnOnce() -> Option<String>,
) -> Result<RecheckView, AgentError> {
    let client = device_client(state)?;
    let (posture, wants_code) = fresh_report(&client, posture_root).await?;
    let view: RecheckView = client
        .post(
            path::SESSION_RECHECK,
            &RecheckRequest {
                session: session.to_owned(),
                posture,
                second_factor: wants_code.then(code).flatten().map(RedactedString::new),
            },
        )
        .await?;
    check_networks(&view.allowed_ips).map_err(|_| {
        AgentError::Protocol("the gateway's answer has an invalid list of networks".into())
    })?;
    Ok(view)
}

/// Waits (up to about 25 seconds) for the gateway to say that `session` is no longer
/// live; answers whether it still is, and if not, why it ended.
pub async fn watch(state: &AgentState, session: &str) -> Result<WatchView, AgentError> {
    device_client(state)?
        .post_heard(
            path::SESSION_WATCH,
            &EndRequest {
                session: session.to_owned(),
            },
            WATCH_SILENCE,
        )
        .await
}

/// How long a watch may hear nothing from the gateway (which sends a space every
/// `WATCH_HEARTBEAT_SECS` while it waits) before the gateway is taken for stopped.
pub const WATCH_SILENCE: std::time::Duration =
    std::time::Duration::from_secs(ztgw_api::control::WATCH_SILENCE_SECS);

/// Why a session ended, as the agent learnt it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ended {
    /// The gateway's reason, as the journal names it (`role-changed: hr`), when it said.
    pub reason: Option<String>,
    /// In a sentence, for the employee.
    pub sentence: String,
}

impl Ended {
    pub fn said(sentence: String) -> Self {
        Self {
            reason: None,
            sentence,
        }
    }

    /// The gateway ended it because the device's role changed: to be admitted again at
    /// once, under the new role.
    pub fn role_changed(&self) -> bool {
        self.reason
            .as_deref()
            .is_some_and(|r| r.starts_with("role-changed"))
    }

    /// The gateway in use stopped answering, and another is known: admitted again
    /// through it.
    pub fn gateway_unreachable(&self) -> bool {
        self.reason.as_deref() == Some(GATEWAY_UNREACHABLE)
    }

    /// The gateway stopped or restarted: nothing about this device changed, so it is
    /// admitted again as soon as the gateway answers.
    pub fn gateway_restarted(&self) -> bool {
        self.reason
            .as_deref()
            .is_some_and(|r| r == "gateway-stopped" || r == "gateway-restarted")
    }
}

/// The reason the agent gives itself when the gateway in use stops answering and
/// another gateway is known.
pub const GATEWAY_UNREACHABLE: &str = "gateway-unreachable";
/// Failures in a row to reach the gateway after which another is tried.
const UNREACHABLE_TRIES: u32 = 2;

/// Watches `session` until the gateway ends it or refuses this device; returns why. A
/// gateway that cannot be reached is asked again every `retry`. When other gateways are
/// known, the session is given up as [`GATEWAY_UNREACHABLE`] (to be admitted through
/// another) once the gateway failed [`UNREACHABLE_TRIES`] times in a row, or at once
/// when it fell silent ([`WATCH_SILENCE`] without a byte: a frozen process or a cut
/// link, which reset no connection).
pub async fn until_ended(state: &AgentState, session: &str, retry: std::time::Duration) -> Ended {
    let mut failures = 0;
    loop {
        let asked = std::time::Instant::now();
        match watch(state, session).await {
            Err(e @ AgentError::Unreachable { .. }) => {
                failures += 1;
                let silent = asked.elapsed() >= WATCH_SILENCE;
                let others = state.record().is_ok_and(|r| !r.other_addresses.is_empty());
                if others && (silent || failures >= UNREACHABLE_TRIES) {
                    return Ended {
                        reason: Some(GATEWAY_UNREACHABLE.into()),
                        sentence: format!("{e}; another gateway takes over"),
                    };
                }
                tokio::time::sleep(retry).await;
                continue;
            }
            Ok(v) if v.live => failures = 0,
            Ok(v) => {
                return match v.reason {
                    Some(r) => Ended {
                        sentence: format!("the gateway ended it ({})", explain_end(&r)),
                        reason: Some(r),
                    },
                    None => Ended::said("the gateway no longer knows it".to_owned()),
                };
            }
            Err(e) if e.is_final() => return Ended::said(e.to_string()),
            Err(_) => tokio::time::sleep(retry).await,
        }
    }
}

/// A session's end reason, as the journal names it, in words.
pub fn explain_end(reason: &str) -> String {
    let words = match reason.split(':').next().unwrap_or(reason) {
        "device-revoked" => "this device's access was revoked",
        "employee-revoked" => "your telework authorisation was ended",
        "incident" => "an incident was reported",
        "window-ended" => "your telework hours are over",
        "max-lifetime" => "the session reached its maximum length",
        "posture-recheck-failed" => "the device no longer complies",
        "posture-recheck-missed" => "the posture re-checks stopped arriving",
        "second-factor-failed" => "the second factor was not given again",
        "idle" => "no traffic for too long",
        "disconnected" => "it was disconnected",
        "replaced" => "a new connection of this device replaced it",
        "policy" => "the access policy changed",
        "role-changed" => "this device's role changed",
        "operator" => "the security unit ended it",
        "gateway-stopped" => "the gateway stopped",
        "gateway-restarted" => "the gateway restarted",
        _ => return reason.to_owned(),
    };
    format!("{words}: {reason}")
}

/// Ends the session at the gateway (G9). `Ok(None)` when there was none.
pub async fn disconnect(state: &AgentState) -> Result<Option<SessionRecord>, AgentError> {
    let Some(record) = session(state)? else {
        return Ok(None);
    };
    let ended: Result<serde_json::Value, AgentError> = device_client(state)?
        .post(
            path::SESSION_END,
            &EndRequest {
                session: record.session.clone(),
            },
        )
        .await;
    match ended {
        Ok(_) => {}
        // Already ended at the gateway: nothing left to end.
        Err(e) if e.code() == Some("session_unknown") => {}
        Err(e) => return Err(e),
    }
    if let Some(iface) = &record.interface {
        teardown(
            iface,
            &record.tunnel_address,
            record.tunnel_address6.as_deref(),
        );
    }
    forget(state);
    Ok(Some(record))
}

/// The session this device holds, if any.
pub fn session(state: &AgentState) -> Result<Option<SessionRecord>, AgentError> {
    match std::fs::read_to_string(session_path(state)) {
        Ok(t) => serde_json::from_str(&t)
            .map(Some)
            .map_err(|e| AgentError::Local(format!("session record: {e}"))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(AgentError::Local(format!("session record: {e}"))),
    }
}

pub fn remember(state: &AgentState, record: &SessionRecord) -> Result<(), AgentError> {
    let text = serde_json::to_vec_pretty(record).map_err(|e| AgentError::Local(e.to_string()))?;
    state.write_secret(&session_path(state), &text, Existing::Replace)
}

pub fn forget(state: &AgentState) {
    let _ = std::fs::remove_file(session_path(state));
}

/// The tunnel address with its host prefix (`/32` for IPv4, `/128` for IPv6).
pub fn host_address(addr: &str) -> String {
    match addr.parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V6(_)) => format!("{addr}/128"),
        _ => format!("{addr}/32"),
    }
}

/// Configures the tunnel as granted. Returns what the employee should know that did not
/// stop the tunnel (internal names that could not be set up).
pub fn configure(
    state: &AgentState,
    target: &Target,
    grant: &SessionGrant,
) -> Result<Vec<String>, AgentError> {
    match target {
        Target::Interface(iface) => {
            configure_interface(state, iface, grant)?;
            Ok(crate::dns::apply_linux(iface, &split_dns(grant))
                .err()
                .into_iter()
                .collect())
        }
        Target::ConfigFile(file) => write_config(state, file, grant).map(|()| Vec::new()),
        Target::WindowsService(file) => {
            write_config(state, file, grant)?;
            let exe = wireguard_windows();
            // A tunnel left by an earlier session is replaced.
            quietly(
                Command::new(&exe)
                    .arg("/uninstalltunnelservice")
                    .arg(tunnel_name(file)),
            );
            run(Command::new(&exe).arg("/installtunnelservice").arg(file)).map_err(|e| {
                AgentError::Local(format!(
                    "{e}: install WireGuard for Windows (https://www.wireguard.com/install/) and run the agent as an administrator"
                ))
            })?;
            Ok(crate::dns::apply_windows(&split_dns(grant))
                .err()
                .into_iter()
                .collect())
        }
    }
}

/// The grant's resolvers (checked with the grant by [`check_grant`]).
fn split_dns(grant: &SessionGrant) -> SplitDns {
    SplitDns::of_grant(grant).unwrap_or_default()
}

/// Gives the tunnel the resolvers of the role a re-check moved the session to (its
/// quarantine role, or back), when they differ from `now`'s. Returns what the employee
/// should know. A wg-quick file's commands ran when the employee brought it up: it keeps
/// them (the gateway's rules still decide what the resolvers may be asked).
pub fn change_dns(target: &Target, now: &SplitDns, to: &SplitDns) -> Option<String> {
    if now == to {
        return None;
    }
    match target {
        Target::Interface(iface) => {
            crate::dns::revert_linux(iface);
            crate::dns::apply_linux(iface, to).err()
        }
        Target::WindowsService(_) => {
            crate::dns::revert_windows();
            crate::dns::apply_windows(to).err()
        }
        Target::ConfigFile(_) => None,
    }
}

/// The tunnel WireGuard for Windows names after the configuration file.
fn tunnel_name(file: &Path) -> String {
    file.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "ztgw".into())
}

/// Takes down a session's tunnel, whatever carried it.
pub fn teardown_target(target: &Target, tunnel_address: &str, tunnel_address6: Option<&str>) {
    match target {
        Target::Interface(i) => teardown(i, tunnel_address, tunnel_address6),
        Target::ConfigFile(f) => teardown_config(f),
        Target::WindowsService(f) => {
            crate::dns::revert_windows();
            quietly(
                Command::new(wireguard_windows())
                    .arg("/uninstalltunnelservice")
                    .arg(tunnel_name(f)),
            );
            let _ = std::fs::remove_file(f);
        }
    }
}

fn configure_interface(
    state: &AgentState,
    iface: &str,
    grant: &SessionGrant,
) -> Result<(), AgentError> {
    // wg reads keys from files; the pre-shared key goes to a 0600 file in the state
    // directory for the moment it takes, then is removed.
    let psk_file = state.dir.join("session.psk");
    state.write_secret(
        &psk_file,
        format!("{}\n", grant.preshared_key.expose()).as_bytes(),
        Existing::Replace,
    )?;
    let result = (|| {
        run(Command::new("wg")
            .args(["set", iface, "private-key"])
            .arg(state.wireguard_key()))?;
        run(Command::new("wg")
            .args([
                "set",
                iface,
                "peer",
                &grant.gateway_public_key,
                "preshared-key",
            ])
            .arg(&psk_file)
            .args(["endpoint", &grant.endpoint])
            .args(["allowed-ips", &grant.allowed_ips.join(",")])
            .args(["persistent-keepalive", &grant.keepalive_secs.to_string()]))?;
        for addr in std::iter::once(&grant.tunnel_address).chain(&grant.tunnel_address6) {
            run(Command::new("ip").args([
                "address",
                "replace",
                &host_address(addr),
                "dev",
                iface,
            ]))?;
        }
        run(Command::new("ip").args(["link", "set", iface, "up"]))?;
        for net in &grant.allowed_ips {
            run(Command::new("ip").args(["route", "replace", net, "dev", iface]))?;
        }
        Ok(())
    })();
    let _ = std::fs::remove_file(&psk_file);
    result
}

/// Routes the role's networks after a role change (quarantine or back).
pub fn reroute(iface: &str, gateway_key: &str, allowed: &[String]) -> Result<(), AgentError> {
    run(Command::new("wg").args([
        "set",
        iface,
        "peer",
        gateway_key,
        "allowed-ips",
        &allowed.join(","),
    ]))?;
    for net in allowed {
        run(Command::new("ip").args(["route", "replace", net, "dev", iface]))?;
    }
    Ok(())
}

/// Removes the session's address (and with it its routes) and the gateway peer. Quiet:
/// what is already gone (another `disconnect` took it down) is not an error.
pub fn teardown(iface: &str, tunnel_address: &str, tunnel_address6: Option<&str>) {
    crate::dns::revert_linux(iface);
    for addr in std::iter::once(tunnel_address).chain(tunnel_address6) {
        quietly(Command::new("ip").args(["address", "del", &host_address(addr), "dev", iface]));
    }
    if let Ok(out) = Command::new("wg").args(["show", iface, "peers"]).output() {
        for peer in String::from_utf8_lossy(&out.stdout).split_whitespace() {
            quietly(Command::new("wg").args(["set", iface, "peer", peer, "remove"]));
        }
    }
    quietly(Command::new("ip").args(["route", "flush", "dev", iface]));
}

/// Takes down the tunnel of a wg-quick file written for the session (if it is up) and
/// removes the file: its keys are of no use once the session ended.
pub fn teardown_config(file: &Path) {
    quietly(Command::new("wg-quick").arg("down").arg(file));
    let _ = std::fs::remove_file(file);
}

fn quietly(cmd: &mut Command) {
    let _ = cmd
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status();
}

fn write_config(state: &AgentState, file: &Path, grant: &SessionGrant) -> Result<(), AgentError> {
    use base64::Engine as _;
    let key = state.wireguard_private()?;
    let text = zeroize::Zeroizing::new(format!(
        "# ztgw session {session}, role {role}, until {ends}\n\
         [Interface]\nPrivateKey = {key}\nAddress = {addr}\n{dns}\n\
         [Peer]\nPublicKey = {gw}\nPresharedKey = {psk}\nEndpoint = {endpoint}\n\
         AllowedIPs = {allowed}\nPersistentKeepalive = {keepalive}\n",
        session = grant.session,
        role = grant.role,
        ends = grant.ends_at,
        key = base64::engine::general_purpose::STANDARD.encode(key.expose()),
        addr = std::iter::once(&grant.tunnel_address)
            .chain(&grant.tunnel_address6)
            .map(|a| host_address(a))
            .collect::<Vec<_>>()
            .join(", "),
        dns = crate::dns::wg_quick_lines(&split_dns(grant)),
        gw = grant.gateway_public_key,
        psk = grant.preshared_key.expose(),
        endpoint = grant.endpoint,
        allowed = grant.allowed_ips.join(", "),
        keepalive = grant.keepalive_secs,
    ));
    state.write_secret(file, text.as_bytes(), Existing::Replace)
}

fn run(cmd: &mut Command) -> Result<(), AgentError> {
    let out = cmd.output().map_err(|e| {
        AgentError::Local(format!(
            "running {cmd:?}: {e} (install wireguard-tools and iproute2)"
        ))
    })?;
    if out.status.success() {
        Ok(())
    } else {
        Err(AgentError::Local(format!(
            "{cmd:?} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grant() -> SessionGrant {
        SessionGrant {
            session: "s-0123".into(),
            role: "finance".into(),
            gateway_public_key: "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=".into(),
            endpoint: "gw.example.gov.ma:51820".into(),
            tunnel_address: "100.64.0.2".into(),
            tunnel_address6: Some("fd00:64::2".into()),
            preshared_key: RedactedString::new(
                "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=".into(),
            ),
            allowed_ips: vec![
                "10.20.0.0/16".into(),
                "fd00::/64".into(),
                "10.20.0.53".into(),
            ],
            dns: vec!["10.20.0.53".into()],
            dns_domains: vec!["finances.gov.ma".into()],
            keepalive_secs: 25,
            ends_at: "2026-11-30T18:00:00Z".into(),
            recheck_secs: 300,
        }
    }

    #[test]
    fn a_sound_grant_passes() {
        check_grant(&grant()).expect("sound");
        let mut g = grant();
        g.endpoint = "[2001:db8::1]:51820".into();
        check_grant(&g).expect("IPv6 endpoint");
    }

    #[test]
    fn values_that_would_inject_into_a_wg_quick_file_are_refused() {
        type Edit = Box<dyn Fn(&mut SessionGrant)>;
        let cases: Vec<(&str, Edit)> = vec![
            (
                "role",
                Box::new(|g| g.role = "finance\nPostUp = rm -rf /".into()),
            ),
            (
                "session",
                Box::new(|g| g.session = "s\r\n[Interface]".into()),
            ),
            (
                "endpoint",
                Box::new(|g| g.endpoint = "gw:51820\nPostUp = id".into()),
            ),
            ("endpoint", Box::new(|g| g.endpoint = "gw".into())),
            (
                "key",
                Box::new(|g| g.gateway_public_key = "AAAA\nPostUp = id".into()),
            ),
            (
                "psk",
                Box::new(|g| g.preshared_key = RedactedString::new("short".into())),
            ),
            (
                "address",
                Box::new(|g| g.tunnel_address = "100.64.0.2/32\nDNS=1".into()),
            ),
            (
                "address",
                Box::new(|g| g.tunnel_address6 = Some("100.64.0.3".into())),
            ),
            (
                "networks",
                Box::new(|g| g.allowed_ips = vec!["10.0.0.0/8, 0.0.0.0/0".into()]),
            ),
            (
                "networks",
                Box::new(|g| g.allowed_ips = vec!["10.0.0.0/33".into()]),
            ),
            (
                "dns",
                Box::new(|g| g.dns = vec!["1.1.1.1\nPostUp = id".into()]),
            ),
            (
                "dns domain",
                Box::new(|g| g.dns_domains = vec!["gov.ma; rm -rf /".into()]),
            ),
            (
                "dns domain",
                Box::new(|g| g.dns_domains = vec!["gov.ma\nPostUp = id".into()]),
            ),
            (
                "dns domain",
                Box::new(|g| g.dns_domains = vec!["~.".into()]),
            ),
            ("dns domain", Box::new(|g| g.dns_domains = vec![])),
        ];
        for (what, edit) in cases {
            let mut g = grant();
            edit(&mut g);
            assert!(check_grant(&g).is_err(), "{what} accepted: {g:?}");
        }
    }
}

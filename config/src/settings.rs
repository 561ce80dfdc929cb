//! `gateway.toml`: the gateway's settings.
//!
//! [`Settings::load`] reads and checks the file; [`template`] writes the commented file
//! that `ztgw init` creates. Relative paths are relative to the directory holding the
//! file, so a state directory can be moved as a whole.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::duration::HumanDuration;
use crate::location::{ConfigError, read_config_file};

mod export;
pub use export::{ExportKind, ExportTarget, MAX_BATCH as MAX_EXPORT_BATCH};

/// Largest settings file accepted.
pub const MAX_SETTINGS_LEN: u64 = 1024 * 1024;

/// The checked settings of one gateway.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// The file these settings came from.
    pub file: PathBuf,
    pub gateway: GatewaySection,
    pub control: ControlSection,
    pub enrolment: EnrolmentSection,
    pub wireguard: WireguardSection,
    pub admin: AdminSection,
    pub policy: PolicySection,
    pub journal: JournalSection,
    pub metrics: MetricsSection,
    pub incidents: IncidentsSection,
    /// `[directory]`: the directory (Active Directory, LDAP) that decides who may
    /// telework, when there is one.
    pub directory: Option<DirectorySection>,
    /// `[export.NAME]`: receivers the journal is streamed to, by name.
    pub export: std::collections::BTreeMap<String, ExportTarget>,
    /// `[registry]`: a PostgreSQL registry shared by several gateways; absent, the
    /// registry is SQLite in the state directory.
    pub registry: Option<RegistrySection>,
    /// `[console]`: the web console for security units and auditors; off unless its
    /// section gives it an address.
    pub console: Option<ConsoleSection>,
}

/// `[console]`: the web console (HTTPS with the gateway's certificate; operators sign in
/// with the client certificate of `ztgw operator add`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsoleSection {
    /// Where the console listens, e.g. "10.0.0.1:9443" on the administration network.
    /// The address must be one of `gateway.names` (the certificate's names) for browsers.
    pub listen: SocketAddr,
    /// Most connections open at once (browsers open a few each).
    #[serde(default = "defaults::console_max_connections")]
    pub max_connections: usize,
}

/// `[registry]`: the registry in PostgreSQL.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegistrySection {
    /// A PostgreSQL connection string or URL, without the password:
    /// `postgresql://ztgw@db.finances.gov.ma/ztgw` or `host=/run/postgresql dbname=ztgw`.
    pub url: String,
    /// A file (0600) holding the database user's password, relative to this file's
    /// directory.
    #[serde(default)]
    pub password_file: Option<PathBuf>,
    /// The CA that signs the database server's certificate (PEM), relative to this
    /// file's directory: with it, connections use TLS and check the server's name;
    /// without it they do not use TLS (a Unix socket, or a network of its own).
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// Connections kept open to the database.
    #[serde(default = "defaults::registry_pool_size")]
    pub pool_size: usize,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GatewaySection {
    /// The gateway's names (DNS names or IP addresses) as its certificate carries them.
    pub names: Vec<String>,
    /// The state directory (CA, keys, registry, revocation list, admin socket): the
    /// service's own. Relative to the settings file's directory.
    #[serde(default = "dot")]
    pub state_dir: PathBuf,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ControlSection {
    pub listen: SocketAddr,
    /// `host:port` that invitations tell agents to reach.
    pub advertise: String,
    #[serde(default = "defaults::max_request_bytes")]
    pub max_request_bytes: usize,
    #[serde(default = "defaults::max_connections")]
    pub max_connections: usize,
    #[serde(default = "defaults::handshakes_per_second")]
    pub handshakes_per_second_per_source: u32,
    #[serde(default = "defaults::handshake_burst")]
    pub handshake_burst: u32,
    #[serde(default = "defaults::enrolments_per_minute")]
    pub enrolments_per_minute_per_source: u32,
    #[serde(default = "defaults::enrolment_burst")]
    pub enrolment_burst: u32,
    /// Admission requests (nonce, admission, re-check) per second from one address; the
    /// burst is twice this.
    #[serde(default = "defaults::admissions_per_second")]
    pub admissions_per_second_per_source: u32,
    #[serde(default = "defaults::handshake_timeout")]
    pub handshake_timeout: HumanDuration,
    #[serde(default = "defaults::request_timeout")]
    pub request_timeout: HumanDuration,
    /// Connections kept for callers that present a client certificate: connections
    /// without one (in their TLS handshake, or enrolling) never take the last ones.
    #[serde(default = "defaults::reserved_connections")]
    pub reserved_connections: usize,
    /// Connections without a client certificate (including those still in their TLS
    /// handshake) from one source: an IPv4 address, or an IPv6 /64.
    #[serde(default = "defaults::unauthenticated_connections_per_source")]
    pub unauthenticated_connections_per_source: usize,
    /// A connection with no request under way and nothing sent for this long is closed.
    #[serde(default = "defaults::idle_timeout")]
    pub idle_timeout: HumanDuration,
    /// A connection is closed (gracefully) after this long, whatever it does.
    #[serde(default = "defaults::connection_lifetime")]
    pub connection_lifetime: HumanDuration,
    /// Request body bytes held in memory at once, over all connections.
    #[serde(default = "defaults::max_buffered_body_bytes")]
    pub max_buffered_body_bytes: usize,
    /// Wrong second-factor codes in a row before a device is locked.
    #[serde(default = "defaults::second_factor_failures")]
    pub second_factor_failures: u32,
    /// How long a device stays locked (unless `ztgw device unlock` lifts it sooner).
    #[serde(default = "defaults::second_factor_lockout")]
    pub second_factor_lockout: HumanDuration,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnrolmentSection {
    #[serde(default = "defaults::certificate_validity")]
    pub certificate_validity: HumanDuration,
    #[serde(default = "defaults::invitation_validity")]
    pub invitation_validity: HumanDuration,
    #[serde(default)]
    pub require_device_approval: bool,
    /// How long a published revocation list stays valid; it is re-signed at half of it.
    #[serde(default = "defaults::crl_validity")]
    pub crl_validity: HumanDuration,
    /// A device may renew its certificate at most once in this long.
    #[serde(default = "defaults::renewal_interval")]
    pub renewal_interval: HumanDuration,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WireguardSection {
    /// `host:port` that WireGuard clients send to.
    pub endpoint: String,
    #[serde(default = "defaults::wg_port")]
    pub listen_port: u16,
    /// Whether this gateway runs the data plane (and so admits sessions). Without it,
    /// every admission is refused as unavailable.
    #[serde(default = "defaults::yes")]
    pub enabled: bool,
    /// The TUN interface of the data plane.
    #[serde(default = "defaults::wg_interface")]
    pub interface: String,
    /// Laptops' tunnel addresses come from this network, or from one IPv4 and one IPv6
    /// network (`["100.64.0.0/16", "fd00:64::/64"]`: each session gets one address of
    /// each); the gateway takes the first address of each. See
    /// [`WireguardSection::tunnel_networks`].
    #[serde(default = "defaults::tunnel_network", deserialize_with = "one_or_many")]
    pub tunnel_network: Vec<String>,
    #[serde(default = "defaults::wg_mtu")]
    pub mtu: u16,
    /// Worker pairs (UDP socket + TUN queue); 0 means one per core.
    #[serde(default)]
    pub workers: usize,
    /// TUN offload (segmentation and coalescing in the kernel).
    #[serde(default = "defaults::yes")]
    pub offload: bool,
    /// Most peers (admitted sessions) installed at once.
    #[serde(default = "defaults::max_peers")]
    pub max_peers: usize,
    /// Handshake initiations per second, all sources, before cookies are required.
    #[serde(default = "defaults::handshakes_before_cookies")]
    pub handshakes_before_cookies: u64,
    /// Handshake initiations per second from one source address.
    #[serde(default = "defaults::wg_handshakes_per_source")]
    pub handshakes_per_second_per_source: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminSection {
    #[serde(default = "defaults::admin_socket")]
    pub socket: PathBuf,
    /// Members of this group may use the admin socket besides root.
    #[serde(default = "defaults::admin_group")]
    pub group: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicySection {
    #[serde(default = "defaults::policy_file")]
    pub file: PathBuf,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JournalSection {
    /// Where the audit journal's segments are kept.
    #[serde(default = "defaults::journal_dir")]
    pub dir: PathBuf,
    /// A segment is closed and a new one started past this size...
    #[serde(default = "defaults::segment_max_bytes")]
    pub segment_max_bytes: u64,
    /// ...or this age.
    #[serde(default = "defaults::segment_max_age")]
    pub segment_max_age: HumanDuration,
    /// Segments whose newest event is older than this are deleted (G15).
    #[serde(default = "defaults::retention")]
    pub retention: HumanDuration,
    /// Besides root, members of this group may read the journal.
    #[serde(default = "defaults::auditors_group")]
    pub auditors_group: String,
    /// Below this much free space on the journal's filesystem (bytes), the gateway warns
    /// (log and metric) before the journal fills it.
    #[serde(default = "defaults::free_space_warning")]
    pub free_space_warning: u64,
}

/// Which directory server: Active Directory resolves nested groups itself (its in-chain
/// matching rule); other LDAP servers' groups are walked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DirectoryKind {
    ActiveDirectory,
    Ldap,
}

/// `[directory]`: where employees and their telework groups are kept (G1, G3).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DirectorySection {
    pub kind: DirectoryKind,
    /// Tried in order: `ldaps://HOST[:PORT]`, or `ldap://HOST[:PORT]` always upgraded with
    /// StartTLS (never plain).
    pub urls: Vec<String>,
    /// The CA that signs the directory servers' certificates (PEM), relative to this
    /// file's directory.
    pub ca_file: PathBuf,
    /// The account the gateway binds as, and the file (0600) holding its password,
    /// relative to this file's directory.
    pub bind_dn: String,
    pub bind_password_file: PathBuf,
    /// Where employees are searched, and which entries are employees.
    pub base_dn: String,
    #[serde(default = "defaults::directory_user_filter")]
    pub user_filter: String,
    /// The attribute holding the employee id (`sAMAccountName`, `employeeID`, `uid`).
    pub id_attribute: String,
    /// The entries whose account is disabled (Active Directory's `userAccountControl` bit
    /// 2 by default; an attribute of your choice elsewhere, e.g. `(employeeType=disabled)`).
    #[serde(default)]
    pub disabled_filter: Option<String>,
    /// How often the gateway reads the directory.
    #[serde(default = "defaults::directory_sync_interval")]
    pub sync_interval: HumanDuration,
    /// How long one connection, bind or search may take.
    #[serde(default = "defaults::directory_timeout")]
    pub timeout: HumanDuration,
    /// A sync that would end the telework of more than this share (percent) of the
    /// employees with telework is refused (a directory answering nothing revokes no one).
    #[serde(default = "defaults::directory_max_revoke_percent")]
    pub max_revoke_percent: u8,
    /// At enrolment, besides the invitation, the employee proves who they are with their
    /// directory password (checked by a bind as the invitation's employee).
    #[serde(default)]
    pub require_directory_login: bool,
    /// Role → the directory group (DN) whose members, directly or through nested groups,
    /// telework with that role.
    pub roles: std::collections::BTreeMap<String, String>,
}

/// A string, or a list of strings.
fn one_or_many<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    Ok(match OneOrMany::deserialize(d)? {
        OneOrMany::One(s) => vec![s],
        OneOrMany::Many(v) => v,
    })
}

impl WireguardSection {
    /// The tunnel networks: the primary one (IPv4 when there is one) and, for dual
    /// stack, the IPv6 one. A session's IPv6 address is the IPv6 network's address at
    /// the same offset as its primary address, so the IPv6 network must be at least as
    /// large.
    pub fn tunnel_networks(
        &self,
    ) -> Result<(crate::policy::Network, Option<crate::policy::Network>), String> {
        use crate::policy::Network;
        let mut v4 = None;
        let mut v6 = None;
        for text in &self.tunnel_network {
            let n = Network::parse(text)?;
            let slot = match n {
                Network::V4 { prefix, .. } if prefix > 30 => {
                    return Err(format!("{text} is too small (at most a /30 for IPv4)"));
                }
                Network::V6 { prefix, .. } if prefix > 126 => {
                    return Err(format!("{text} is too small (at most a /126 for IPv6)"));
                }
                Network::V4 { .. } => &mut v4,
                Network::V6 { .. } => &mut v6,
            };
            if slot.replace(n).is_some() {
                return Err("give at most one IPv4 and one IPv6 network".into());
            }
        }
        match (v4, v6) {
            (None, None) => Err("give one network, or one IPv4 and one IPv6 network".into()),
            (Some(a), None) | (None, Some(a)) => Ok((a, None)),
            (Some(a), Some(b)) => {
                if 128 - u32::from(b.prefix()) < 32 - u32::from(a.prefix()) {
                    return Err(format!(
                        "the IPv6 network (/{}) must hold as many addresses as the IPv4 one (/{}): use at most a /{}",
                        b.prefix(),
                        a.prefix(),
                        96 + u32::from(a.prefix())
                    ));
                }
                Ok((a, Some(b)))
            }
        }
    }
}

impl DirectorySection {
    /// The filter matching disabled accounts, the kind's default when not set.
    pub fn disabled_filter(&self) -> Option<&str> {
        match (&self.disabled_filter, self.kind) {
            (Some(f), _) => Some(f.as_str()),
            (None, DirectoryKind::ActiveDirectory) => {
                Some("(userAccountControl:1.2.840.113556.1.4.803:=2)")
            }
            (None, DirectoryKind::Ldap) => None,
        }
    }
}

/// `[incidents]`: who is told when an incident is reported (G13).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IncidentsSection {
    /// A program and its arguments (no shell), run for each incident with the incident
    /// as JSON on its standard input: e.g. a script that mails the security unit or posts
    /// to a webhook with curl. Empty: no notification.
    #[serde(default)]
    pub notify_command: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsSection {
    /// Where Prometheus metrics (`/metrics`) and the health check (`/health`) are served,
    /// plain HTTP: keep it on a local or management address.
    #[serde(default = "defaults::metrics_listen")]
    pub listen: SocketAddr,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSettings {
    gateway: GatewaySection,
    control: ControlSection,
    #[serde(default)]
    enrolment: Option<EnrolmentSection>,
    wireguard: WireguardSection,
    #[serde(default)]
    admin: Option<AdminSection>,
    #[serde(default)]
    policy: Option<PolicySection>,
    #[serde(default)]
    journal: Option<JournalSection>,
    #[serde(default)]
    metrics: Option<MetricsSection>,
    #[serde(default)]
    incidents: Option<IncidentsSection>,
    #[serde(default)]
    directory: Option<DirectorySection>,
    #[serde(default)]
    export: std::collections::BTreeMap<String, ExportTarget>,
    #[serde(default)]
    registry: Option<RegistrySection>,
    #[serde(default)]
    console: Option<ConsoleSection>,
}

impl Settings {
    /// Reads and checks `path`.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = read_config_file(path, MAX_SETTINGS_LEN)?;
        Self::parse(path, &text)
    }

    /// Checks `text`, reporting mistakes against `path`.
    pub fn parse(path: &Path, text: &str) -> Result<Self, ConfigError> {
        let raw: RawSettings =
            toml::from_str(text).map_err(|e| ConfigError::from_toml(path, text, &e))?;
        let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
        let mut s = Self {
            file: path.to_owned(),
            gateway: raw.gateway,
            control: raw.control,
            enrolment: raw.enrolment.unwrap_or_else(defaults::enrolment),
            wireguard: raw.wireguard,
            admin: raw.admin.unwrap_or_else(defaults::admin),
            policy: raw.policy.unwrap_or_else(defaults::policy),
            journal: raw.journal.unwrap_or_else(defaults::journal),
            metrics: raw.metrics.unwrap_or_else(|| MetricsSection {
                listen: defaults::metrics_listen(),
            }),
            incidents: raw.incidents.unwrap_or_default(),
            directory: raw.directory,
            export: raw.export,
            registry: raw.registry,
            console: raw.console,
        };
        // The policy is configuration, beside these settings; the admin socket and the
        // journal are the service's, in its state directory.
        s.gateway.state_dir = base.join(&s.gateway.state_dir);
        let state = s.gateway.state_dir.clone();
        s.admin.socket = state.join(&s.admin.socket);
        s.policy.file = base.join(&s.policy.file);
        s.journal.dir = state.join(&s.journal.dir);
        if let Some(d) = &mut s.directory {
            d.ca_file = base.join(&d.ca_file);
            d.bind_password_file = base.join(&d.bind_password_file);
        }
        for t in s.export.values_mut() {
            t.resolve(&base);
        }
        if let Some(r) = &mut s.registry {
            for p in [&mut r.password_file, &mut r.ca_file].into_iter().flatten() {
                *p = base.join(&*p);
            }
        }
        s.check(text)?;
        Ok(s)
    }

    fn check(&self, text: &str) -> Result<(), ConfigError> {
        let at = |key: &str, msg: String| {
            let span = text.find(key).map(|start| start..start + key.len());
            ConfigError::at(&self.file, text, span, msg)
        };
        if self.gateway.names.is_empty() {
            return Err(at(
                "names",
                "gateway.names must list at least one name".into(),
            ));
        }
        if !is_host_port(&self.control.advertise) {
            return Err(at(
                "advertise",
                "control.advertise must be HOST:PORT".into(),
            ));
        }
        if !is_host_port(&self.wireguard.endpoint) {
            return Err(at(
                "endpoint",
                "wireguard.endpoint must be HOST:PORT".into(),
            ));
        }
        if let Err(e) = self.wireguard.tunnel_networks() {
            return Err(at(
                "tunnel_network",
                format!("wireguard.tunnel_network: {e}"),
            ));
        }
        if !(1280..=9000).contains(&self.wireguard.mtu) {
            return Err(at(
                "mtu",
                "wireguard.mtu must be between 1280 and 9000".into(),
            ));
        }
        if self.wireguard.interface.is_empty() || self.wireguard.interface.len() > 15 {
            return Err(at(
                "interface",
                "wireguard.interface must be 1 to 15 characters (a Linux interface name)".into(),
            ));
        }
        if self.journal.segment_max_bytes < 4096 {
            return Err(at(
                "segment_max_bytes",
                "journal.segment_max_bytes must be at least 4096".into(),
            ));
        }
        if self.control.reserved_connections >= self.control.max_connections {
            return Err(at(
                "reserved_connections",
                format!(
                    "control.reserved_connections ({}) must be less than control.max_connections ({})",
                    self.control.reserved_connections, self.control.max_connections
                ),
            ));
        }
        if let Some(console) = &self.console
            && console.max_connections == 0
        {
            // The key as written in [console], not [control]'s of the same name.
            let section = text.find("[console]").unwrap_or(0);
            let span = text[section..]
                .find("max_connections")
                .map(|at| section + at..section + at + "max_connections".len());
            return Err(ConfigError::at(
                &self.file,
                text,
                span,
                "console.max_connections must be at least 1",
            ));
        }
        if self.control.second_factor_failures == 0 {
            return Err(at(
                "second_factor_failures",
                "control.second_factor_failures must be at least 1".into(),
            ));
        }
        if self.control.unauthenticated_connections_per_source == 0 {
            return Err(at(
                "unauthenticated_connections_per_source",
                "control.unauthenticated_connections_per_source must be at least 1".into(),
            ));
        }
        if self.control.max_buffered_body_bytes < self.control.max_request_bytes {
            return Err(at(
                "max_buffered_body_bytes",
                "control.max_buffered_body_bytes must be at least control.max_request_bytes".into(),
            ));
        }
        if self.control.max_request_bytes < 4096 {
            return Err(at(
                "max_request_bytes",
                "control.max_request_bytes must be at least 4096".into(),
            ));
        }
        if let Some(d) = &self.directory {
            check_directory(d, &at)?;
        }
        export::check(&self.export, &self.file, text)?;
        if let Some(r) = &self.registry {
            // Keys are found in the [registry] table (others may have a `url`).
            let at = |key: &str, msg: String| {
                let table = crate::location::table_start(text, "[registry]").unwrap_or(0);
                let span = text[table..]
                    .find(&format!("\n{key}"))
                    .map(|i| table + i + 1..table + i + 1 + key.len());
                ConfigError::at(&self.file, text, span, msg)
            };
            let url = r.url.trim();
            if url.is_empty() {
                return Err(at("url", "registry.url is empty".into()));
            }
            let has_password = url.contains("password=")
                || url
                    .split_once("://")
                    .and_then(|(_, rest)| rest.split(['@', '/']).next().map(|u| (u, rest)))
                    .is_some_and(|(userinfo, rest)| rest.contains('@') && userinfo.contains(':'));
            if has_password {
                return Err(at(
                    "url",
                    "registry.url holds a password: put it in a file of its own (registry.password_file, mode 0600)".into(),
                ));
            }
            if !(1..=64).contains(&r.pool_size) {
                return Err(at(
                    "pool_size",
                    "registry.pool_size must be between 1 and 64".into(),
                ));
            }
        }
        Ok(())
    }

    /// Paths of the files in the state directory.
    pub fn state(&self) -> StatePaths {
        StatePaths::new(&self.gateway.state_dir)
    }
}

/// The files of a state directory, by role. The configuration (`gateway.toml` and the
/// policy) is not among them: it may live elsewhere, read-only to the service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatePaths {
    pub dir: PathBuf,
}

impl StatePaths {
    pub fn new(dir: &Path) -> Self {
        Self {
            dir: dir.to_owned(),
        }
    }
    pub fn ca_cert(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }
    pub fn ca_key(&self) -> PathBuf {
        self.dir.join("ca.key")
    }
    pub fn server_cert(&self) -> PathBuf {
        self.dir.join("server.pem")
    }
    pub fn server_key(&self) -> PathBuf {
        self.dir.join("server.key")
    }
    pub fn wireguard_key(&self) -> PathBuf {
        self.dir.join("wireguard.key")
    }
    pub fn wireguard_public(&self) -> PathBuf {
        self.dir.join("wireguard.pub")
    }
    pub fn crl(&self) -> PathBuf {
        self.dir.join("crl.pem")
    }
    /// Emergency schedule overrides an older gateway kept (moved into the registry).
    pub fn overrides(&self) -> PathBuf {
        self.dir.join("overrides.json")
    }
    /// Revocations made while the registry could not be reached, waiting for it.
    pub fn queued_revocations(&self) -> PathBuf {
        self.dir.join("queued-revocations.json")
    }
    pub fn registry(&self) -> PathBuf {
        self.dir.join("registry.db")
    }
    pub fn journal_key(&self) -> PathBuf {
        self.dir.join("journal.key")
    }
    pub fn journal_public(&self) -> PathBuf {
        self.dir.join("journal.pub")
    }
}

fn check_directory(
    d: &DirectorySection,
    at: &dyn Fn(&str, String) -> ConfigError,
) -> Result<(), ConfigError> {
    if d.urls.is_empty() {
        return Err(at(
            "urls",
            "directory.urls must list at least one server".into(),
        ));
    }
    for url in &d.urls {
        let rest = url
            .strip_prefix("ldaps://")
            .or_else(|| url.strip_prefix("ldap://"));
        let host = rest.map(|r| r.trim_end_matches('/'));
        if !host.is_some_and(|h| !h.is_empty() && !h.contains(['/', ' ', '?'])) {
            return Err(at(
                url,
                format!(
                    "directory.urls: {url:?} must be ldaps://HOST[:PORT] or ldap://HOST[:PORT] (upgraded with StartTLS)"
                ),
            ));
        }
    }
    for (key, value) in [
        ("bind_dn", &d.bind_dn),
        ("base_dn", &d.base_dn),
        ("id_attribute", &d.id_attribute),
    ] {
        if value.trim().is_empty() || value.chars().any(char::is_control) {
            return Err(at(
                key,
                format!("directory.{key} must be set, without control characters"),
            ));
        }
    }
    if !d
        .id_attribute
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '-')
    {
        return Err(at(
            "id_attribute",
            format!(
                "directory.id_attribute {:?} is not an attribute name",
                d.id_attribute
            ),
        ));
    }
    for (key, filter) in [
        ("user_filter", Some(d.user_filter.as_str())),
        ("disabled_filter", d.disabled_filter.as_deref()),
    ] {
        if let Some(f) = filter
            && !balanced_filter(f)
        {
            return Err(at(
                key,
                format!(
                    "directory.{key} {f:?} is not an LDAP filter (it must be in parentheses, balanced)"
                ),
            ));
        }
    }
    if d.roles.is_empty() {
        return Err(at(
            "[directory.roles]",
            "[directory.roles] must map at least one role to a directory group".into(),
        ));
    }
    if !(1..=100).contains(&d.max_revoke_percent) {
        return Err(at(
            "max_revoke_percent",
            "directory.max_revoke_percent must be between 1 and 100".into(),
        ));
    }
    if d.sync_interval.get() < std::time::Duration::from_secs(30) {
        return Err(at(
            "sync_interval",
            "directory.sync_interval must be at least 30s".into(),
        ));
    }
    Ok(())
}

/// A filter written in parentheses, with the parentheses balanced.
fn balanced_filter(f: &str) -> bool {
    let f = f.trim();
    if !f.starts_with('(') || !f.ends_with(')') {
        return false;
    }
    let mut depth = 0i32;
    for c in f.chars() {
        match c {
            '(' => depth += 1,
            ')' => {
                depth -= 1;
                if depth < 0 {
                    return false;
                }
            }
            _ => {}
        }
    }
    depth == 0
}

fn is_host_port(s: &str) -> bool {
    s.rsplit_once(':').is_some_and(|(host, port)| {
        !host.is_empty()
            && port.parse::<u16>().is_ok_and(|p| p != 0)
            && !host.chars().any(|c| c.is_whitespace() || c.is_control())
    })
}

fn dot() -> PathBuf {
    PathBuf::from(".")
}

mod defaults {
    use std::path::PathBuf;

    use super::{AdminSection, EnrolmentSection, HumanDuration, JournalSection, PolicySection};

    pub fn max_request_bytes() -> usize {
        64 * 1024
    }
    pub fn max_connections() -> usize {
        1024
    }
    pub fn handshakes_per_second() -> u32 {
        20
    }
    pub fn handshake_burst() -> u32 {
        40
    }
    pub fn enrolments_per_minute() -> u32 {
        10
    }
    pub fn admissions_per_second() -> u32 {
        50
    }
    pub fn enrolment_burst() -> u32 {
        5
    }
    pub fn handshake_timeout() -> HumanDuration {
        HumanDuration::from_secs(10)
    }
    pub fn request_timeout() -> HumanDuration {
        HumanDuration::from_secs(30)
    }
    pub fn reserved_connections() -> usize {
        256
    }
    pub fn unauthenticated_connections_per_source() -> usize {
        32
    }
    pub fn idle_timeout() -> HumanDuration {
        HumanDuration::from_secs(20)
    }
    pub fn connection_lifetime() -> HumanDuration {
        HumanDuration::from_secs(600)
    }
    pub fn max_buffered_body_bytes() -> usize {
        8 * 1024 * 1024
    }
    pub fn second_factor_failures() -> u32 {
        5
    }
    pub fn second_factor_lockout() -> HumanDuration {
        HumanDuration::from_secs(15 * 60)
    }
    pub fn certificate_validity() -> HumanDuration {
        HumanDuration::from_secs(30 * 86_400)
    }
    pub fn invitation_validity() -> HumanDuration {
        HumanDuration::from_secs(72 * 3_600)
    }
    pub fn renewal_interval() -> HumanDuration {
        HumanDuration::from_secs(600)
    }
    pub fn crl_validity() -> HumanDuration {
        HumanDuration::from_secs(24 * 3_600)
    }
    pub fn wg_port() -> u16 {
        51820
    }
    pub fn wg_interface() -> String {
        "ztgw0".into()
    }
    pub fn tunnel_network() -> Vec<String> {
        vec!["100.64.0.0/16".into()]
    }
    pub fn wg_mtu() -> u16 {
        1420
    }
    pub fn yes() -> bool {
        true
    }
    pub fn max_peers() -> usize {
        10_000
    }
    pub fn handshakes_before_cookies() -> u64 {
        1_000
    }
    pub fn wg_handshakes_per_source() -> u32 {
        100
    }
    pub fn admin_socket() -> PathBuf {
        PathBuf::from("admin.sock")
    }
    pub fn admin_group() -> String {
        "ztgw".into()
    }
    pub fn policy_file() -> PathBuf {
        PathBuf::from("policy.toml")
    }
    pub fn console_max_connections() -> usize {
        64
    }
    pub fn metrics_listen() -> std::net::SocketAddr {
        std::net::SocketAddr::from(([127, 0, 0, 1], 9469))
    }
    pub fn journal_dir() -> PathBuf {
        PathBuf::from("journal")
    }
    pub fn segment_max_bytes() -> u64 {
        64 * 1024 * 1024
    }
    pub fn segment_max_age() -> HumanDuration {
        HumanDuration::from_secs(86_400)
    }
    pub fn retention() -> HumanDuration {
        HumanDuration::from_secs(365 * 86_400)
    }
    pub fn directory_user_filter() -> String {
        "(objectClass=person)".into()
    }
    pub fn directory_sync_interval() -> HumanDuration {
        HumanDuration::from_secs(300)
    }
    pub fn directory_timeout() -> HumanDuration {
        HumanDuration::from_secs(10)
    }
    pub fn directory_max_revoke_percent() -> u8 {
        10
    }
    pub fn auditors_group() -> String {
        "auditors".into()
    }
    pub fn journal() -> JournalSection {
        JournalSection {
            dir: journal_dir(),
            segment_max_bytes: segment_max_bytes(),
            segment_max_age: segment_max_age(),
            retention: retention(),
            auditors_group: auditors_group(),
            free_space_warning: free_space_warning(),
        }
    }
    pub fn registry_pool_size() -> usize {
        8
    }
    pub fn free_space_warning() -> u64 {
        256 * 1024 * 1024
    }
    pub fn enrolment() -> EnrolmentSection {
        EnrolmentSection {
            certificate_validity: certificate_validity(),
            invitation_validity: invitation_validity(),
            require_device_approval: false,
            crl_validity: crl_validity(),
            renewal_interval: renewal_interval(),
        }
    }
    pub fn admin() -> AdminSection {
        AdminSection {
            socket: admin_socket(),
            group: admin_group(),
        }
    }
    pub fn policy() -> PolicySection {
        PolicySection {
            file: policy_file(),
        }
    }
}

/// What `ztgw init` is told; the rest of the file is defaults, each written out commented.
#[derive(Debug, Clone)]
pub struct TemplateValues {
    pub names: Vec<String>,
    pub control_listen: SocketAddr,
    pub control_advertise: String,
    pub wireguard_endpoint: String,
    pub wireguard_port: u16,
    /// `[gateway] state_dir` as written: `"."` when the state is beside the settings.
    pub state_dir: String,
    /// `[journal] dir` as written: `"journal"` for the state directory's `journal/`.
    pub journal_dir: String,
}

/// The `gateway.toml` that `ztgw init` writes, every setting with a comment.
pub fn template(v: &TemplateValues) -> String {
    let names = v
        .names
        .iter()
        .map(|n| toml_string(n))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        r#"# ztgw gateway settings. Durations are written like 30d, 72h, 1h30m, 10s.
# `state_dir` and the policy's `file` are relative to this file's directory; the admin
# socket and the journal's `dir` to the state directory.

[gateway]
# The gateway's names (DNS names or IP addresses); its control-plane certificate
# carries all of them.
names = [{names}]
# Where the CA, the keys, the registry and the revocation list live: the service's own
# directory (it writes nothing else but the journal). This file and the policy are only
# read.
state_dir = {state_dir}

[control]
# The control plane (enrolment, admission, renewal) listens here, HTTPS with mTLS.
listen = {listen}
# The address invitations tell agents to reach (HOST:PORT).
advertise = {advertise}
# Largest request body accepted, in bytes.
max_request_bytes = 65536
# Most TLS connections open at once; more are refused (and counted).
max_connections = 1024
# TLS handshakes each source address may start per second, and the burst allowed.
handshakes_per_second_per_source = 20
handshake_burst = 40
# Enrolment attempts each source address may make per minute, and the burst allowed.
enrolments_per_minute_per_source = 10
enrolment_burst = 5
# Admission requests (nonce, admission, re-check) each source address may make per
# second (an office behind one NAT address holds many laptops); the burst is twice this.
admissions_per_second_per_source = 50
# A TLS handshake that takes longer than this is dropped.
handshake_timeout = "10s"
# A request that takes longer than this is answered with an error.
request_timeout = "30s"
# Connections kept for callers with a client certificate (devices, auditors): those
# without one (still in their TLS handshake, or enrolling) never take these.
reserved_connections = 256
# Connections without a client certificate from one source (an IPv4 address or an
# IPv6 /64; every per-source limit here counts an IPv6 /64 as one source).
unauthenticated_connections_per_source = 32
# A connection with no request under way and nothing sent for this long is closed.
idle_timeout = "20s"
# A connection is closed after this long whatever it does (the agent reconnects).
connection_lifetime = "10m"
# Request bodies held in memory at once, over all connections (bytes).
max_buffered_body_bytes = 8388608
# Wrong second-factor codes in a row before a device is locked, and for how long
# (`ztgw device unlock ID` lifts it sooner). Each wrong code also makes the next one
# wait longer (1, 2, 4 ... seconds).
second_factor_failures = 5
second_factor_lockout = "15m"

[enrolment]
# How long a device certificate is valid; the agent renews it before it expires.
certificate_validity = "30d"
# How long an invitation stays usable unless `ztgw invite --valid-for` says otherwise.
invitation_validity = "72h"
# Hold every newly enrolled device until `ztgw device approve ID` (G1).
require_device_approval = false
# How long a published revocation list is valid; it is re-signed at half of it.
crl_validity = "24h"
# A device renews its certificate at most once in this long. A device holds at most two
# unexpired certificates: when it first uses a new one, the older ones are revoked.
renewal_interval = "10m"

[wireguard]
# The address WireGuard clients send to (HOST:PORT).
endpoint = {endpoint}
# The UDP port the data plane listens on.
listen_port = {port}
# Run the data plane. Without it the gateway admits no sessions (a control plane for
# enrolment only).
enabled = true
# The TUN interface, and the network laptops' tunnel addresses come from (the gateway
# takes its first address). For IPv6 inside as well, give one IPv4 and one IPv6 network:
# tunnel_network = ["100.64.0.0/16", "fd00:64::/64"] (each session gets one of each).
interface = "ztgw0"
tunnel_network = "100.64.0.0/16"
mtu = 1420
# Worker pairs (UDP socket + TUN queue); 0 means one per core.
workers = 0
# Kernel segmentation/coalescing on the TUN device (much less CPU per byte).
offload = true
# Bounds under attack: installed peers, and handshake initiations per second before
# cookies are required (all sources) and from one source address.
max_peers = 10000
handshakes_before_cookies = 1000
handshakes_per_second_per_source = 100

[admin]
# The local socket through which `ztgw` commands reach the running gateway.
socket = "admin.sock"
# Besides root, members of this group may use the admin socket.
group = "ztgw"

[policy]
# The access policy: roles, resources, schedules and posture profiles.
file = "policy.toml"

[journal]
# The tamper-evident audit journal (docs/journal.md).
dir = {journal_dir}
# A segment is closed and a new one begun past this size (bytes) or this age.
segment_max_bytes = 67108864
segment_max_age = "1d"
# Segments whose newest event is older than this are deleted, leaving a signed record
# of what was purged (Law 09-08, G15).
retention = "365d"
# Besides root, members of this group may read the journal.
auditors_group = "auditors"
# Below this much free space on the journal's filesystem (bytes) the gateway warns, in its
# log and as ztgw_journal_free_space_low, before the journal fills it.
free_space_warning = 268435456

[incidents]
# Run for each reported incident (G13), and each second-factor lockout, with the event as
# JSON on standard input: a program and its arguments, no shell, run without the
# gateway's capabilities and ended after 10 s. For example a script that mails the
# security unit:
# notify_command = ["/usr/local/bin/ztgw-notify", "securite@example.gov.ma"]
notify_command = []

[metrics]
# Prometheus metrics (/metrics) and the health check (/health), plain HTTP: keep this on
# a local or management address.
listen = "127.0.0.1:9469"

# The web console for security units and auditors (docs/console.md), HTTPS with this
# gateway's certificate: off unless this section is given. Operators sign in with the
# certificate of `ztgw operator add`. For example, on the administration network:
# [console]
# listen = "10.0.0.1:9443"                 # an address among [gateway] names

# The registry is SQLite in the state directory unless [registry] puts it in PostgreSQL
# (docs/operators.md), for example:
# [registry]
# url = "postgresql://ztgw@db.example.gov.ma/ztgw"
# password_file = "registry.pass"          # mode 0600; never a password in the url

# Streaming the journal to the security operations centre: each [export.NAME] gets every
# record, in order, at least once (docs/operators.md). For example:
# [export.soc]
# kind = "syslog"                          # RFC 5424 over TLS (RFC 5425)
# address = "siem.example.gov.ma:6514"
# ca_file = "siem-ca.pem"                  # the CA that signs the receiver's certificate
"#,
        listen = toml_string(&v.control_listen.to_string()),
        advertise = toml_string(&v.control_advertise),
        endpoint = toml_string(&v.wireguard_endpoint),
        port = v.wireguard_port,
        state_dir = toml_string(&v.state_dir),
        journal_dir = toml_string(&v.journal_dir),
    )
}

fn toml_string(s: &str) -> String {
    toml::Value::String(s.to_owned()).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values() -> TemplateValues {
        TemplateValues {
            names: vec!["gw.example.gov.ma".into(), "127.0.0.1".into()],
            control_listen: "0.0.0.0:8443".parse().expect("addr"),
            control_advertise: "gw.example.gov.ma:8443".into(),
            wireguard_endpoint: "gw.example.gov.ma:51820".into(),
            wireguard_port: 51820,
            state_dir: ".".into(),
            journal_dir: "journal".into(),
        }
    }

    #[test]
    fn template_parses_to_defaults() {
        let path = Path::new("/etc/ztgw/gateway.toml");
        let s = Settings::parse(path, &template(&values())).expect("template parses");
        assert_eq!(s.gateway.names, values().names);
        assert_eq!(s.gateway.state_dir, Path::new("/etc/ztgw/."));
        assert_eq!(s.admin.socket, Path::new("/etc/ztgw/./admin.sock"));
        assert_eq!(s.policy.file, Path::new("/etc/ztgw/policy.toml"));
        assert_eq!(s.journal.dir, Path::new("/etc/ztgw/./journal"));
        assert_eq!(s.enrolment, defaults::enrolment());
        assert_eq!(s.control.max_request_bytes, defaults::max_request_bytes());
        assert_eq!(s.control.handshake_timeout, defaults::handshake_timeout());
    }

    #[test]
    fn the_console_is_off_unless_its_section_gives_it_an_address() {
        let path = Path::new("/etc/ztgw/gateway.toml");
        let s = Settings::parse(path, &template(&values())).expect("template parses");
        assert_eq!(s.console, None, "off by default");
        let on = template(&values()) + "\n[console]\nlisten = \"10.0.0.1:9443\"\n";
        let s = Settings::parse(path, &on).expect("parses");
        assert_eq!(
            s.console,
            Some(ConsoleSection {
                listen: "10.0.0.1:9443".parse().expect("addr"),
                max_connections: 64,
            })
        );
        let zero = format!("{on}max_connections = 0\n");
        let e = Settings::parse(path, &zero).expect_err("zero").to_string();
        let line = zero.lines().count();
        assert!(
            e.contains(&format!("gateway.toml:{line}:1")) && e.contains("console.max_connections"),
            "{e}"
        );
        let typo = format!("{on}lisen = 1\n");
        let e = Settings::parse(path, &typo)
            .expect_err("unknown key")
            .to_string();
        assert!(e.contains("lisen"), "{e}");
    }

    #[test]
    fn configuration_and_state_in_directories_of_their_own() {
        let path = Path::new("/etc/ztgw/gateway.toml");
        let text = template(&TemplateValues {
            state_dir: "/var/lib/ztgw".into(),
            journal_dir: "/var/log/ztgw/journal".into(),
            ..values()
        });
        let s = Settings::parse(path, &text).expect("parses");
        assert_eq!(s.gateway.state_dir, Path::new("/var/lib/ztgw"));
        assert_eq!(s.state().registry(), Path::new("/var/lib/ztgw/registry.db"));
        assert_eq!(s.admin.socket, Path::new("/var/lib/ztgw/admin.sock"));
        // The policy is configuration: beside the settings, not in the state.
        assert_eq!(s.policy.file, Path::new("/etc/ztgw/policy.toml"));
        assert_eq!(s.journal.dir, Path::new("/var/log/ztgw/journal"));
    }

    const DIRECTORY: &str = r#"
[directory]
kind = "active-directory"
urls = ["ldaps://dc1.min.gov.ma", "ldap://dc2.min.gov.ma:389"]
ca_file = "directory-ca.pem"
bind_dn = "CN=svc-ztgw,OU=Services,DC=min,DC=gov,DC=ma"
bind_password_file = "directory.pass"
base_dn = "DC=min,DC=gov,DC=ma"
user_filter = "(&(objectClass=user)(objectCategory=person))"
id_attribute = "sAMAccountName"

[directory.roles]
finance = "CN=Telework-Finance,OU=Groups,DC=min,DC=gov,DC=ma"
"#;

    #[test]
    fn a_directory_section() {
        let path = Path::new("/etc/ztgw/gateway.toml");
        let s = Settings::parse(path, &(template(&values()) + DIRECTORY)).expect("parses");
        let d = s.directory.expect("directory");
        assert_eq!(d.kind, DirectoryKind::ActiveDirectory);
        assert_eq!(d.ca_file, Path::new("/etc/ztgw/directory-ca.pem"));
        assert_eq!(d.bind_password_file, Path::new("/etc/ztgw/directory.pass"));
        assert_eq!(
            d.disabled_filter(),
            Some("(userAccountControl:1.2.840.113556.1.4.803:=2)"),
            "Active Directory's disabled bit by default"
        );
        assert_eq!(d.max_revoke_percent, 10);
        assert_eq!(d.roles.len(), 1);
    }

    #[test]
    fn directory_mistakes_point_at_their_place() {
        let path = Path::new("gw.toml");
        let base = template(&values()) + DIRECTORY;
        for (from, to, said) in [
            (
                "ldap://dc2.min.gov.ma:389",
                "http://dc2.min.gov.ma",
                "must be ldaps://",
            ),
            (
                "(&(objectClass=user)(objectCategory=person))",
                "objectClass=user",
                "is not an LDAP filter",
            ),
            (
                "id_attribute = \"sAMAccountName\"",
                "id_attribute = \"sAM AccountName\"",
                "is not an attribute name",
            ),
            (
                "finance = \"CN=Telework-Finance,OU=Groups,DC=min,DC=gov,DC=ma\"",
                "",
                "at least one role",
            ),
            (
                "kind = \"active-directory\"",
                "kind = \"novell\"",
                "unknown variant",
            ),
        ] {
            let text = base.replace(from, to);
            let e = Settings::parse(path, &text).expect_err(said).to_string();
            assert!(e.contains(said), "{e}");
            assert!(e.starts_with("gw.toml:"), "with its place: {e}");
        }
    }

    const EXPORT: &str = r#"
[export.soc]
kind = "syslog"
address = "siem.min.gov.ma:6514"
ca_file = "siem-ca.pem"

[export.lake]
kind = "https"
url = "https://collector.min.gov.ma/ztgw"
ca_file = "/etc/ssl/collector-ca.pem"
token_file = "collector.token"
batch = 200
"#;

    #[test]
    fn export_targets() {
        let path = Path::new("/etc/ztgw/gateway.toml");
        let s = Settings::parse(path, &(template(&values()) + EXPORT)).expect("parses");
        assert_eq!(s.export.len(), 2);
        let soc = &s.export["soc"];
        assert_eq!(soc.kind, ExportKind::Syslog);
        assert_eq!(soc.ca_file, Path::new("/etc/ztgw/siem-ca.pem"));
        assert_eq!(soc.batch, 500);
        assert_eq!(soc.host_port(), Some(("siem.min.gov.ma".into(), 6514)));
        let lake = &s.export["lake"];
        assert_eq!(lake.ca_file, Path::new("/etc/ssl/collector-ca.pem"));
        assert_eq!(
            lake.token_file.as_deref(),
            Some(Path::new("/etc/ztgw/collector.token"))
        );
        assert_eq!(lake.host_port(), Some(("collector.min.gov.ma".into(), 443)));
    }

    #[test]
    fn a_registry_in_postgres_keeps_its_password_out_of_the_url() {
        let path = Path::new("/etc/ztgw/gateway.toml");
        let with = |table: &str| template(&values()) + EXPORT + table;
        let s = Settings::parse(
            path,
            &with("\n[registry]\nurl = \"postgresql://ztgw@db.min.gov.ma/ztgw\"\npassword_file = \"registry.pass\"\nca_file = \"db-ca.pem\"\n"),
        )
        .expect("parses");
        let r = s.registry.expect("registry");
        assert_eq!(
            r.password_file.as_deref(),
            Some(Path::new("/etc/ztgw/registry.pass"))
        );
        assert_eq!(r.pool_size, 8);
        assert!(
            Settings::parse(path, &template(&values()))
                .expect("default")
                .registry
                .is_none()
        );
        for (table, said) in [
            (
                "url = \"postgresql://ztgw:s3cret@db/ztgw\"",
                "registry.url holds a password",
            ),
            (
                "url = \"host=db dbname=ztgw password=s3cret\"",
                "registry.url holds a password",
            ),
            ("url = \"\"", "registry.url is empty"),
            (
                "url = \"host=db\"\npool_size = 0",
                "registry.pool_size must be between",
            ),
        ] {
            let text = with(&format!("\n[registry]\n{table}\n"));
            let e = Settings::parse(path, &text).expect_err(said).to_string();
            assert!(e.contains(said), "{e}");
            let line: usize = e
                .split(':')
                .nth(1)
                .and_then(|n| n.parse().ok())
                .unwrap_or_else(|| panic!("with its place: {e}"));
            assert!(
                text.lines().take(line - 1).any(|l| l == "[registry]"),
                "points into [registry], not at [export]'s url: {e}"
            );
        }
    }

    #[test]
    fn export_mistakes_point_at_their_place() {
        let path = Path::new("gw.toml");
        let base = template(&values()) + EXPORT;
        for (from, to, said, line) in [
            (
                "https://collector.min.gov.ma/ztgw",
                "http://collector.min.gov.ma/ztgw",
                "export.lake.url must start with https://",
                "url =",
            ),
            (
                "address = \"siem.min.gov.ma:6514\"",
                "address = \"siem.min.gov.ma\"",
                "expected HOST:PORT",
                "address =",
            ),
            (
                "address = \"siem.min.gov.ma:6514\"",
                "url = \"https://siem.min.gov.ma\"",
                "a syslog target takes `address`",
                "url =",
            ),
            (
                "batch = 200",
                "batch = 0",
                "export.lake.batch must be between",
                "batch =",
            ),
            (
                "[export.soc]",
                "[export.SOC]",
                "lowercase letters",
                "kind =",
            ),
            (
                "kind = \"syslog\"",
                "kind = \"kafka\"",
                "unknown variant",
                "kind =",
            ),
        ] {
            let text = base.replace(from, to);
            let e = Settings::parse(path, &text).expect_err(said).to_string();
            assert!(e.contains(said), "{e}");
            let place = e
                .strip_prefix("gw.toml:")
                .and_then(|r| r.split(':').next())
                .and_then(|n| n.parse::<usize>().ok())
                .unwrap_or_else(|| panic!("with its place: {e}"));
            let at = text.lines().nth(place - 1).unwrap_or_default();
            assert!(at.starts_with(line), "{e} points at {at:?}");
        }
    }

    #[test]
    fn one_tunnel_network_or_one_of_each_family() {
        use crate::policy::Network;
        let path = Path::new("gw.toml");
        let with = |value: &str| {
            template(&values()).replace(
                "tunnel_network = \"100.64.0.0/16\"",
                &format!("tunnel_network = {value}"),
            )
        };
        let s = Settings::parse(path, &with("[\"100.64.0.0/16\", \"fd00:64::/64\"]"))
            .expect("dual stack");
        let (v4, v6) = s.wireguard.tunnel_networks().expect("networks");
        assert_eq!(v4, Network::parse("100.64.0.0/16").expect("v4"));
        assert_eq!(v6, Some(Network::parse("fd00:64::/64").expect("v6")));
        let s = Settings::parse(path, &with("\"fd00:64::/64\"")).expect("IPv6 only");
        assert_eq!(s.wireguard.tunnel_networks().expect("v6").1, None);
        for (value, said) in [
            (
                "[\"100.64.0.0/16\", \"10.64.0.0/16\"]",
                "at most one IPv4 and one IPv6",
            ),
            ("[]", "give one network"),
            (
                "[\"100.64.0.0/16\", \"fd00:64::/120\"]",
                "use at most a /112",
            ),
            ("\"100.64.0.0/31\"", "too small"),
        ] {
            let e = Settings::parse(path, &with(value))
                .expect_err(said)
                .to_string();
            assert!(e.contains(said), "{value}: {e}");
            assert!(e.starts_with("gw.toml:"), "with its place: {e}");
        }
    }

    #[test]
    fn mistakes_point_at_their_place() {
        let path = Path::new("gw.toml");
        let text = template(&values());
        let cases: &[(&str, &str, &str)] = &[
            (
                "max_connections = 1024",
                "max_connections = 1024\nbogus = 1",
                "unknown field `bogus`",
            ),
            ("\"24h\"", "\"24x\"", "unknown unit"),
            (
                "listen = \"0.0.0.0:8443\"",
                "listen = \"nowhere\"",
                "invalid socket address",
            ),
            (
                "require_device_approval = false",
                "require_device_approval = \"no\"",
                "invalid type",
            ),
        ];
        for (from, to, want) in cases {
            let bad = text.replacen(from, to, 1);
            let err = Settings::parse(path, &bad).expect_err(to).to_string();
            assert!(err.contains(want), "{to}: {err}");
            let changed = to.lines().last().unwrap_or(to);
            let line = bad
                .lines()
                .position(|l| l.contains(changed))
                .map(|i| i + 1)
                .expect("line");
            assert!(
                err.starts_with(&format!("gw.toml:{line}:")),
                "{to}: {err} (line {line})"
            );
        }
    }

    #[test]
    fn semantic_checks() {
        let path = Path::new("gw.toml");
        let bad = template(&values()).replace(
            "advertise = \"gw.example.gov.ma:8443\"",
            "advertise = \"nohost\"",
        );
        let err = Settings::parse(path, &bad)
            .expect_err("bad advertise")
            .to_string();
        assert!(err.contains("control.advertise must be HOST:PORT"), "{err}");
    }
}

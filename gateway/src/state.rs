//! `ztgw init`: a new gateway's configuration and state.
//!
//! It creates, in directories that must be new or empty ([`Layout`]): `gateway.toml` with
//! every setting commented and an example policy (the configuration); the CA key and
//! certificate, the control plane's key and certificate, the WireGuard key pair, the
//! registry, the journal's key and a first (empty) revocation list (the state); and the
//! journal. Private keys are written 0600 from the start. It never overwrites anything.
//! Given an owner, it hands the state and the journal to it last.

use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use base64::Engine as _;
use ztgw_config::Settings;
use ztgw_config::settings::{StatePaths, TemplateValues, template};
use ztgw_pki::{CertificateAuthority, Existing, SerialNumber, write_private_file};

use crate::clock::{Clock, Entropy, random};
use crate::context::Context;
use crate::layout::{Layout, LayoutError};
use crate::registry::SqliteRegistry;

/// The example policy `ztgw init` writes (also in `deploy/examples/policy.toml`).
pub const EXAMPLE_POLICY: &str = include_str!("../../deploy/examples/policy.toml");

/// How long the CA is valid.
const CA_VALIDITY: time::Duration = time::Duration::days(3650);
/// How long the control plane's certificate is valid.
const SERVER_VALIDITY: time::Duration = time::Duration::days(397);

/// What `ztgw init` is told.
#[derive(Debug, Clone)]
pub struct InitOptions {
    pub layout: Layout,
    pub names: Vec<String>,
    /// WireGuard endpoint, `HOST:PORT`.
    pub endpoint: String,
    pub control_listen: SocketAddr,
    /// Defaults to the first name and the listen port.
    pub control_advertise: Option<String>,
    /// Join the gateways of a shared registry: their CA (and registry URL) from an
    /// opened join bundle, instead of a new CA.
    pub join: Option<crate::join::JoinBundle>,
    /// The gateway's tunnel networks (default: the template's). Each gateway of a
    /// registry needs networks of its own.
    pub tunnel_networks: Vec<String>,
}

/// What `ztgw init` made.
#[derive(Debug, Clone)]
pub struct InitReport {
    pub settings: PathBuf,
    pub ca_fingerprint: String,
    pub wireguard_public_key: String,
}

/// Why `ztgw init` stopped.
#[derive(Debug, thiserror::Error)]
pub enum InitError {
    #[error("{0}")]
    Layout(#[from] LayoutError),
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    Ca(#[from] ztgw_pki::CaError),
    #[error("{0}")]
    Entropy(#[from] crate::clock::EntropyError),
    #[error("the new state does not open: {0}")]
    Open(#[from] crate::context::OpenError),
    #[error("the registry: {0}")]
    Registry(#[from] crate::registry::RegistryError),
    #[error("publishing the first revocation list: {0}")]
    Crl(#[from] crate::revocation::PublishError),
}

/// Creates a gateway's configuration and state where `opts.layout` says.
pub fn init(
    opts: &InitOptions,
    clock: Arc<dyn Clock>,
    entropy: Arc<dyn Entropy>,
) -> Result<InitReport, InitError> {
    let first = opts
        .names
        .first()
        .ok_or_else(|| InitError::Invalid("give the gateway at least one --name".into()))?;
    let layout = &opts.layout;
    layout.prepare()?;
    let paths = StatePaths::new(&layout.state_dir);
    let now = clock.now();

    let (ca, ca_key) = match &opts.join {
        Some(b) => {
            let key = ztgw_pki::Secret::new(b.ca_key.clone());
            (CertificateAuthority::load(&b.ca_cert, &key)?, key)
        }
        None => CertificateAuthority::generate(
            first,
            SerialNumber::from_random(random(entropy.as_ref())?),
            now,
            CA_VALIDITY,
        )?,
    };
    private(&paths.ca_key(), ca_key.expose().as_bytes())?;
    public(&paths.ca_cert(), ca.cert_pem().as_bytes())?;

    let (server, server_key) = ca.issue_server(
        &opts.names,
        SerialNumber::from_random(random(entropy.as_ref())?),
        now,
        now + SERVER_VALIDITY,
    )?;
    private(&paths.server_key(), server_key.expose().as_bytes())?;
    public(&paths.server_cert(), server.pem.as_bytes())?;

    let wg_secret = x25519_dalek::StaticSecret::from(random::<32>(entropy.as_ref())?);
    let wg_public = x25519_dalek::PublicKey::from(&wg_secret);
    let b64 = base64::engine::general_purpose::STANDARD;
    let secret_text = zeroize::Zeroizing::new(format!("{}\n", b64.encode(wg_secret.to_bytes())));
    private(&paths.wireguard_key(), secret_text.as_bytes())?;
    let wg_public_text = b64.encode(wg_public.as_bytes());
    public(
        &paths.wireguard_public(),
        format!("{wg_public_text}\n").as_bytes(),
    )?;

    let endpoint_port = opts
        .endpoint
        .rsplit_once(':')
        .and_then(|(_, p)| p.parse::<u16>().ok())
        .ok_or_else(|| {
            InitError::Invalid(format!("--endpoint {:?} must be HOST:PORT", opts.endpoint))
        })?;
    let advertise = opts
        .control_advertise
        .clone()
        .unwrap_or_else(|| format!("{}:{}", host_for_address(first), opts.control_listen.port()));
    let mut settings_text = template(&TemplateValues {
        names: opts.names.clone(),
        control_listen: opts.control_listen,
        control_advertise: advertise,
        wireguard_endpoint: opts.endpoint.clone(),
        wireguard_port: endpoint_port,
        state_dir: layout.state_dir_setting(),
        journal_dir: layout.journal_dir_setting(),
    });
    if !opts.tunnel_networks.is_empty() {
        settings_text = with_tunnel_networks(&settings_text, &opts.tunnel_networks)?;
    }
    let registry_url = opts.join.as_ref().and_then(|b| b.registry_url.clone());
    if let Some(url) = &registry_url {
        settings_text.push_str(&format!(
            "\n# The registry this gateway shares with the others (from the join bundle).\n[registry]\nurl = {}\n",
            toml_edit::Value::from(url.as_str())
        ));
    }
    public(&layout.settings(), settings_text.as_bytes())?;
    public(&layout.policy(), EXAMPLE_POLICY.as_bytes())?;

    if registry_url.is_none() {
        // An empty file with mode 0600 first: SQLite keeps the mode, and gives it to the
        // WAL and shared-memory files it creates beside it.
        private(&paths.registry(), b"")?;
        SqliteRegistry::open(&paths.registry())?;
    }

    let settings = Settings::load(&layout.settings())
        .map_err(|e| InitError::Invalid(format!("the generated settings do not load: {e}")))?;
    let ctx = Context::open(settings, clock, entropy)?;
    ctx.publish_crl()?;
    drop(ctx);
    layout.hand_over()?;

    Ok(InitReport {
        settings: layout.settings(),
        ca_fingerprint: ztgw_pki::fingerprint_hex(ca.fingerprint()),
        wireguard_public_key: wg_public_text,
    })
}

fn private(path: &Path, contents: &[u8]) -> Result<(), InitError> {
    write_private_file(path, contents, Existing::Refuse).map_err(|source| InitError::Io {
        path: path.display().to_string(),
        source,
    })
}

/// A file without secrets: 0644 (its directory decides who reaches it).
fn public(path: &Path, contents: &[u8]) -> Result<(), InitError> {
    private(path, contents)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o644)).map_err(|source| {
        InitError::Io {
            path: path.display().to_string(),
            source,
        }
    })
}

/// The settings' text with `tunnel_network` set to `networks` (the template's line
/// replaced), each checked.
fn with_tunnel_networks(text: &str, networks: &[String]) -> Result<String, InitError> {
    for n in networks {
        ztgw_config::policy::Network::parse(n)
            .map_err(|e| InitError::Invalid(format!("--tunnel-network {n}: {e}")))?;
    }
    let list = networks
        .iter()
        .map(|n| toml_edit::Value::from(n.as_str()).to_string())
        .collect::<Vec<_>>()
        .join(", ");
    let mut done = false;
    let out: Vec<String> = text
        .lines()
        .map(|l| {
            if !done && l.trim_start().starts_with("tunnel_network =") {
                done = true;
                format!("tunnel_network = [{list}]")
            } else {
                l.to_owned()
            }
        })
        .collect();
    if !done {
        return Err(InitError::Invalid(
            "the settings template has no tunnel_network line".into(),
        ));
    }
    Ok(out.join("\n") + "\n")
}

/// `host` as it goes before `:port` (IPv6 literals get brackets).
fn host_for_address(host: &str) -> String {
    if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]")
    } else {
        host.to_owned()
    }
}

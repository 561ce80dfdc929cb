//! Shared fixtures for ztgw's cross-crate and end-to-end tests: a gateway in a temporary
//! state directory on loopback, an enrolled agent, certificates made to order, and the
//! real binaries; network namespaces with the real WireGuard client ([`netns`]).

pub mod bench;
pub mod browser;
pub mod cluster;
pub mod console;
pub mod lab;
pub mod laptop;
pub mod netns;
pub mod postgres;
pub mod resolved;
pub mod rsyslog;
pub mod samba;
pub mod site;
pub mod slapd;

use std::net::TcpListener;
use std::path::PathBuf;
use std::sync::Arc;

use time::OffsetDateTime;
use ztgw_agent::client::ControlClient;
use ztgw_agent::enroll::{EnrollOptions, enroll};
use ztgw_agent::state::{AgentState, EnrolmentRecord};
use ztgw_api::control::Ownership;
use ztgw_config::Settings;
use ztgw_gateway::admin::{self, AdminRequest, AdminResponse};
use ztgw_gateway::clock::{Clock, ManualClock, SystemClock, SystemEntropy};
use ztgw_gateway::context::Context;
use ztgw_gateway::daemon::RunningGateway;
use ztgw_gateway::registry::{ActionRecord, CertificateRecord, DeviceRecord, InvitationRecord};
use ztgw_gateway::state::{InitOptions, init};
use ztgw_pki::ca::CheckedCsr;
use ztgw_pki::{
    CertificateAuthority, DeviceClaims, DeviceId, EmployeeId, Secret, SerialNumber, WgPublicKey,
    generate_key_and_csr, tls,
};

/// How a test gateway is set up.
#[derive(Debug, Clone, Default)]
pub struct GatewayOptions {
    /// Hold new devices for approval.
    pub require_device_approval: bool,
    /// Drive the gateway's logic with a manual clock starting now.
    pub manual_clock: bool,
    /// Enrolment attempts allowed in a burst from one source (default from gateway.toml).
    pub enrolment_burst: Option<u32>,
    /// TLS handshakes allowed in a burst from one source, and per second after it.
    pub handshake_limit: Option<(u32, u32)>,
    /// Keep the audit journal here instead of in the state directory.
    pub journal_dir: Option<PathBuf>,
    /// Any other change to gateway.toml, applied last.
    pub edit: Option<fn(String) -> String>,
    /// Text replacements in gateway.toml (`from`, `to`), applied after `edit`.
    pub replace: Vec<(String, String)>,
    /// The policy to start with instead of the one `ztgw init` writes.
    pub policy: Option<String>,
    /// Keep the registry in SQLite whatever `ZTGW_TEST_REGISTRY` says (a test of what
    /// only an SQLite registry does: its file in a backup).
    pub sqlite: bool,
}

/// A gateway running in-process on 127.0.0.1 with its own state directory.
#[derive(Debug)]
pub struct TestGateway {
    pub dir: tempfile::TempDir,
    pub running: RunningGateway,
    pub manual_clock: Option<Arc<ManualClock>>,
    /// The gateway's PostgreSQL registry, when the suite runs on PostgreSQL
    /// ([`postgres_registry`]); stopped after the gateway.
    pub pg: Option<std::sync::Mutex<postgres::Postgres>>,
}

/// The registry the fixtures' gateways keep: SQLite in their state directory (the
/// default), or with `ZTGW_TEST_REGISTRY=postgres` a PostgreSQL server of their own,
/// started here: the switch that runs the whole suite on either (`deploy/scripts/test.sh
/// --registry postgres`).
pub fn postgres_registry() -> Option<postgres::Postgres> {
    match std::env::var("ZTGW_TEST_REGISTRY").as_deref() {
        Ok("postgres") => Some(postgres::Postgres::start()),
        Ok("sqlite" | "") | Err(_) => None,
        Ok(other) => panic!("ZTGW_TEST_REGISTRY={other}: give sqlite or postgres"),
    }
}

/// `settings` with a `[registry]` table for `pg` appended, unless it has one already
/// (a test of the registry's own settings).
pub fn with_registry(settings: String, pg: Option<&postgres::Postgres>) -> String {
    match pg {
        Some(pg) if !settings.contains("\n[registry]") => {
            format!("{settings}\n[registry]\nurl = {:?}\n", pg.database("ztgw"))
        }
        _ => settings,
    }
}

impl TestGateway {
    pub async fn start(opts: GatewayOptions) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let state = dir.path().join("state");
        let port = free_port();
        init(
            &InitOptions {
                layout: ztgw_gateway::layout::Layout::single(&state),
                names: vec!["127.0.0.1".into(), "localhost".into()],
                endpoint: "127.0.0.1:51820".into(),
                control_listen: format!("127.0.0.1:{port}").parse().expect("addr"),
                control_advertise: None,
                join: None,
                tunnel_networks: Vec::new(),
            },
            Arc::new(SystemClock),
            Arc::new(SystemEntropy::new()),
        )
        .expect("ztgw init");
        let config = state.join("gateway.toml");
        let mut text = std::fs::read_to_string(&config).expect("read settings");
        if opts.require_device_approval {
            text = text.replace(
                "require_device_approval = false",
                "require_device_approval = true",
            );
        }
        if let Some(burst) = opts.enrolment_burst {
            text = text.replace("enrolment_burst = 5", &format!("enrolment_burst = {burst}"));
        }
        if let Some((burst, per_second)) = opts.handshake_limit {
            text = text
                .replace(
                    "handshake_burst = 40",
                    &format!("handshake_burst = {burst}"),
                )
                .replace(
                    "handshakes_per_second_per_source = 20",
                    &format!("handshakes_per_second_per_source = {per_second}"),
                );
        }
        if let Some(dir) = &opts.journal_dir {
            text = text.replace(
                "dir = \"journal\"",
                &format!("dir = {:?}", dir.display().to_string()),
            );
        }
        // In-process gateways run without a data plane (it would put a TUN device in the
        // test host's namespace); the namespace tests run `ztgw serve` in its own.
        text = text.replace("\nenabled = true\n", "\nenabled = false\n");
        // Parallel tests: every gateway its own metrics port.
        text = text.replace("listen = \"127.0.0.1:9469\"", "listen = \"127.0.0.1:0\"");
        if let Some(edit) = opts.edit {
            text = edit(text);
        }
        for (from, to) in &opts.replace {
            assert!(text.contains(from.as_str()), "gateway.toml has no {from:?}");
            text = text.replace(from.as_str(), to);
        }
        let pg = if opts.sqlite {
            None
        } else {
            postgres_registry()
        };
        let text = with_registry(text, pg.as_ref());
        std::fs::write(&config, text).expect("write settings");
        if let Some(policy) = &opts.policy {
            std::fs::write(state.join("policy.toml"), policy).expect("write policy");
        }
        let settings = Settings::load(&config).expect("settings");
        let manual_clock = opts.manual_clock.then(|| Arc::new(ManualClock::new(now())));
        let clock: Arc<dyn Clock> = match &manual_clock {
            Some(c) => c.clone(),
            None => Arc::new(SystemClock),
        };
        let ctx =
            Context::open(settings, clock, Arc::new(SystemEntropy::new())).expect("open state");
        let running = RunningGateway::start(ctx).await.expect("start gateway");
        Self {
            dir,
            running,
            manual_clock,
            pg: pg.map(std::sync::Mutex::new),
        }
    }

    pub fn ctx(&self) -> &Context {
        &self.running.ctx
    }

    /// The journal's events of type `kind` (their `event` objects), read as auditors do.
    pub fn journal(&self, kind: &str) -> Vec<serde_json::Value> {
        let filter = ztgw_gateway::journal::query::Filter {
            kinds: vec![kind.to_owned()],
            ..Default::default()
        };
        ztgw_gateway::journal::query::read(&self.ctx().settings.journal.dir, &filter)
            .expect("the journal reads")
            .into_iter()
            .map(|r| r.event)
            .collect()
    }

    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("state/gateway.toml")
    }

    pub fn state_dir(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    /// Takes the lock every publication of the CRL takes, until the returned file is
    /// dropped. A test that writes `crl.pem` itself holds it while it looks at the
    /// effect: with the registry in PostgreSQL, the cluster follower publishes at its
    /// first look and at every change of the registry, and would otherwise overwrite
    /// the file in between.
    pub fn hold_crl(&self) -> std::fs::File {
        ztgw_gateway::revocation::publication_lock(&self.state_dir().join("crl.pem"))
            .expect("the CRL's publication lock")
    }

    /// Carries out an admin request the way `ztgw` does against a running gateway:
    /// through the admin socket.
    pub fn admin(&self, request: AdminRequest) -> Result<AdminResponse, admin::AdminError> {
        let envelope = admin::AdminEnvelope {
            operator: "test-operator".into(),
            request,
        };
        admin::socket::call(&self.ctx().settings.admin.socket, &envelope)
            .expect("admin socket answers")
    }

    /// A new invitation for `employee` in role `finance`.
    pub fn invite(&self, employee: &str) -> String {
        self.invite_as(employee, "finance")
    }

    pub fn invite_as(&self, employee: &str, role: &str) -> String {
        match self.admin(AdminRequest::Invite {
            employee: EmployeeId::new(employee).expect("employee id"),
            role: Some(role.into()),
            schedule: None,
            approved_by: "Head of IT".into(),
            reference: "DEC-2026-114".into(),
            valid_for_secs: None,
        }) {
            Ok(AdminResponse::Invitation(inv)) => inv.invitation.expose().to_owned(),
            other => panic!("invite failed: {other:?}"),
        }
    }

    /// Enrols a new agent with a fresh invitation for `employee`.
    pub async fn enrol(&self, employee: &str) -> TestAgent {
        let invitation = self.invite(employee);
        TestAgent::enrol(&invitation)
            .await
            .expect("enrolment succeeds")
    }

    /// The CA, loaded from the state directory, to forge certificates in tests.
    pub fn ca(&self) -> CertificateAuthority {
        let state = self.state_dir();
        let cert = std::fs::read_to_string(state.join("ca.pem")).expect("ca.pem");
        let key = Secret::new(std::fs::read_to_string(state.join("ca.key")).expect("ca.key"));
        CertificateAuthority::load(&cert, &key).expect("load CA")
    }

    pub fn ca_pem(&self) -> String {
        std::fs::read_to_string(self.state_dir().join("ca.pem")).expect("ca.pem")
    }

    /// A client of this gateway's control plane presenting `cert_pem`/`key_pem`.
    pub fn client_with(&self, cert_pem: &str, key_pem: &Secret<String>) -> ControlClient {
        let config =
            tls::mtls_client_config(&self.ca_pem(), cert_pem, key_pem).expect("client config");
        ControlClient::new(self.running.control_addr.to_string(), config)
    }

    /// A client that pins the CA and presents no certificate (as at enrolment).
    pub fn anonymous_client(&self) -> ControlClient {
        let config = tls::pinned_client_config(*self.ctx().ca.fingerprint()).expect("config");
        ControlClient::new(self.running.control_addr.to_string(), config)
    }

    /// Everything in the registry, to prove a refused request changed nothing.
    pub fn snapshot(&self) -> RegistrySnapshot {
        let r = &self.ctx().registry;
        let devices = r.devices().expect("devices");
        let certificates = devices
            .iter()
            .flat_map(|d| r.certificates_of(&d.id).expect("certificates"))
            .collect();
        RegistrySnapshot {
            invitations: r.invitations().expect("invitations"),
            devices,
            certificates,
            actions: r.actions().expect("actions"),
        }
    }
}

/// The registry's content at one moment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistrySnapshot {
    pub invitations: Vec<InvitationRecord>,
    pub devices: Vec<DeviceRecord>,
    pub certificates: Vec<CertificateRecord>,
    pub actions: Vec<ActionRecord>,
}

/// An enrolled agent with its own state directory.
#[derive(Debug)]
pub struct TestAgent {
    pub dir: tempfile::TempDir,
    pub record: EnrolmentRecord,
}

impl TestAgent {
    pub async fn enrol(invitation: &str) -> Result<Self, ztgw_agent::AgentError> {
        Self::enrol_with_password(invitation, None).await
    }

    /// Enrols giving `password` as the employee's directory password.
    pub async fn enrol_with_password(
        invitation: &str,
        password: Option<&str>,
    ) -> Result<Self, ztgw_agent::AgentError> {
        let dir = tempfile::tempdir().expect("tempdir");
        let enrolled = enroll(&EnrollOptions {
            invitation: invitation.to_owned(),
            state_dir: dir.path().join("agent"),
            ownership: Ownership::Personal,
            hostname: Some("pc-test".into()),
            root: "/".into(),
            directory_password: password.map(|p| ztgw_api::control::RedactedString::new(p.into())),
        })
        .await?;
        Ok(Self {
            dir,
            record: enrolled.record,
        })
    }

    pub fn state(&self) -> AgentState {
        AgentState::new(self.dir.path().join("agent"))
    }

    pub fn device_id(&self) -> DeviceId {
        self.record.device_id.clone()
    }

    /// A TLS client configuration with this device's certificate, offering `alpn`.
    pub fn tls_config(&self, alpn: &[u8]) -> rustls::ClientConfig {
        let state = self.state();
        let read = |p: PathBuf| std::fs::read_to_string(p).expect("agent file");
        let mut c = ztgw_pki::tls::mtls_client_config(
            &read(state.ca()),
            &read(state.certificate()),
            &ztgw_pki::Secret::new(read(state.tls_key())),
        )
        .expect("config");
        c.alpn_protocols = vec![alpn.to_vec()];
        c
    }
}

/// A device certificate signed by `ca` with the given validity and WireGuard key.
pub fn forge_device_cert(
    ca: &CertificateAuthority,
    device: &DeviceId,
    employee: &EmployeeId,
    wg_key: WgPublicKey,
    not_before: OffsetDateTime,
    not_after: OffsetDateTime,
) -> (String, Secret<String>) {
    let (key, csr) = generate_key_and_csr("forged").expect("key");
    let csr = CheckedCsr::parse_pem(&csr).expect("csr");
    let cert = ca
        .issue_device(
            &csr,
            &DeviceClaims {
                device: device.clone(),
                employee: employee.clone(),
                wg_key,
                serial: SerialNumber::from_random(rand_bytes()),
                not_before,
                not_after,
            },
        )
        .expect("issue");
    (cert.pem, key)
}

/// 16 random bytes for serials in tests.
pub fn rand_bytes<const N: usize>() -> [u8; N] {
    let mut out = [0u8; N];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut out).expect("random");
    out
}

/// Now, to whole seconds.
pub fn now() -> OffsetDateTime {
    SystemClock.now()
}

/// A tmpfs of a given size mounted for one test, unmounted when dropped (also on failure).
#[derive(Debug)]
pub struct Tmpfs {
    pub path: PathBuf,
    _dir: tempfile::TempDir,
}

impl Tmpfs {
    /// Mounts a tmpfs of `size` (e.g. "96k"). Needs root, as CI has; without it the test
    /// fails and says so.
    pub fn mount(size: &str) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("mnt");
        std::fs::create_dir(&path).expect("mkdir");
        let out = std::process::Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0700"),
                "tmpfs",
            ])
            .arg(&path)
            .output()
            .expect("run mount (util-linux)");
        assert!(
            out.status.success(),
            "this test mounts a small tmpfs to fill the disk and needs root (CI runs as root); mount said: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Self { path, _dir: dir }
    }
}

impl Tmpfs {
    /// Gives the filesystem a new size (e.g. more room, as an operator freeing space).
    pub fn resize(&self, size: &str) {
        let out = std::process::Command::new("mount")
            .args(["-o", &format!("remount,size={size}")])
            .arg(&self.path)
            .output()
            .expect("run mount (util-linux)");
        assert!(
            out.status.success(),
            "remount: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.path)
            .status();
    }
}

/// A CA of the test's own and a server certificate it signs for `names` (DNS names or
/// addresses), written to `dir` as `ca.pem`, `server.pem` and `server.key` (0600): what a
/// test's directory, log receiver or collector presents. Returns the three paths.
pub fn server_certificate(dir: &std::path::Path, names: &[&str]) -> [PathBuf; 3] {
    let now = OffsetDateTime::now_utc();
    let (ca, _) = CertificateAuthority::generate(
        "test-services",
        SerialNumber::from_random([7; 16]),
        now - time::Duration::hours(1),
        time::Duration::days(2),
    )
    .expect("CA");
    let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
    let (server, key) = ca
        .issue_server(
            &names,
            SerialNumber::from_random([8; 16]),
            now - time::Duration::hours(1),
            now + time::Duration::days(1),
        )
        .expect("server certificate");
    let paths = [
        dir.join("ca.pem"),
        dir.join("server.pem"),
        dir.join("server.key"),
    ];
    std::fs::write(&paths[0], ca.cert_pem()).expect("ca");
    std::fs::write(&paths[1], &server.pem).expect("cert");
    secret_file(&paths[2], key.expose());
    paths
}

/// Writes `text` to `path` readable by its owner only (0600), as a secret file must be.
pub fn secret_file(path: &std::path::Path, text: &str) {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::write(path, text).expect("secret file");
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).expect("chmod 0600");
}

/// A TCP port free on 127.0.0.1 at the time of the call.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// The path of one of the workspace's binaries (`ztgw`, `ztgw-agent`), built by
/// `cargo build --workspace --bins` (CI does this before the tests).
pub fn binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    // A test runs from target/PROFILE/deps, a helper binary from target/PROFILE.
    let here = exe.parent().expect("exe directory");
    let dir = if here.ends_with("deps") {
        here.parent().expect("target directory")
    } else {
        here
    };
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} is missing: build the binaries first with `cargo build --workspace --bins`",
        path.display()
    );
    path
}

/// A plain HTTP GET (the metrics listener): the status and the body.
pub fn http_get(addr: std::net::SocketAddr, path: &str) -> (u16, String) {
    use std::io::{Read as _, Write as _};
    let mut s = std::net::TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .expect("timeout");
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: metrics\r\nConnection: close\r\n\r\n"
    )
    .expect("write");
    let mut text = String::new();
    s.read_to_string(&mut text).expect("read");
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .expect("status line");
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

//! A real Active Directory for the directory tests: Debian's `samba-ad-dc`, provisioned
//! by the test (`samba-tool domain provision`) in a temporary directory, its users and
//! nested groups made with Samba's own Python library (`samdb.py`, one process for a
//! whole script), and run in a network namespace on its loopback, LDAPS only, with a
//! certificate from a CA made for the test. Killed when dropped (also on failure); the
//! directory goes with its temporary directory.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::netns::Netns;

/// The domain's naming context (realm `MIN.TEST`).
pub const DOMAIN_DN: &str = "DC=min,DC=test";
/// The account the gateway binds as.
pub const SERVICE: &str = "svc-ztgw";
const SERVICE_PW: &str = "Svc-Ztgw-Passw0rd!";
const ADMIN_PW: &str = "Adm1n-Passw0rd!";
const SCRIPT: &str = include_str!("samdb.py");
/// Samba's Python modules are Debian's, for Debian's interpreter.
const PYTHON: &str = "/usr/bin/python3";

#[derive(Debug)]
pub struct SambaDc {
    child: Option<Child>,
    ns: Option<String>,
    pub dir: tempfile::TempDir,
    /// The CA that signed the DC's LDAPS certificate (PEM file).
    pub ca: PathBuf,
}

impl Drop for SambaDc {
    fn drop(&mut self) {
        self.stop();
    }
}

fn require(path: &str, package: &str) {
    assert!(
        Path::new(path).exists(),
        "{path} is missing: install it with `apt-get install {package}` (deploy/scripts/test.sh does)"
    );
}

impl SambaDc {
    /// Provisions a domain (not started yet), with the gateway's service account and then
    /// `script` (see [`SambaDc::apply`]).
    pub fn provision(script: &str) -> Self {
        require("/usr/sbin/samba", "samba-ad-dc");
        require("/usr/bin/samba-tool", "samba-ad-dc");
        require("/usr/share/samba/setup/ad-schema", "samba-ad-provision");
        require(PYTHON, "python3");
        let dir = tempfile::tempdir().expect("tempdir");
        let d = dir.path().to_owned();
        let out = Command::new("samba-tool")
            .args([
                "domain",
                "provision",
                "--realm=MIN.TEST",
                "--domain=MIN",
                "--server-role=dc",
                "--dns-backend=NONE",
                "--host-name=dc1",
            ])
            .arg(format!("--adminpass={ADMIN_PW}"))
            .arg(format!("--targetdir={}", d.display()))
            .args([
                "--option=interfaces=lo",
                "--option=bind interfaces only=yes",
            ])
            .output()
            .expect("samba-tool");
        assert!(
            out.status.success(),
            "samba-tool domain provision: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        // LDAPS with a certificate of the test's CA for 127.0.0.1.
        crate::server_certificate(&d, &["127.0.0.1", "dc1.min.test"]);
        // Only the LDAP server (no SMB, Kerberos, DNS or RPC), logging in its directory.
        let conf = d.join("etc/smb.conf");
        let text = std::fs::read_to_string(&conf).expect("smb.conf");
        let mut out = String::new();
        for line in text.lines() {
            let key = line.trim_start().split('=').next().unwrap_or("").trim();
            match key {
                "server services" | "log file" | "pid directory" | "ncalrpc dir" => {}
                "[global]" => {
                    out.push_str(line);
                    out.push('\n');
                    out.push_str(&format!(
                        "\tserver services = ldap\n\tlog file = {log}\n\tlog level = 1\n\
                         \tpid directory = {d}\n\tncalrpc dir = {d}/ncalrpc\n\
                         \ttls enabled = yes\n\ttls keyfile = {d}/server.key\n\
                         \ttls certfile = {d}/server.pem\n\ttls cafile =\n",
                        log = d.join("samba.log").display(),
                        d = d.display()
                    ));
                    continue;
                }
                _ => {}
            }
            out.push_str(line);
            out.push('\n');
        }
        std::fs::write(&conf, out).expect("smb.conf");
        let dc = Self {
            child: None,
            ns: None,
            ca: d.join("ca.pem"),
            dir,
        };
        dc.apply(&format!("user {SERVICE} {SERVICE_PW}\n{script}"));
        dc
    }

    fn conf(&self) -> PathBuf {
        self.dir.path().join("etc/smb.conf")
    }

    /// Changes the directory, one command a line (the server may be running):
    /// `user NAME PASSWORD`, `group NAME`, `add GROUP MEMBER`, `remove GROUP MEMBER`,
    /// `disable NAME`, `delete NAME`. Users and groups are made under `CN=Users`.
    pub fn apply(&self, script: &str) {
        let mut child = Command::new(PYTHON)
            .arg("-c")
            .arg(SCRIPT)
            .arg(self.conf())
            .arg(self.dir.path().join("private/sam.ldb"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("python3");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(script.as_bytes())
            .expect("script");
        let out = child.wait_with_output().expect("samdb.py");
        assert!(
            out.status.success(),
            "samdb.py {script:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Starts the DC in `ns` (its loopback) and waits until LDAPS accepts.
    pub fn run(&mut self, ns: &Netns) {
        self.ns = Some(ns.name.clone());
        let child = ns
            .command("/usr/sbin/samba")
            .arg("-s")
            .arg(self.conf())
            .args(["-i", "-M", "single"])
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(self.dir.path().join("samba.out")).expect("samba.out"))
            .spawn()
            .expect("samba");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(60);
        while !ns.succeeds("bash", &["-c", "exec 3<>/dev/tcp/127.0.0.1/636"]) {
            if let Some(c) = self.child.as_mut()
                && let Ok(Some(status)) = c.try_wait()
            {
                panic!(
                    "samba exited ({status}): {}{}",
                    std::fs::read_to_string(self.dir.path().join("samba.out")).unwrap_or_default(),
                    std::fs::read_to_string(self.dir.path().join("samba.log")).unwrap_or_default()
                );
            }
            assert!(Instant::now() < deadline, "samba did not start in 60 s");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// A `[directory]` section for this DC (`kind = "active-directory"`, employees by
    /// `sAMAccountName` under the domain, the kind's default user and disabled filters),
    /// the gateway trusting `ca` and binding as the service account with the password in
    /// `password_file`; `roles` are `(role, group name)`; `more` is added as it is.
    pub fn settings_section(
        &self,
        password_file: &Path,
        ca: &Path,
        roles: &[(&str, &str)],
        more: &str,
    ) -> String {
        let roles: String = roles
            .iter()
            .map(|(role, cn)| format!("{role} = \"CN={cn},CN=Users,{DOMAIN_DN}\"\n"))
            .collect();
        format!(
            "\n[directory]\nkind = \"active-directory\"\nurls = [\"ldaps://127.0.0.1\"]\n\
             ca_file = \"{ca}\"\nbind_dn = \"CN={SERVICE},CN=Users,{DOMAIN_DN}\"\n\
             bind_password_file = \"{pw}\"\nbase_dn = \"{DOMAIN_DN}\"\n\
             user_filter = \"(&(objectClass=user)(objectCategory=person))\"\n\
             id_attribute = \"sAMAccountName\"\n{more}\n\n[directory.roles]\n{roles}",
            ca = ca.display(),
            pw = password_file.display(),
        )
    }

    /// The service account's password (or `password`, to try a wrong one) in a file of
    /// its own (0600) in the DC's directory.
    pub fn password_file(&self, password: Option<&str>) -> PathBuf {
        let name = if password.is_some() {
            "other.pass"
        } else {
            "directory.pass"
        };
        let pw = self.dir.path().join(name);
        crate::secret_file(&pw, &format!("{}\n", password.unwrap_or(SERVICE_PW)));
        pw
    }

    /// Stops the DC (the directory becomes unreachable).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

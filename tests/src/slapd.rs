//! A real OpenLDAP server (Debian's `slapd`) for the directory tests: started on
//! loopback (this machine's, or a network namespace's) with a directory of its own
//! (StartTLS with a certificate from a CA made for the test), loaded with `slapadd`,
//! changed with `ldapmodify`, killed when dropped (also on failure).

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const SUFFIX: &str = "dc=min,dc=gov,dc=ma";
pub const ROOT_DN: &str = "cn=admin,dc=min,dc=gov,dc=ma";
const ROOT_PW: &str = "root-secret-for-tests";
pub const SERVICE_DN: &str = "cn=svc-ztgw,ou=services,dc=min,dc=gov,dc=ma";
pub const SERVICE_PW: &str = "svc-secret-for-tests";

#[derive(Debug)]
pub struct Slapd {
    child: Option<Child>,
    /// The namespace it runs in, when not this machine's.
    ns: Option<String>,
    pub dir: tempfile::TempDir,
    pub port: u16,
    /// The CA that signed the server's certificate (PEM file).
    pub ca: PathBuf,
}

impl Drop for Slapd {
    fn drop(&mut self) {
        self.stop();
    }
}

fn require(program: &str, package: &str) {
    let found = ["/usr/sbin", "/usr/bin", "/sbin"]
        .iter()
        .any(|d| Path::new(d).join(program).exists());
    assert!(
        found,
        "{program} is missing: install it with `apt-get install {package}` (deploy/scripts/test.sh does)"
    );
}

impl Slapd {
    /// Starts slapd with the base entries (`ou=people`, `ou=groups`, `ou=services` and the
    /// gateway's service account) and `ldif` after them.
    pub fn start(ldif: &str) -> Self {
        let mut s = Self::prepare(ldif);
        s.run(None);
        s
    }

    /// Everything but starting the server: its certificates, configuration and data (so
    /// that settings can name its CA and port before it runs).
    pub fn prepare(ldif: &str) -> Self {
        require("slapd", "slapd");
        require("slapadd", "slapd");
        require("ldapmodify", "ldap-utils");
        let dir = tempfile::tempdir().expect("tempdir");
        let d = dir.path();
        // The server's certificate, from a CA of the test's own.
        crate::server_certificate(d, &["127.0.0.1", "localhost"]);
        std::fs::create_dir(d.join("db")).expect("db");
        let conf = format!(
            "include /etc/ldap/schema/core.schema\n\
             include /etc/ldap/schema/cosine.schema\n\
             include /etc/ldap/schema/inetorgperson.schema\n\
             modulepath /usr/lib/ldap\n\
             moduleload back_mdb\n\
             pidfile {d}/slapd.pid\n\
             TLSCACertificateFile {d}/ca.pem\n\
             TLSCertificateFile {d}/server.pem\n\
             TLSCertificateKeyFile {d}/server.key\n\
             database mdb\n\
             maxsize 16777216\n\
             suffix \"{SUFFIX}\"\n\
             rootdn \"{ROOT_DN}\"\n\
             rootpw {ROOT_PW}\n\
             directory {d}/db\n\
             access to attrs=userPassword by anonymous auth by * none\n\
             access to * by dn.exact=\"{SERVICE_DN}\" read by * none\n",
            d = d.display()
        );
        std::fs::write(d.join("slapd.conf"), conf).expect("slapd.conf");
        let base = format!(
            "dn: {SUFFIX}\nobjectClass: dcObject\nobjectClass: organization\ndc: min\no: Ministere\n\n\
             dn: ou=people,{SUFFIX}\nobjectClass: organizationalUnit\nou: people\n\n\
             dn: ou=groups,{SUFFIX}\nobjectClass: organizationalUnit\nou: groups\n\n\
             dn: ou=services,{SUFFIX}\nobjectClass: organizationalUnit\nou: services\n\n\
             dn: {SERVICE_DN}\nobjectClass: person\ncn: svc-ztgw\nsn: service\nuserPassword: {SERVICE_PW}\n\n\
             {ldif}"
        );
        std::fs::write(d.join("data.ldif"), base).expect("ldif");
        let out = Command::new("slapadd")
            .arg("-f")
            .arg(d.join("slapd.conf"))
            .arg("-l")
            .arg(d.join("data.ldif"))
            .output()
            .expect("slapadd");
        assert!(
            out.status.success(),
            "slapadd: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let port = crate::free_port();
        let mut s = Self {
            child: None,
            ns: None,
            dir,
            port,
            ca: PathBuf::new(),
        };
        s.ca = s.dir.path().join("ca.pem");
        s
    }

    /// `program` on this machine or in the server's namespace.
    fn command(&self, program: &str) -> Command {
        match &self.ns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns, program]);
                c
            }
            None => Command::new(program),
        }
    }

    /// Starts the server, in `ns` when given (its loopback), and waits until it accepts.
    pub fn run(&mut self, ns: Option<&crate::netns::Netns>) {
        self.ns = ns.map(|n| n.name.clone());
        let d = self.dir.path();
        let child = self
            .command("slapd")
            .arg("-f")
            .arg(d.join("slapd.conf"))
            .arg("-h")
            .arg(format!("ldap://127.0.0.1:{}/", self.port))
            // In the foreground (no fork), quiet.
            .args(["-d", "0"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("slapd");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        let probe = format!("exec 3<>/dev/tcp/127.0.0.1/{}", self.port);
        while !self
            .command("bash")
            .args(["-c", &probe])
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
        {
            assert!(Instant::now() < deadline, "slapd did not start in 20 s");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// A `[directory]` section for this server: employees under `ou=people` by `uid`,
    /// disabled by `employeeType=disabled`, `roles` (`(role, group cn)`), the gateway
    /// trusting `ca` and binding as the service account with the password in
    /// `password_file`; `more` is added as it is.
    pub fn settings_section(
        &self,
        password_file: &Path,
        ca: &Path,
        roles: &[(&str, &str)],
        more: &str,
    ) -> String {
        let roles: String = roles
            .iter()
            .map(|(role, cn)| format!("{role} = \"cn={cn},ou=groups,{SUFFIX}\"\n"))
            .collect();
        format!(
            "\n[directory]\nkind = \"ldap\"\nurls = [\"{url}\"]\nca_file = \"{ca}\"\n\
             bind_dn = \"{SERVICE_DN}\"\nbind_password_file = \"{pw}\"\n\
             base_dn = \"ou=people,{SUFFIX}\"\nuser_filter = \"(objectClass=inetOrgPerson)\"\n\
             id_attribute = \"uid\"\ndisabled_filter = \"(employeeType=disabled)\"\n\
             {more}\n\n[directory.roles]\n{roles}",
            url = self.url(),
            ca = ca.display(),
            pw = password_file.display(),
        )
    }

    /// The service account's password in a file of its own (0600) in this server's
    /// directory.
    pub fn password_file(&self) -> PathBuf {
        let pw = self.dir.path().join("directory.pass");
        crate::secret_file(&pw, &format!("{SERVICE_PW}\n"));
        pw
    }

    /// `ldap://127.0.0.1:PORT` (the gateway upgrades it with StartTLS).
    pub fn url(&self) -> String {
        format!("ldap://127.0.0.1:{}", self.port)
    }

    /// Applies an LDIF change (`changetype: modify|delete|add`) as the directory's
    /// administrator, over StartTLS.
    pub fn modify(&self, ldif: &str) {
        let mut child = self
            .command("ldapmodify")
            .args(["-x", "-ZZ", "-H", &self.url(), "-D", ROOT_DN, "-w", ROOT_PW])
            .env("LDAPTLS_CACERT", &self.ca)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("ldapmodify");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(ldif.as_bytes())
            .expect("write");
        let out = child.wait_with_output().expect("ldapmodify");
        assert!(
            out.status.success(),
            "ldapmodify: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Stops the server (the directory becomes unreachable).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

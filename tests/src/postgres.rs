//! Debian's PostgreSQL, started by the test in a temporary directory: `initdb` and
//! `postgres` as the `postgres` user, listening on a Unix socket in that directory only
//! (no TCP port), stopped and removed on drop.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::netns::{self, Proc};

/// A PostgreSQL server of the test's own.
#[derive(Debug)]
pub struct Postgres {
    server: Option<Proc>,
    bin: PathBuf,
    data: PathBuf,
    /// The directory holding the server's socket.
    pub socket_dir: PathBuf,
    pub port: u16,
    /// With TLS: the CA that signs the server's certificate (for 127.0.0.1).
    pub ca: Option<PathBuf>,
    settings: Vec<String>,
    _dir: tempfile::TempDir,
}

/// The newest PostgreSQL installed (`/usr/lib/postgresql/VERSION/bin`).
fn bin_dir() -> PathBuf {
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let v = e.file_name().to_string_lossy().parse::<u32>().ok()?;
            Some((v, e.path().join("bin")))
        })
        .filter(|(_, bin)| bin.join("initdb").exists())
        .collect();
    versions.sort();
    versions
        .pop()
        .map(|(_, bin)| bin)
        .unwrap_or_else(|| panic!("PostgreSQL is not installed: apt-get install postgresql"))
}

impl Postgres {
    /// Initialises a cluster (user `ztgw`, trust on the socket) and starts it.
    pub fn start() -> Self {
        Self::start_with(false)
    }

    /// As [`Postgres::start`], also listening on 127.0.0.1 for TLS connections only (its
    /// certificate from a CA of the test's: [`Postgres::ca`]).
    pub fn start_tls() -> Self {
        Self::start_with(true)
    }

    fn start_with(tls: bool) -> Self {
        netns::require("runuser", "util-linux");
        let bin = bin_dir();
        let dir = tempfile::tempdir().expect("tempdir");
        netns::run(
            Command::new("chown")
                .arg("postgres:postgres")
                .arg(dir.path()),
        );
        let data = dir.path().join("data");
        let as_postgres = |program: &Path| {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(program);
            c
        };
        netns::run(
            as_postgres(&bin.join("initdb"))
                .arg("-D")
                .arg(&data)
                .args(["--auth=trust", "--username=ztgw", "--encoding=UTF8"])
                .args(["--no-instructions", "--no-sync"]),
        );
        let port = crate::free_port();
        let mut settings = vec!["listen_addresses=".to_owned()];
        let mut ca = None;
        if tls {
            let certs = dir.path().join("tls");
            std::fs::create_dir(&certs).expect("tls dir");
            let [ca_pem, cert, key] = crate::server_certificate(&certs, &["127.0.0.1"]);
            netns::run(
                Command::new("chown")
                    .arg("-R")
                    .arg("postgres:postgres")
                    .arg(&certs),
            );
            // Over TCP, TLS or nothing.
            std::fs::write(
                data.join("pg_hba.conf"),
                "local all all trust\nhostssl all all 127.0.0.1/32 trust\n",
            )
            .expect("pg_hba.conf");
            settings = vec![
                "listen_addresses=127.0.0.1".to_owned(),
                "ssl=on".to_owned(),
                format!("ssl_cert_file={}", cert.display()),
                format!("ssl_key_file={}", key.display()),
            ];
            ca = Some(ca_pem);
        }
        let mut pg = Self {
            server: None,
            bin,
            data,
            socket_dir: dir.path().to_owned(),
            port,
            ca,
            settings,
            _dir: dir,
        };
        pg.run_server();
        pg
    }

    fn run_server(&mut self) {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"])
            .arg(self.bin.join("postgres"))
            .arg("-D")
            .arg(&self.data)
            .arg("-k")
            .arg(&self.socket_dir)
            .args(["-c", "fsync=off"])
            .args(self.settings.iter().flat_map(|s| ["-c", s.as_str()]))
            .arg("-p")
            .arg(self.port.to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        self.server = Some(Proc::spawn(c));
        let socket = self.socket_dir.join(format!(".s.PGSQL.{}", self.port));
        assert!(
            netns::eventually(Duration::from_secs(20), || socket.exists()
                && self.psql("postgres", "SELECT 1").is_ok()),
            "PostgreSQL did not start"
        );
    }

    /// Runs one SQL command in database `db` with psql; its output or error.
    pub fn psql(&self, db: &str, sql: &str) -> Result<String, String> {
        let out = Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(self.bin.join("psql"))
            .arg("-h")
            .arg(&self.socket_dir)
            .args(["-p", &self.port.to_string(), "-U", "ztgw", "-d", db])
            .args(["-v", "ON_ERROR_STOP=1", "-At", "-c", sql])
            .output()
            .map_err(|e| e.to_string())?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        }
    }

    /// A new, empty database; its connection string.
    pub fn database(&self, name: &str) -> String {
        self.psql("postgres", &format!("CREATE DATABASE {name}"))
            .unwrap_or_else(|e| panic!("CREATE DATABASE {name}: {e}"));
        self.url(name)
    }

    /// The connection string for database `name` (over the socket).
    pub fn url(&self, name: &str) -> String {
        format!(
            "host={} port={} user=ztgw dbname={name}",
            self.socket_dir.display(),
            self.port
        )
    }

    /// The connection string for database `name` over TCP on 127.0.0.1 (TLS servers).
    pub fn tcp_url(&self, name: &str) -> String {
        format!("host=127.0.0.1 port={} user=ztgw dbname={name}", self.port)
    }

    /// Stops the server at once (what the gateways see as the database going away).
    pub fn stop(&mut self) {
        let _ = Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(self.bin.join("pg_ctl"))
            .arg("-D")
            .arg(&self.data)
            .args(["stop", "-m", "immediate", "-w"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        drop(self.server.take());
    }

    /// Starts it again on the same data.
    pub fn restart(&mut self) {
        self.stop();
        self.run_server();
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        self.stop();
    }
}

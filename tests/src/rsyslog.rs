//! Debian's rsyslog with rsyslog-gnutls, receiving syslog over TLS (RFC 5425) in a
//! network namespace: the security operations centre's collector the journal streams to.
//! Every message it receives is appended, raw, one a line, to a file.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use crate::netns::{self, Netns, Proc};

/// rsyslog listening on `address:port` (TLS, its certificate from a CA of the test's).
#[derive(Debug)]
pub struct Rsyslog {
    proc: Option<Proc>,
    config: PathBuf,
    /// The CA that signs the receiver's certificate.
    pub ca: PathBuf,
    /// Where received messages are written.
    pub received: PathBuf,
    address: String,
    port: u16,
    dir: tempfile::TempDir,
}

impl Rsyslog {
    /// Prepares a receiver for `address` (its certificate names it); [`Rsyslog::start`]
    /// runs it.
    pub fn prepare(address: &str, port: u16) -> Self {
        netns::require("rsyslogd", "rsyslog");
        assert!(
            Path::new("/usr/lib/x86_64-linux-gnu/rsyslog/lmnsd_gtls.so").exists(),
            "rsyslog's TLS driver is missing: apt-get install rsyslog-gnutls"
        );
        let dir = tempfile::tempdir().expect("tempdir");
        let d = dir.path();
        let [ca, cert, key] = crate::server_certificate(d, &[address]);
        std::fs::create_dir(d.join("work")).expect("work dir");
        let received = d.join("received.log");
        let config = d.join("rsyslog.conf");
        std::fs::write(
            &config,
            format!(
                r#"global(
  workDirectory="{work}"
  maxMessageSize="64k"
  defaultNetstreamDriver="gtls"
  defaultNetstreamDriverCAFile="{ca}"
  defaultNetstreamDriverCertFile="{cert}"
  defaultNetstreamDriverKeyFile="{key}"
)
module(load="imtcp" streamDriver.name="gtls" streamDriver.mode="1" streamDriver.authMode="anon")
input(type="imtcp" address="{address}" port="{port}")
template(name="raw" type="string" string="%rawmsg%\n")
action(type="omfile" file="{received}" template="raw")
"#,
                work = d.join("work").display(),
                ca = ca.display(),
                cert = cert.display(),
                key = key.display(),
                received = received.display(),
            ),
        )
        .expect("rsyslog.conf");
        Self {
            proc: None,
            config,
            ca,
            received,
            address: address.to_owned(),
            port,
            dir,
        }
    }

    /// Starts it in `ns` and waits until it listens.
    pub fn start(&mut self, ns: &Netns) {
        let pid = self.dir.path().join("rsyslogd.pid");
        let _ = std::fs::remove_file(&pid);
        let mut c = ns.command("rsyslogd");
        c.arg("-n")
            .arg("-f")
            .arg(&self.config)
            .arg("-i")
            .arg(&pid)
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        self.proc = Some(Proc::spawn(c));
        let probe = format!("exec 3<>/dev/tcp/{}/{}", self.address, self.port);
        assert!(
            netns::eventually(Duration::from_secs(10), || ns
                .succeeds("bash", &["-c", &probe])),
            "rsyslogd did not start listening on {}:{}",
            self.address,
            self.port
        );
    }

    /// Stops it (SIGSTOP): it reads nothing more, and its connections stay open.
    pub fn freeze(&self) {
        let pid = self.proc.as_ref().expect("running").child.id();
        crate::netns::run(std::process::Command::new("kill").args(["-STOP", &pid.to_string()]));
    }

    /// Kills it at once (SIGKILL): what it had not written is lost.
    pub fn kill(&mut self) {
        drop(self.proc.take());
    }

    /// The received messages, one a line.
    pub fn messages(&self) -> Vec<String> {
        std::fs::read_to_string(&self.received)
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect()
    }
}

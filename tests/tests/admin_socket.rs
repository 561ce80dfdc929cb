//! The admin socket checks who is calling, not only its file mode: a caller that is not
//! root, the gateway's user or a member of `[admin] group` is refused even if the file
//! is opened to everyone by mistake; a client that sends nothing is dropped; and only
//! so many clients are served at once. Needs root (CI is root) to act as another user.

use std::io::{BufRead as _, BufReader, Write as _};
use std::os::unix::fs::PermissionsExt as _;
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use ztgw_gateway::admin::socket::{MAX_CONNECTIONS, REQUEST_TIMEOUT};
use ztgw_tests::{GatewayOptions, TestGateway};

/// `ztgw device list`, run as root, is answered.
fn assert_root_is_served(gw: &TestGateway) {
    let out = std::process::Command::new(ztgw_tests::binary("ztgw"))
        .env("ZTGW_CONFIG", gw.config_path())
        .args(["device", "list"])
        .output()
        .expect("ztgw");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_root_and_the_admin_group_are_served_whatever_the_files_mode() {
    let gw = TestGateway::start(GatewayOptions::default()).await;
    let socket = gw.ctx().settings.admin.socket.clone();
    // A mistake: the socket opened to every user, on a path every user can reach.
    std::fs::set_permissions(&socket, std::fs::Permissions::from_mode(0o666)).expect("chmod");
    for dir in [gw.dir.path(), &gw.state_dir()] {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o711)).expect("chmod");
    }
    // The other user's copy of the settings, naming the same state.
    let theirs = tempfile::tempdir().expect("tempdir");
    std::fs::set_permissions(theirs.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let settings = std::fs::read_to_string(gw.config_path())
        .expect("settings")
        .replace(
            "state_dir = \".\"",
            &format!("state_dir = {:?}", gw.state_dir().display().to_string()),
        );
    let config = theirs.path().join("gateway.toml");
    std::fs::write(&config, settings).expect("settings");
    std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let out = std::process::Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .arg(ztgw_tests::binary("ztgw"))
        .env("ZTGW_CONFIG", &config)
        .args(["device", "list"])
        .output()
        .expect("setpriv (util-linux)");
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "nobody was served");
    assert!(said.contains("may not administer"), "{said}");
    assert_root_is_served(&gw);
    gw.running.shutdown("test").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_clients_are_dropped_and_their_number_is_bounded() {
    let gw = TestGateway::start(GatewayOptions::default()).await;
    let socket = gw.ctx().settings.admin.socket.clone();
    let started = Instant::now();
    let silent: Vec<UnixStream> = (0..MAX_CONNECTIONS)
        .map(|_| UnixStream::connect(&socket).expect("connect"))
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    // One more is told at once that the gateway is busy.
    let extra = UnixStream::connect(&socket).expect("connect");
    extra
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let mut line = String::new();
    BufReader::new(&extra)
        .read_line(&mut line)
        .expect("a reply");
    assert!(line.contains("already has"), "{line}");
    // The silent ones are closed: those served after the request timeout, those waiting
    // their turn when it comes (or told to try again when it does not).
    let bound = REQUEST_TIMEOUT * 2 + Duration::from_secs(5);
    for s in silent {
        s.set_read_timeout(Some(bound)).expect("timeout");
        let mut buf = String::new();
        let n = BufReader::new(&s).read_line(&mut buf).unwrap_or(0);
        assert!(
            n == 0 || buf.contains("already has"),
            "closed without serving it: {buf}"
        );
    }
    assert!(started.elapsed() < bound, "{:?}", started.elapsed());
    // And the socket serves again.
    assert_root_is_served(&gw);
    gw.running.shutdown("test").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_protocol_takes_no_path_for_the_gateway_to_write_a_backup_to() {
    let gw = TestGateway::start(GatewayOptions::default()).await;
    let target = gw.dir.path().join("planted.zbak");
    let mut s = UnixStream::connect(&gw.ctx().settings.admin.socket).expect("connect");
    let request = serde_json::json!({
        "operator": "x",
        "request": {
            "command": "backup",
            "to": target,
            "destination": "x",
            "passphrase": "correct horse battery staple",
        }
    });
    writeln!(s, "{request}").expect("send");
    let mut line = String::new();
    BufReader::new(&s).read_line(&mut line).expect("reply");
    assert!(line.contains("unknown field"), "{line}");
    assert!(!target.exists(), "nothing was written");
    gw.running.shutdown("test").await;
}

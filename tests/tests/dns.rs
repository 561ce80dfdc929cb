//! Internal names (#18): the policy's `[dns]` gives a role its internal resolver and
//! domains; `policy check` refuses a role that may not reach its resolver; the admission
//! grant carries them to the agent (here seen in the wg-quick file it writes); and, on a
//! dual-stack gateway, a role with the resolver resolves an internal name (A and AAAA)
//! through the tunnel — a real resolver, Debian's dnsmasq, in the internal namespace —
//! and reaches the server by that name over IPv4 and over IPv6, while a role without it
//! gets no answer.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use ztgw_tests::lab::WEB;
use ztgw_tests::netns::{self, Proc};
use ztgw_tests::site::{ALWAYS, Posture, Site, lab_policy};

const RESOLVER: &str = "10.20.0.54";
/// The intranet's IPv6 address (an IPv6-only network behind the gateway).
const WEB6: &str = "fd00:30::10";

/// The lab's policy with a resolver at [`RESOLVER`] for `finances.test`: hr reaches it,
/// finance has no internal resolver.
fn policy() -> String {
    lab_policy(ALWAYS)
        .replace(
            "[schedules.office]",
            &format!(
                "[resources.resolver]\nhosts = [\"{RESOLVER}\"]\nports = [\"udp/53\", \"tcp/53\"]\n\
                 [resources.intranet6]\nhosts = [\"{WEB6}\"]\nports = [\"tcp/80\"]\n\
                 [dns]\nservers = [\"{RESOLVER}\"]\ndomains = [\"finances.test\"]\n\
                 [schedules.office]"
            ),
        )
        .replace(
            "resources = [\"dns\", \"intranet\"]",
            "resources = [\"dns\", \"intranet\", \"resolver\", \"intranet6\"]",
        )
        .replace(
            "resources = [\"database\", \"dns\"]",
            "resources = [\"database\", \"dns\"]\ndns = false",
        )
}

fn resolve(laptop: &ztgw_tests::site::SiteLaptop, name: &str) -> Option<String> {
    resolve_type(laptop, name, "a")
}

fn resolve_type(laptop: &ztgw_tests::site::SiteLaptop, name: &str, kind: &str) -> Option<String> {
    let out = laptop
        .ns
        .command(ztgw_tests::binary("netns-probe"))
        .args([
            "dns",
            &format!("{RESOLVER}:53"),
            "--name",
            name,
            "--type",
            kind,
        ])
        .args(["--timeout-ms", "700"])
        .output()
        .expect("netns-probe dns");
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

#[test]
fn a_role_with_the_resolver_resolves_internal_names_through_the_tunnel() {
    netns::require("dnsmasq", "dnsmasq-base");
    // A role given the resolver without reaching it is refused, with the place.
    let dir = tempfile::tempdir().expect("tempdir");
    let unreachable = dir.path().join("unreachable.toml");
    std::fs::write(
        &unreachable,
        policy().replace("[\"udp/53\", \"tcp/53\"]", "[\"udp/53\"]"),
    )
    .expect("policy");
    let out = Command::new(ztgw_tests::binary("ztgw"))
        .args(["policy", "check"])
        .arg(&unreachable)
        .output()
        .expect("ztgw policy check");
    let said = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{said}");
    assert!(
        said.contains(&format!(
            "role \"hr\" gets the resolver {RESOLVER} (from [dns]) but may not reach it on tcp/53"
        )),
        "{said}"
    );

    let mut site = Site::new_with(&policy(), |settings| {
        settings.replace(
            "tunnel_network = \"100.64.0.0/16\"",
            "tunnel_network = [\"100.64.0.0/16\", \"fd00:64::/64\"]",
        )
    });
    // The intranet's IPv6 side.
    let (_internal6, _server6) = site.ipv6_network(WEB6);
    let explained = site.ztgw_ok(&[
        "policy",
        "explain",
        &site
            .config
            .with_file_name("policy.toml")
            .display()
            .to_string(),
        "--role",
        "hr",
        "--to",
        &format!("{RESOLVER}:53/udp"),
    ]);
    assert!(
        explained.contains(&format!("dns:      {RESOLVER} for finances.test")),
        "{explained}"
    );

    // The resolver, on the internal network.
    site.internal
        .ip(&["addr", "add", &format!("{RESOLVER}/32"), "dev", "lo"]);
    let _dnsmasq = Proc::spawn({
        let mut c = site.internal.command("dnsmasq");
        c.args([
            "--keep-in-foreground",
            "--conf-file=/dev/null",
            "--no-resolv",
            "--no-hosts",
            "--bind-interfaces",
            "--user=root",
            "--log-facility=-",
        ])
        .arg(format!("--listen-address={RESOLVER}"))
        .arg(format!(
            "--pid-file={}",
            dir.path().join("dnsmasq.pid").display()
        ))
        .arg(format!("--address=/intranet.finances.test/{WEB}"))
        .arg(format!("--address=/intranet.finances.test/{WEB6}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null());
        c
    });

    let hr = site.laptop("e7001", "hr", Posture::Compliant);
    let _hr_agent = hr.connect().expect("hr connects");
    let deadline = Instant::now() + Duration::from_secs(10);
    let answer = loop {
        if let Some(a) = resolve(&hr, "intranet.finances.test") {
            break a;
        }
        assert!(
            Instant::now() < deadline,
            "hr's laptop got no answer from the internal resolver"
        );
    };
    assert_eq!(answer, WEB);
    assert!(
        hr.probe(&["tcp", &format!("{answer}:80")]),
        "hr reaches the intranet by the address its name resolved to"
    );
    let answer6 = resolve_type(&hr, "intranet.finances.test", "aaaa").expect("an AAAA answer");
    assert_eq!(answer6, WEB6);
    assert!(
        hr.probe(&["tcp", &format!("[{answer6}]:80")]),
        "and over IPv6 by the address its name resolved to"
    );

    // finance has no internal resolver and may not reach it.
    let finance = site.laptop("e7002", "finance", Posture::Compliant);
    let _finance_agent = finance.connect().expect("finance connects");
    assert!(finance.reaches_dns(), "finance's tunnel works");
    assert_eq!(resolve(&finance, "intranet.finances.test"), None);

    // The grant carries the resolver and the domain: the wg-quick file the agent writes
    // routes only that domain to it.
    let file = dir.path().join("ztgw-hr.conf");
    let other = site.laptop("e7003", "hr", Posture::Compliant);
    let mut writer = Proc::spawn({
        let mut c = other.ns.command(ztgw_tests::binary("ztgw-agent"));
        c.arg("--state-dir")
            .arg(&other.state)
            .args(["connect", "--write-config"])
            .arg(&file)
            .arg("--posture-root")
            .arg(&other.posture_root)
            .stderr(Stdio::null());
        c
    });
    let deadline = Instant::now() + Duration::from_secs(20);
    while !writer
        .try_line(Duration::from_millis(200))
        .is_some_and(|l| l.starts_with("Connected"))
    {
        assert!(Instant::now() < deadline, "the agent did not connect");
    }
    let written = std::fs::read_to_string(&file).expect("the wg-quick file");
    assert!(
        written.contains(&format!(
            "PostUp = resolvectl dns %i {RESOLVER}; resolvectl domain %i ~finances.test; resolvectl default-route %i false\nPreDown = resolvectl revert %i\n"
        )),
        "{written}"
    );
}

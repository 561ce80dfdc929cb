//! Internal names (#18): the policy's `[dns]` gives a role its internal resolver and
//! domains; `policy check` refuses a role that may not reach its resolver; the admission
//! grant carries them to the agent (here seen in the wg-quick file it writes); and, on a
//! dual-stack gateway, a role with the resolver resolves an internal name (A and AAAA)
//! through the tunnel — a real resolver, Debian's dnsmasq, in the internal namespace —
//! and reaches the server by that name over IPv4 and over IPv6, while a role without it
//! gets no answer.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use ztgw_tests::lab::WEB;
use ztgw_tests::netns::{self, Netns, Proc};
use ztgw_tests::resolved::Resolved;
use ztgw_tests::site::{ALWAYS, Posture, Site, lab_policy};

const RESOLVER: &str = "10.20.0.54";
/// What the internal resolver answers for a public name: never the right answer.
const MISROUTED: &str = "10.20.0.99";
/// What the laptop's own resolver answers for the public name.
const PUBLIC: &str = "198.51.100.7";
/// What the laptop's own resolver answers for the intranet's name (a public look-alike,
/// as a resolver outside the administration could).
const OUTSIDE_ANSWER: &str = "198.51.100.80";
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

/// Debian's dnsmasq at `listen` in `ns`, answering `records` (name, address) and nothing
/// else.
fn dnsmasq(ns: &Netns, listen: &str, records: &[(&str, &str)], dir: &Path) -> Proc {
    netns::require("dnsmasq", "dnsmasq-base");
    let mut c = ns.command("dnsmasq");
    c.args([
        "--keep-in-foreground",
        "--conf-file=/dev/null",
        "--no-resolv",
        "--no-hosts",
        "--bind-interfaces",
        "--user=root",
        "--log-facility=-",
    ])
    .arg(format!("--listen-address={listen}"))
    .arg(format!(
        "--pid-file={}",
        dir.join(format!("dnsmasq-{listen}.pid")).display()
    ))
    .stdout(Stdio::null())
    .stderr(Stdio::null());
    for (name, address) in records {
        c.arg(format!("--address=/{name}/{address}"));
    }
    Proc::spawn(c)
}

/// The internal resolver at [`RESOLVER`]: the intranet's name (IPv4 and IPv6) and a
/// public name with an internal answer, so that a query sent here by mistake shows.
fn internal_resolver(site: &Site, dir: &Path) -> Proc {
    site.internal
        .ip(&["addr", "add", &format!("{RESOLVER}/32"), "dev", "lo"]);
    dnsmasq(
        &site.internal,
        RESOLVER,
        &[
            ("intranet.finances.test", WEB),
            ("intranet.finances.test", WEB6),
            ("www.public.test", MISROUTED),
        ],
        dir,
    )
}

fn resolve(laptop: &ztgw_tests::site::SiteLaptop, name: &str) -> Option<String> {
    resolve_type(laptop, name, "a")
}

fn resolve_type(laptop: &ztgw_tests::site::SiteLaptop, name: &str, kind: &str) -> Option<String> {
    ask(laptop, &format!("{RESOLVER}:53"), name, kind)
}

/// Asks `server` for `name`'s `kind` record from the laptop; the answer's address.
fn ask(
    laptop: &ztgw_tests::site::SiteLaptop,
    server: &str,
    name: &str,
    kind: &str,
) -> Option<String> {
    let out = laptop
        .ns
        .command(ztgw_tests::binary("netns-probe"))
        .args(["dns", server, "--name", name, "--type", kind])
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
    let _dnsmasq = internal_resolver(&site, dir.path());

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

/// On a laptop with systemd-resolved, the agent routes only the listed domains to the
/// internal resolver for the life of the session: the intranet's name resolves to its
/// internal address through the tunnel while every other name still resolves through the
/// laptop's own resolver. A re-check that moves the session into its quarantine role
/// (which has no internal resolver) takes the routing away, and compliance gives it back.
/// After disconnect the laptop resolves as it did before, and resolved's routing is what
/// it was.
#[test]
fn split_dns_on_a_laptop_with_systemd_resolved_is_undone_after_the_session() {
    let dir = tempfile::tempdir().expect("tempdir");
    let policy = format!(
        "[settings]\nposture_recheck = \"5s\"\n{}\n\
         [roles.remediation]\nresources = [\"dns\"]\nschedule = \"office\"\nposture = \"lab\"\ndns = false\n",
        policy().replace("[roles.hr]\n", "[roles.hr]\nquarantine = \"remediation\"\n")
    );
    let mut site = Site::new(&policy);
    let _internal = internal_resolver(&site, dir.path());
    let hr = site.laptop("e7101", "hr", Posture::Compliant);

    // The laptop's own resolver: its home router's, on the laptop's link.
    let route = hr.ns.ip(&["-4", "route", "show", "192.0.2.1/32"]);
    let router = route
        .split_whitespace()
        .skip_while(|w| *w != "via")
        .nth(1)
        .unwrap_or_else(|| panic!("no route to the gateway: {route}"))
        .to_owned();
    let _home = dnsmasq(
        &site.gw,
        &router,
        &[
            ("www.public.test", PUBLIC),
            ("intranet.finances.test", OUTSIDE_ANSWER),
        ],
        dir.path(),
    );
    let resolved = Resolved::start(&hr.ns, &router);
    let stub = "127.0.0.53:53";
    let looked_up = |name: &str| {
        let mut answer = None;
        netns::eventually(Duration::from_secs(5), || {
            answer = ask(&hr, stub, name, "a");
            answer.is_some()
        });
        answer
    };
    assert_eq!(looked_up("www.public.test").as_deref(), Some(PUBLIC));
    assert_eq!(
        looked_up("intranet.finances.test").as_deref(),
        Some(OUTSIDE_ANSWER)
    );
    let before = resolved.routing(&hr.ns);

    let agent = hr.connect_env(&[], &resolved.env()).expect("hr connects");
    let link = String::from_utf8_lossy(
        &resolved
            .resolvectl(&hr.ns, &["domain", &hr.wg.iface])
            .stdout,
    )
    .into_owned();
    assert!(link.contains("~finances.test"), "{link}");
    assert_eq!(
        looked_up("intranet.finances.test").as_deref(),
        Some(WEB),
        "the listed domain goes to the internal resolver, through the tunnel"
    );
    assert_eq!(
        looked_up("www.public.test").as_deref(),
        Some(PUBLIC),
        "every other name still goes to the laptop's own resolver"
    );

    // A forbidden tool appears: the next re-check quarantines the session, and the
    // quarantine role has no internal resolver.
    let nmap = hr.posture_root.join("usr/bin/nmap");
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::write(&nmap, b"#!/bin/sh\n").expect("nmap");
        std::fs::set_permissions(&nmap, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    }
    let routed = || {
        String::from_utf8_lossy(
            &resolved
                .resolvectl(&hr.ns, &["domain", &hr.wg.iface])
                .stdout,
        )
        .contains("~finances.test")
    };
    assert!(
        netns::eventually(Duration::from_secs(20), || !routed()),
        "quarantine takes the internal resolver away"
    );
    assert_eq!(
        looked_up("intranet.finances.test").as_deref(),
        Some(OUTSIDE_ANSWER)
    );
    std::fs::remove_file(&nmap).expect("remove nmap");
    assert!(
        netns::eventually(Duration::from_secs(20), routed),
        "compliant again, the role's resolver is back"
    );
    assert_eq!(looked_up("intranet.finances.test").as_deref(), Some(WEB));

    let out = hr
        .ns
        .command(ztgw_tests::binary("ztgw-agent"))
        .arg("--state-dir")
        .arg(&hr.state)
        .arg("disconnect")
        .envs(resolved.env())
        .output()
        .expect("ztgw-agent disconnect");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    drop(agent);
    assert_eq!(
        resolved.routing(&hr.ns),
        before,
        "resolved's routing is as it was"
    );
    assert_eq!(
        looked_up("intranet.finances.test").as_deref(),
        Some(OUTSIDE_ANSWER),
        "after the session the intranet's name resolves as it did before"
    );
    assert_eq!(looked_up("www.public.test").as_deref(), Some(PUBLIC));
}

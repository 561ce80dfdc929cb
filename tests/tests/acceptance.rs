//! The product's acceptance test: README's run command (`deploy/scripts/demo.sh`), run
//! as it is, with every outcome of its story checked. Needs root (CI is root).

use std::process::Command;

#[test]
fn the_demo_tells_the_whole_story() {
    ztgw_tests::netns::require("wireguard-go", "wireguard-go");
    ztgw_tests::netns::require("curl", "curl");
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let out = Command::new("bash")
        .arg(root.join("deploy/scripts/demo.sh"))
        .env("DEMO_NO_BUILD", "1")
        .output()
        .expect("run demo.sh");
    let text = String::from_utf8_lossy(&out.stdout);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "demo.sh failed:\n{text}\n{err}");
    let expect = [
        // Enrolment, admission.
        "enrolled as dev-",
        "Connected: session s-",
        // Allowed and denied access.
        "<h1>Intranet of the ministry</h1>",
        "(connect to the database, 10.20.1.5:5432) reachable",
        "(connect to ssh, 10.20.1.5:22) refused by the gateway",
        // The posture refusal, with its reason and remedy.
        "forbidden software found: nmap (posture.forbidden-software)",
        "what to do: Remove it",
        // The revocation cuts the tunnel.
        "revoked (lost)",
        "no answer: the tunnel is gone",
        // The journal and the reports.
        "journal intact:",
        "session.ended",
        "device-revoked",
        "admission.denied",
        "e1029            ",
    ];
    let all = format!("{text}{err}");
    for e in expect {
        assert!(all.contains(e), "the demo's output lacks {e:?}:\n{all}");
    }
    // Nothing is left behind.
    let tag = text
        .lines()
        .find_map(|l| {
            l.split_whitespace()
                .find(|w| w.starts_with("zd") && w.ends_with("wa"))
        })
        .map(|w| w.trim_end_matches("wa").to_owned())
        .expect("the demo's namespace tag");
    let namespaces = ztgw_tests::netns::run(Command::new("ip").args(["netns", "list"]));
    assert!(!namespaces.contains(&tag), "namespaces left: {namespaces}");
    assert!(!std::path::Path::new(&format!("/var/run/wireguard/{tag}wa.sock")).exists());
}

//! The journal crate (`ztgw-journal`, #19) and the auditors' tool (`ztgw-audit`) link
//! none of the gateway's data plane, database, HTTP or async runtime (read from `cargo
//! tree`, as cargo resolves each package built alone).

use std::process::Command;

#[test]
fn the_journal_crate_links_no_networking_tun_or_database_code() {
    for package in ["ztgw-journal", "ztgw-audit"] {
        check(package);
    }
}

fn check(package: &str) {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
        .args([
            "tree",
            "--offline",
            "-p",
            package,
            "-e",
            "normal",
            "--prefix",
            "none",
        ])
        .output()
        .expect("cargo tree");
    let tree = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "cargo tree: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let crates: Vec<&str> = tree
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert!(crates.contains(&package), "{tree}");
    for forbidden in [
        "boringtun",
        "tun-rs",
        "rusqlite",
        "libsqlite3-sys",
        "hyper",
        "tokio",
        "ldap3",
        "ztgw-gateway",
    ] {
        assert!(
            !crates.contains(&forbidden),
            "{package} pulls {forbidden}:\n{tree}"
        );
    }
}

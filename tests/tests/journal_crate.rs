//! The journal crate (`ztgw-journal`, #19) is what an auditor's tool links: none of the
//! gateway's data plane, database, HTTP or async runtime (read from `cargo tree`, as
//! cargo resolves the crate built alone).

use std::process::Command;

#[test]
fn the_journal_crate_links_no_networking_tun_or_database_code() {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
        .args([
            "tree",
            "--offline",
            "-p",
            "ztgw-journal",
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
    assert!(crates.contains(&"ztgw-journal"), "{tree}");
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
            "ztgw-journal pulls {forbidden}:\n{tree}"
        );
    }
}

//! Evaluating a report that lists 2,000 packages against a profile (target: median
//! ≤ 50 µs), beside parsing the same report from JSON, measured in the same run; parsing
//! a typical report (150 packages; target ≤ 100 µs) against parsing the same bytes as
//! plain JSON (`serde_json::Value`, the baseline); and the size of a typical report
//! (target ≤ 16 KiB).
//!
//! Run: `cargo bench -p ztgw-posture --bench evaluate`

use std::hint::black_box;
use std::path::PathBuf;

use criterion::Criterion;
use ztgw_posture::evaluate::{Freshness, evaluate};
use ztgw_posture::profile::Profile;
use ztgw_posture::report::*;

fn report(packages: usize) -> PostureReport {
    PostureReport {
        schema_version: SCHEMA_VERSION,
        collected_at: "2026-11-29T09:58:00Z".into(),
        agent_version: "0.1.0".into(),
        nonce: "bm9uY2UtMTIzNDU2Nzg5MA".into(),
        os: Fact::known(
            OsInfo {
                family: OsFamily::Linux,
                id: "debian".into(),
                name: "Debian GNU/Linux 12 (bookworm)".into(),
                version: "12".into(),
                build: None,
                kernel: Some("6.1.0-27-amd64".into()),
            },
            "/etc/os-release",
        ),
        last_update: Fact::known("2026-11-25T08:00:00Z".into(), "apt"),
        antivirus: Fact::known(
            vec![Antivirus {
                product: "ClamAV".into(),
                running: true,
                signatures_version: Some("27470".into()),
                signatures_time: Some("2026-11-28T08:26:00Z".into()),
            }],
            "clamav",
        ),
        firewall: Fact::known(
            Firewall {
                active: true,
                product: "ufw".into(),
            },
            "ufw",
        ),
        volumes: Fact::known(
            vec![
                Volume {
                    mount: "/".into(),
                    encrypted: true,
                },
                Volume {
                    mount: "/home".into(),
                    encrypted: true,
                },
            ],
            "mounts",
        ),
        screen_lock: Fact::known(
            ScreenLock {
                enabled: true,
                idle_delay_secs: Some(300),
            },
            "dconf",
        ),
        // Names of varied lengths, as a real dpkg database has.
        software: Fact::known(
            (0..packages)
                .map(|i| Package {
                    name: format!(
                        "{}{}",
                        [
                            "lib",
                            "python3-",
                            "fonts-",
                            "gir1.2-",
                            "x",
                            "node-",
                            "golang-github-"
                        ][i % 7],
                        "abcdefghijklmnopqrstuvwxyz"
                            .get(..3 + i % 20)
                            .unwrap_or("abc")
                    ),
                    version: format!("{}.{}.{}-1", i % 7, i % 13, i % 31),
                })
                .collect(),
            "dpkg",
        ),
        tools_on_path: Fact::known(vec![], "PATH"),
        browsers: Fact::known(
            vec![Browser {
                name: "firefox-esr".into(),
                version: "128.5.0esr-1~deb12u1".into(),
            }],
            "dpkg",
        ),
        removable_storage: Fact::known(RemovableStorage::Blocked, "modprobe"),
        wifi: Fact::unknown("not read"),
        data_markers: Fact::known(vec![], "markers"),
    }
}

fn median_ns(name: &str) -> Option<f64> {
    let dir = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"));
    let text = std::fs::read_to_string(
        dir.join("criterion/posture")
            .join(name)
            .join("new/estimates.json"),
    )
    .ok()?;
    serde_json::from_str::<serde_json::Value>(&text).ok()?["median"]["point_estimate"].as_f64()
}

fn main() {
    let big = report(2_000);
    let mut profile = Profile {
        min_browser_versions: [("firefox-esr".to_owned(), "115.0".to_owned())].into(),
        required_software: vec!["clamav".into(), "firefox-esr".into()],
        ..Profile::default()
    };
    profile
        .forbidden_software
        .extend((0..50).map(|i| format!("tool-{i}")));
    let now: jiff::Timestamp = "2026-11-29T10:00:00Z".parse().expect("now");
    let json = serde_json::to_vec(&big).expect("json");
    let typical = serde_json::to_vec(&report(150)).expect("json");

    let mut c = Criterion::default()
        .configure_from_args()
        .warm_up_time(std::time::Duration::from_secs(1))
        .measurement_time(std::time::Duration::from_secs(3));
    let mut g = c.benchmark_group("posture");
    g.bench_function("evaluate-2000-packages", |b| {
        b.iter(|| {
            evaluate(
                black_box(&big),
                &profile,
                now,
                Freshness::Require {
                    nonce: "bm9uY2UtMTIzNDU2Nzg5MA",
                },
            )
        })
    });
    g.bench_function("parse-2000-packages", |b| {
        b.iter(|| PostureReport::parse(black_box(&json)))
    });
    g.bench_function("parse-typical", |b| {
        b.iter(|| PostureReport::parse(black_box(&typical)))
    });
    g.bench_function("json-value-typical", |b| {
        b.iter(|| serde_json::from_slice::<serde_json::Value>(black_box(&typical)))
    });
    g.finish();
    c.final_summary();

    println!();
    println!(
        "posture: a report of 2,000 packages is {} bytes; a typical one (150 packages) is {} bytes (target <= 16384)",
        json.len(),
        typical.len()
    );
    match (
        median_ns("evaluate-2000-packages"),
        median_ns("parse-2000-packages"),
    ) {
        (Some(eval), Some(parse)) => println!(
            "posture: evaluate median {:.1} us (target <= 50 us), parsing the same report {:.1} us: evaluation is {:.2}x the cost of parsing",
            eval / 1000.0,
            parse / 1000.0,
            eval / parse
        ),
        _ => println!("posture: medians not found under target/criterion/posture"),
    }
    match (median_ns("parse-typical"), median_ns("json-value-typical")) {
        (Some(parse), Some(plain)) => println!(
            "posture: parsing a typical report (150 packages, {} bytes) median {:.1} us (target <= 100 us), {:.2}x parsing the same bytes as plain JSON ({:.1} us)",
            typical.len(),
            parse / 1000.0,
            parse / plain,
            plain / 1000.0
        ),
        _ => println!("posture: medians not found under target/criterion/posture"),
    }
}

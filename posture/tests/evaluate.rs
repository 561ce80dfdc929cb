//! The evaluator's table: each check passes, fails and is unknown, and unknown is never
//! compliant; stale and replayed reports are refused.

use jiff::Timestamp;
use ztgw_posture::evaluate::{Freshness, Outcome, evaluate};
use ztgw_posture::profile::{AllowedOs, Marker, Profile};
use ztgw_posture::report::*;

const NOW: &str = "2026-11-29T10:00:00Z";

fn base() -> PostureReport {
    PostureReport {
        schema_version: SCHEMA_VERSION,
        collected_at: "2026-11-29T09:58:00Z".into(),
        agent_version: "0.1.0".into(),
        nonce: "nonce-123".into(),
        os: Fact::known(
            OsInfo {
                family: OsFamily::Linux,
                id: "debian".into(),
                name: "Debian GNU/Linux 12".into(),
                version: "12".into(),
                build: None,
                kernel: None,
            },
            "os-release",
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
            vec![Volume {
                mount: "/".into(),
                encrypted: true,
            }],
            "mounts",
        ),
        screen_lock: Fact::known(
            ScreenLock {
                enabled: true,
                idle_delay_secs: Some(300),
            },
            "dconf",
        ),
        software: Fact::known(
            vec![
                Package {
                    name: "firefox-esr".into(),
                    version: "128.5.0esr-1".into(),
                },
                Package {
                    name: "clamav".into(),
                    version: "1.0.7".into(),
                },
            ],
            "dpkg",
        ),
        tools_on_path: Fact::known(vec![], "PATH"),
        browsers: Fact::known(
            vec![Browser {
                name: "firefox-esr".into(),
                version: "128.5.0esr-1".into(),
            }],
            "dpkg",
        ),
        removable_storage: Fact::known(RemovableStorage::Blocked, "modprobe"),
        wifi: Fact::known(WifiSecurity::Wpa2, "NetworkManager"),
        data_markers: Fact::known(vec![], "markers"),
    }
}

fn profile() -> Profile {
    Profile {
        os: vec![
            AllowedOs {
                id: "debian".into(),
                min_version: Some("12".into()),
            },
            AllowedOs {
                id: "ubuntu".into(),
                min_version: Some("22.04".into()),
            },
        ],
        min_browser_versions: [("firefox-esr".to_owned(), "115.0".to_owned())].into(),
        required_software: vec!["clamav".into()],
        forbidden_data_markers: vec![Marker {
            name: "payroll".into(),
            path: "Documents/paie".into(),
        }],
        removable_storage_blocked: true,
        ..Profile::default()
    }
}

fn outcome(r: &PostureReport, id: &str) -> Outcome {
    let now: Timestamp = NOW.parse().expect("now");
    let e = evaluate(
        r,
        &profile(),
        now,
        Freshness::Require { nonce: "nonce-123" },
    );
    e.checks
        .iter()
        .find(|c| c.id == id)
        .unwrap_or_else(|| panic!("no check {id}: {e:?}"))
        .outcome
}

#[test]
fn a_compliant_laptop_passes_every_check() {
    let now: Timestamp = NOW.parse().expect("now");
    let e = evaluate(
        &base(),
        &profile(),
        now,
        Freshness::Require { nonce: "nonce-123" },
    );
    assert!(
        e.compliant,
        "{:#?}",
        e.checks
            .iter()
            .filter(|c| c.outcome != Outcome::Pass)
            .collect::<Vec<_>>()
    );
    assert_eq!(e.checks.len(), 15);
    assert!(e.failed().is_empty());
}

type Edit = fn(&mut PostureReport);

#[test]
fn every_check_fails_and_is_unknown_with_a_reason() {
    let cases: Vec<(&str, Outcome, Edit)> = vec![
        ("report.nonce", Outcome::Fail, |r| r.nonce = "other".into()),
        ("report.age", Outcome::Fail, |r| {
            r.collected_at = "2026-11-29T09:00:00Z".into()
        }),
        ("report.age", Outcome::Fail, |r| {
            r.collected_at = "2026-11-29T10:30:00Z".into()
        }),
        ("posture.os", Outcome::Fail, |r| {
            if let Fact::Known { value, .. } = &mut r.os {
                value.id = "arch".into()
            }
        }),
        ("posture.os", Outcome::Fail, |r| {
            if let Fact::Known { value, .. } = &mut r.os {
                value.version = "11".into()
            }
        }),
        ("posture.os", Outcome::Unknown, |r| {
            r.os = Fact::unknown("no os-release")
        }),
        ("posture.updates", Outcome::Fail, |r| {
            r.last_update = Fact::known("2026-09-01T00:00:00Z".into(), "apt")
        }),
        ("posture.updates", Outcome::Unknown, |r| {
            r.last_update = Fact::unknown("no apt")
        }),
        ("posture.antivirus", Outcome::Fail, |r| {
            r.antivirus = Fact::known(vec![], "none")
        }),
        ("posture.antivirus", Outcome::Unknown, |r| {
            r.antivirus = Fact::unknown("?")
        }),
        ("posture.antivirus-running", Outcome::Fail, |r| {
            if let Fact::Known { value, .. } = &mut r.antivirus {
                value[0].running = false
            }
        }),
        ("posture.antivirus-signatures", Outcome::Fail, |r| {
            if let Fact::Known { value, .. } = &mut r.antivirus {
                value[0].signatures_time = Some("2026-10-01T00:00:00Z".into())
            }
        }),
        ("posture.antivirus-signatures", Outcome::Unknown, |r| {
            if let Fact::Known { value, .. } = &mut r.antivirus {
                value[0].signatures_time = None
            }
        }),
        ("posture.firewall", Outcome::Fail, |r| {
            r.firewall = Fact::known(
                Firewall {
                    active: false,
                    product: "ufw".into(),
                },
                "ufw",
            )
        }),
        ("posture.firewall", Outcome::Unknown, |r| {
            r.firewall = Fact::unknown("none found")
        }),
        ("posture.disk-encryption", Outcome::Fail, |r| {
            r.volumes = Fact::known(
                vec![Volume {
                    mount: "/home".into(),
                    encrypted: false,
                }],
                "mounts",
            )
        }),
        ("posture.disk-encryption", Outcome::Unknown, |r| {
            r.volumes = Fact::unknown("overlay")
        }),
        ("posture.screen-lock", Outcome::Fail, |r| {
            r.screen_lock = Fact::known(
                ScreenLock {
                    enabled: false,
                    idle_delay_secs: Some(300),
                },
                "dconf",
            )
        }),
        ("posture.screen-lock", Outcome::Fail, |r| {
            r.screen_lock = Fact::known(
                ScreenLock {
                    enabled: true,
                    idle_delay_secs: Some(3600),
                },
                "dconf",
            )
        }),
        ("posture.screen-lock", Outcome::Unknown, |r| {
            r.screen_lock = Fact::unknown("no dconf")
        }),
        ("posture.browsers", Outcome::Fail, |r| {
            r.browsers = Fact::known(
                vec![Browser {
                    name: "firefox-esr".into(),
                    version: "102.15.0esr-1".into(),
                }],
                "dpkg",
            )
        }),
        ("posture.browsers", Outcome::Unknown, |r| {
            r.browsers = Fact::unknown("no dpkg")
        }),
        ("posture.forbidden-software", Outcome::Fail, |r| {
            if let Fact::Known { value, .. } = &mut r.software {
                value.push(Package {
                    name: "hydra".into(),
                    version: "9.4".into(),
                })
            }
        }),
        ("posture.forbidden-software", Outcome::Fail, |r| {
            r.tools_on_path = Fact::known(vec!["nmap".into()], "PATH")
        }),
        ("posture.forbidden-software", Outcome::Unknown, |r| {
            r.software = Fact::unknown("no dpkg")
        }),
        ("posture.required-software", Outcome::Fail, |r| {
            r.software = Fact::known(vec![], "dpkg")
        }),
        ("posture.data-markers", Outcome::Fail, |r| {
            r.data_markers = Fact::known(vec!["payroll".into()], "markers")
        }),
        ("posture.data-markers", Outcome::Unknown, |r| {
            r.data_markers = Fact::unknown("bound reached")
        }),
        ("posture.removable-storage", Outcome::Fail, |r| {
            r.removable_storage = Fact::known(RemovableStorage::Allowed, "modprobe")
        }),
    ];
    let now: Timestamp = NOW.parse().expect("now");
    for (id, want, edit) in cases {
        let mut r = base();
        edit(&mut r);
        assert_eq!(outcome(&r, id), want, "{id}");
        let e = evaluate(
            &r,
            &profile(),
            now,
            Freshness::Require { nonce: "nonce-123" },
        );
        assert!(
            !e.compliant,
            "{id}: a {want:?} check makes the device non-compliant"
        );
        let check = e
            .checks
            .iter()
            .find(|c| c.id == id && c.outcome == want)
            .expect("check");
        assert!(
            !check.sentence.is_empty() && check.remediation.is_some(),
            "{id}: {check:?}"
        );
    }
}

#[test]
fn a_preview_on_the_laptop_skips_only_freshness() {
    let mut r = base();
    r.nonce = String::new();
    r.collected_at = "2020-01-01T00:00:00Z".into();
    let now: Timestamp = NOW.parse().expect("now");
    let e = evaluate(&r, &profile(), now, Freshness::Preview);
    assert!(e.compliant);
    assert!(!e.checks.iter().any(|c| c.id.starts_with("report.")));
    let e = evaluate(&r, &profile(), now, Freshness::Require { nonce: "" });
    assert!(!e.compliant, "an empty nonce never matches");
}

#[test]
fn malformed_oversized_and_wrong_version_reports_are_refused_with_a_code() {
    let good = serde_json::to_vec(&base()).expect("json");
    assert!(PostureReport::parse(&good).is_ok());
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (b"{".to_vec(), "report_malformed"),
        (b"[]".to_vec(), "report_malformed"),
        (good[..good.len() / 2].to_vec(), "report_malformed"),
        (vec![b' '; MAX_REPORT_BYTES + 1], "report_too_large"),
        (
            String::from_utf8_lossy(&good)
                .replace("\"schema_version\":1", "\"schema_version\":2")
                .into_bytes(),
            "report_version",
        ),
        (
            String::from_utf8_lossy(&good)
                .replace("\"agent_version\"", "\"extra\":1,\"agent_version\"")
                .into_bytes(),
            "report_malformed",
        ),
    ];
    for (bytes, code) in cases {
        assert_eq!(PostureReport::parse(&bytes).expect_err(code).code, code);
    }
    let mut many = base();
    many.software = Fact::known(
        (0..MAX_SOFTWARE + 1)
            .map(|i| Package {
                name: format!("p{i}"),
                version: "1".into(),
            })
            .collect(),
        "dpkg",
    );
    let bytes = serde_json::to_vec(&many).expect("json");
    let err = PostureReport::parse(&bytes).expect_err("too long");
    assert!(
        matches!(err.code, "report_list_too_long" | "report_too_large"),
        "{err}"
    );
}

//! The web console against bad input and the wrong people, over real HTTPS (curl with
//! the operator's PKCS#12 file), on a gateway running in-process with the settings
//! `ztgw init` writes and `[console]` added: no certificate, a certificate that is not an
//! operator's (an API auditor's, a device's), a revoked or expired one, forged and missing CSRF tokens, a request from
//! another site, oversized and malformed forms, an unconfirmed revocation, markup in a
//! field shown back as text. Each refusal says why; those of a signed-in operator are
//! journaled.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use ztgw_tests::console::{PASSPHRASE, add_operator};
use ztgw_tests::{GatewayOptions, TestGateway};

struct Console {
    gw: TestGateway,
    url: String,
    ca: PathBuf,
}

impl Console {
    async fn start() -> Self {
        let gw = TestGateway::start(GatewayOptions {
            edit: Some(|s| format!("{s}\n[console]\nlisten = \"127.0.0.1:0\"\n")),
            ..Default::default()
        })
        .await;
        let addr = gw.running.console_addr.expect("the console is on");
        let ca = gw.config_path().with_file_name("ca.pem");
        Self {
            url: format!("https://127.0.0.1:{}", addr.port()),
            ca,
            gw,
        }
    }

    fn ztgw(&self, args: &[&str]) -> std::process::Output {
        Command::new(ztgw_tests::binary("ztgw"))
            .arg("--config")
            .arg(self.gw.config_path())
            .args(args)
            .output()
            .expect("run ztgw")
    }

    fn operator(&self, name: &str, role: &str, valid_for: &str) -> PathBuf {
        add_operator(
            |args| {
                let out = self.ztgw(args);
                assert!(out.status.success(), "{out:?}");
            },
            self.gw.dir.path(),
            name,
            role,
            valid_for,
        )
    }

    /// curl `path` with the client certificate `cert` (a PKCS#12 file, or PEM
    /// certificate and key) and `args` more: the status (0 when there was no HTTP answer)
    /// and the body.
    fn curl(&self, cert: Cert<'_>, path: &str, args: &[&str]) -> (u16, String) {
        let mut cmd = Command::new("curl");
        cmd.args(["-s", "-o", "-", "-w", "\n%{http_code}", "--max-time", "10"])
            .arg("--cacert")
            .arg(&self.ca);
        match cert {
            Cert::None => {}
            Cert::P12(p12) => {
                cmd.args(["--cert-type", "P12", "--cert"])
                    .arg(format!("{}:{PASSPHRASE}", p12.display()));
            }
            Cert::Pem(cert, key) => {
                cmd.arg("--cert").arg(cert).arg("--key").arg(key);
            }
        }
        let out = cmd
            .args(args)
            .arg(format!("{}{path}", self.url))
            .output()
            .expect("curl");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let (body, code) = text.rsplit_once('\n').unwrap_or(("", &text));
        (code.trim().parse().unwrap_or(0), body.to_owned())
    }

    /// The CSRF token of `p12`'s pages.
    fn token(&self, p12: &Path) -> String {
        let (status, page) = self.curl(Cert::P12(p12), "/incidents", &[]);
        assert_eq!(status, 200, "{page}");
        let at = page.find("name=\"csrf\" value=\"").expect("a token") + 19;
        page[at..].split('"').next().expect("its end").to_owned()
    }
}

#[derive(Clone, Copy)]
enum Cert<'a> {
    None,
    P12(&'a Path),
    Pem(&'a Path, &'a Path),
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_refuses_the_wrong_people_and_says_why() {
    ztgw_tests::netns::require("curl", "curl");
    let c = Console::start().await;
    let amina = c.operator("amina", "security-unit", "30d");

    let (status, page) = c.curl(Cert::None, "/?lang=en", &[]);
    assert_eq!(status, 401, "{page}");
    assert!(page.contains("operator certificate"), "{page}");

    // An auditor of the journal API (`ztgw auditor add`) is not a console operator.
    let bundle = c.gw.dir.path().join("api-auditor");
    let out = c.ztgw(&[
        "auditor",
        "add",
        "cour-des-comptes",
        "--out",
        &bundle.display().to_string(),
    ]);
    assert!(out.status.success(), "{out:?}");
    let (status, page) = c.curl(
        Cert::Pem(&bundle.join("auditor.pem"), &bundle.join("auditor.key")),
        "/?lang=en",
        &[],
    );
    assert_eq!(status, 403, "{page}");
    assert!(page.contains("not an operator"), "{page}");

    // Nor is a device's.
    let agent = c.gw.enrol("e1029").await;
    let state = agent.state();
    let (status, page) = c.curl(
        Cert::Pem(&state.certificate(), &state.tls_key()),
        "/?lang=en",
        &[],
    );
    assert_eq!(status, 403, "{page}");
    assert!(page.contains("not an operator"), "{page}");

    let (status, page) = c.curl(Cert::P12(&amina), "/?lang=en", &[]);
    assert_eq!(status, 200, "{page}");
    assert!(
        page.contains("Signed in as <strong>amina</strong>"),
        "{page}"
    );

    // Revoked: refused from the next connection on (the revocation list in TLS).
    let out = c.ztgw(&["operator", "revoke", "amina", "--note", "left the unit"]);
    assert!(out.status.success(), "{out:?}");
    let (status, page) = c.curl(Cert::P12(&amina), "/", &[]);
    assert_eq!(status, 0, "no answer to a revoked certificate: {page}");

    // Expired: refused by TLS as well.
    let issued = std::time::Instant::now();
    let brief = c.operator("brief", "security-unit", "10s");
    assert_eq!(c.curl(Cert::P12(&brief), "/", &[]).0, 200);
    std::thread::sleep(Duration::from_secs(11).saturating_sub(issued.elapsed()));
    assert_eq!(c.curl(Cert::P12(&brief), "/", &[]).0, 0, "expired");
    assert!(
        c.gw.journal("operator.revoked")[0]["note"] == "left the unit",
        "the revocation is journaled"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_refuses_forged_oversized_and_malformed_forms() {
    ztgw_tests::netns::require("curl", "curl");
    let c = Console::start().await;
    let amina = c.operator("amina", "security-unit", "30d");
    let token = c.token(&amina);
    // Two days ahead (overrides last at most 31 days), as the console's field writes it.
    let until = (time::OffsetDateTime::now_utc() + time::Duration::days(2))
        .format(time::macros::format_description!(
            "[year]-[month]-[day]T[hour]:[minute]"
        ))
        .expect("a time");
    let post = |path: &str, body: &str, extra: &[&str]| {
        let mut args = vec![
            "--data-binary",
            body,
            "-H",
            "Content-Type: application/x-www-form-urlencoded",
        ];
        args.extend_from_slice(extra);
        c.curl(Cert::P12(&amina), &format!("{path}?lang=en"), &args)
    };
    let refused = |reason: &str| {
        c.gw.journal("console.refused")
            .iter()
            .filter(|e| e["reason"] == reason && e["name"] == "amina")
            .count()
    };

    // The token: forged, missing, or another operator's.
    let (status, page) = post(
        "/overrides",
        "csrf=forged&role=finance&until=2030-01-01T10:00&reason=x",
        &[],
    );
    assert_eq!(status, 403, "{page}");
    assert!(page.contains("did not come from the console"), "{page}");
    let (status, _) = post(
        "/overrides",
        "role=finance&until=2030-01-01T10:00&reason=x",
        &[],
    );
    assert_eq!(status, 403);
    let omar = c.operator("omar", "security-unit", "30d");
    let (status, _) = post(
        "/overrides",
        &format!(
            "csrf={}&role=finance&until=2030-01-01T10:00&reason=x",
            c.token(&omar)
        ),
        &[],
    );
    assert_eq!(status, 403, "another operator's token");
    assert_eq!(refused("csrf-token-invalid"), 3);

    // Another site's page posting with the operator's browser.
    let body = format!("csrf={token}&role=finance&until=2030-01-01T10:00&reason=x");
    let (status, _) = post("/overrides", &body, &["-H", "Origin: https://evil.example"]);
    assert_eq!(status, 403);
    let (status, _) = post("/overrides", &body, &["-H", "Sec-Fetch-Site: cross-site"]);
    assert_eq!(status, 403);
    assert_eq!(refused("cross-site-request"), 2);
    assert!(
        c.gw.journal("schedule.override").is_empty(),
        "nothing was done"
    );

    // Too large, malformed, unknown fields, unconfirmed.
    let huge = format!("csrf={token}&reason={}", "x".repeat(20_000));
    let (status, page) = post("/overrides", &huge, &[]);
    assert_eq!(status, 413, "{page}");
    let (status, page) = post(
        "/devices/revoke",
        &format!("csrf={token}&device=dev%20x&reason=lost&confirm=yes"),
        &[],
    );
    assert_eq!(status, 400, "{page}");
    assert!(page.contains("device id"), "the field is named: {page}");
    let (status, page) = post(
        "/devices/revoke",
        &format!("csrf={token}&device=dev-abc&reason=lost&confirm=yes&admin=1"),
        &[],
    );
    assert_eq!(status, 400, "{page}");
    assert!(page.contains("unknown field"), "{page}");
    let (status, page) = post(
        "/devices/revoke",
        &format!("csrf={token}&device=dev-abc&reason=lost"),
        &[],
    );
    assert_eq!(status, 422, "{page}");
    assert!(page.contains("Tick the confirmation box"), "{page}");
    let (status, page) = post(
        "/overrides",
        &format!("csrf={token}&role=finance&until=tomorrow&reason=x"),
        &[],
    );
    assert_eq!(status, 422, "{page}");
    assert!(page.contains("until"), "{page}");

    // Markup in a field is stored as given and shown as text.
    let (status, page) = post(
        "/overrides",
        &format!(
            "csrf={token}&role=finance&until={until}&reason=%3Cscript%3Ealert(1)%3C%2Fscript%3E"
        ),
        &[],
    );
    assert_eq!(status, 200, "{page}");
    let overrides = c.gw.journal("schedule.override");
    assert_eq!(overrides.len(), 1, "{overrides:?}");
    assert_eq!(overrides[0]["operator"], "amina (console)");
    let (_, page) = c.curl(Cert::P12(&amina), "/overrides", &[]);
    assert!(
        page.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
        "{page}"
    );
    assert!(!page.contains("<script>"), "{page}");

    // A proposal uploaded as a file (multipart), and a multipart body without its
    // boundary.
    let proposal = c.gw.dir.path().join("proposal.toml");
    std::fs::write(
        &proposal,
        "[resources.x]\nhosts = [\"10.9.0.1\"]\nports = [\"tcp/22\"]\n",
    )
    .expect("proposal");
    let (status, page) = c.curl(
        Cert::P12(&amina),
        "/policy/diff?lang=en",
        &[
            "-F",
            &format!("csrf={token}"),
            "-F",
            &format!("upload=@{}", proposal.display()),
        ],
    );
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("<li>"), "the changes are listed: {page}");
    let (status, page) = c.curl(
        Cert::P12(&amina),
        "/policy/diff?lang=en",
        &[
            "--data-binary",
            "--x--",
            "-H",
            "Content-Type: multipart/form-data",
        ],
    );
    assert_eq!(status, 400, "{page}");
    assert!(page.contains("without a boundary"), "{page}");

    // Exports read the journal two at a time; more at once wait their turn, none refused.
    let exports: Vec<_> = (0..6)
        .map(|_| {
            Command::new("curl")
                .args([
                    "-s",
                    "-o",
                    "/dev/null",
                    "-w",
                    "%{http_code}",
                    "--max-time",
                    "30",
                    "--cacert",
                ])
                .arg(&c.ca)
                .args(["--cert-type", "P12", "--cert"])
                .arg(format!("{}:{PASSPHRASE}", amina.display()))
                .arg(format!("{}/journal/export.csv", c.url))
                .stdout(std::process::Stdio::piped())
                .spawn()
                .expect("curl")
        })
        .collect();
    for export in exports {
        let out = export.wait_with_output().expect("curl");
        assert_eq!(String::from_utf8_lossy(&out.stdout), "200");
    }

    // Every answer: the policy, no caching.
    let out = Command::new("curl")
        .args(["-s", "-D", "-", "-o", "/dev/null", "--cacert"])
        .arg(&c.ca)
        .args(["--cert-type", "P12", "--cert"])
        .arg(format!("{}:{PASSPHRASE}", amina.display()))
        .arg(format!("{}/devices", c.url))
        .output()
        .expect("curl");
    let headers = String::from_utf8_lossy(&out.stdout).to_lowercase();
    for h in [
        "content-security-policy: default-src 'none'",
        "cache-control: no-store",
        "x-frame-options: deny",
    ] {
        assert!(headers.contains(h), "{h}: {headers}");
    }
}

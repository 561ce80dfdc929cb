//! A real browser for the web console's tests: Debian's `chromium`, driven over WebDriver
//! (`chromedriver`, `fantoccini`), headless, with the operator's PKCS#12 imported into
//! an NSS database of its own (`pk12util`) and chosen without a prompt by the
//! `AutoSelectCertificateForUrls` policy (a file under /etc/chromium/policies/managed,
//! named for this test process and removed when its last browser is dropped). The CA is trusted in that
//! database only. Pages are checked with `axe-core` and saved as screenshots. Each
//! browser runs in a network namespace of its own (see [`crate::console::ConsoleSite`]).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use fantoccini::{Client, ClientBuilder, Locator};

use crate::netns::{self, HostLink, Netns, Proc};

/// Where Debian's chromium reads managed policies.
const POLICY_DIR: &str = "/etc/chromium/policies/managed";
/// The axe-core the test script installs (`deploy/scripts/test.sh`).
pub const AXE_VERSION: &str = "4.14.1";
/// chromedriver's port in the browser's namespace.
const DRIVER_PORT: u16 = 9515;

/// The managed policy that picks the client certificate without asking (headless
/// chromium would wait for an answer forever). One file for every browser of the
/// process: chromium does not merge a list policy set by two files, it keeps one. It
/// selects any certificate, for any site: each browser's NSS database holds one.
#[derive(Debug)]
struct Policy;

static POLICY_HOLDERS: std::sync::Mutex<usize> = std::sync::Mutex::new(0);

impl Policy {
    fn path() -> PathBuf {
        Path::new(POLICY_DIR).join(format!("ztgw-tests-{}.json", std::process::id()))
    }

    fn hold() -> Self {
        let mut holders = POLICY_HOLDERS.lock().unwrap_or_else(|e| e.into_inner());
        if *holders == 0 {
            std::fs::create_dir_all(POLICY_DIR).expect("policy directory");
            let rule = serde_json::json!({ "pattern": "*", "filter": {} }).to_string();
            std::fs::write(
                Self::path(),
                serde_json::json!({ "AutoSelectCertificateForUrls": [rule] }).to_string(),
            )
            .expect("policy");
        }
        *holders += 1;
        Self
    }
}

impl Drop for Policy {
    fn drop(&mut self) {
        let mut holders = POLICY_HOLDERS.lock().unwrap_or_else(|e| e.into_inner());
        *holders -= 1;
        if *holders == 0 {
            let _ = std::fs::remove_file(Self::path());
        }
    }
}

/// One headless chromium with one operator's certificate.
#[derive(Debug)]
pub struct Browser {
    pub client: Client,
    driver: Proc,
    /// This host's way to chromedriver in the browser's namespace.
    _link: HostLink,
    _policy: Policy,
    pub downloads: PathBuf,
    screenshots: PathBuf,
    _home: tempfile::TempDir,
}

/// The axe-core script, read once per browser.
pub fn axe_script() -> String {
    let path = workspace().join("target/axe/node_modules/axe-core/axe.min.js");
    std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e}: install axe-core with `npm install --prefix target/axe axe-core@{AXE_VERSION}` (deploy/scripts/test.sh does)",
            path.display()
        )
    })
}

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the workspace")
        .to_owned()
}

impl Browser {
    /// A browser that trusts `ca_pem` and shows the certificate in `p12` (its passphrase
    /// `passphrase`) to the sites that ask for one. Screenshots go to
    /// `target/console-screenshots/NAME-*.png`.
    ///
    /// The browser runs in the namespace `ns` (chromedriver listening there, reached from
    /// this host over a link of its own that admits this host's address only).
    pub async fn start(name: &str, ca_pem: &Path, p12: Option<(&Path, &str)>, ns: &Netns) -> Self {
        netns::require("chromium", "chromium");
        netns::require("chromedriver", "chromium-driver");
        netns::require("pk12util", "libnss3-tools");
        let home = tempfile::tempdir().expect("home");
        let nss = home.path().join(".pki/nssdb");
        std::fs::create_dir_all(&nss).expect("nssdb");
        let db = format!("sql:{}", nss.display());
        netns::run(Command::new("certutil").args(["-N", "-d", &db, "--empty-password"]));
        netns::run(
            Command::new("certutil")
                .args(["-A", "-d", &db, "-n", "ztgw-test-ca", "-t", "C,,", "-i"])
                .arg(ca_pem),
        );
        if let Some((p12, passphrase)) = p12 {
            netns::run(
                Command::new("pk12util")
                    .args(["-d", &db, "-W", passphrase, "-i"])
                    .arg(p12),
            );
        }
        let policy = Policy::hold();
        let (host, driver_addr) = netns::slash30();
        let link = HostLink::new(&format!("{host}/30"), ns, &format!("{driver_addr}/30"));
        let mut cmd = ns.command("chromedriver");
        // Its own process group: chromium and its helpers go with it on drop
        // (`ip netns exec` runs chromedriver in its own place).
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        cmd.env("HOME", home.path())
            .arg(format!("--port={DRIVER_PORT}"))
            .arg(format!("--allowed-ips={host}"))
            .stderr(Stdio::null());
        let driver = Proc::spawn(cmd);
        let driver_url = format!("http://{driver_addr}:{DRIVER_PORT}");
        assert!(
            netns::eventually(Duration::from_secs(10), || std::net::TcpStream::connect((
                driver_addr,
                DRIVER_PORT
            ))
            .is_ok()),
            "chromedriver did not start at {driver_url}"
        );
        let downloads = home.path().join("downloads");
        std::fs::create_dir_all(&downloads).expect("downloads");
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            serde_json::json!({
                "binary": "/usr/bin/chromium",
                "args": [
                    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                    "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync",
                    "--window-size=1280,1000",
                    format!("--user-data-dir={}", home.path().join("profile").display()),
                ],
                "prefs": {
                    "download.default_directory": downloads.display().to_string(),
                    "download.prompt_for_download": false,
                },
            }),
        );
        let client = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(caps)
            .connect(&driver_url)
            .await
            .expect("a WebDriver session with chromium");
        let screenshots = workspace().join("target/console-screenshots");
        std::fs::create_dir_all(&screenshots).expect("screenshots");
        Self {
            client,
            driver,
            _link: link,
            _policy: policy,
            downloads,
            screenshots: screenshots.join(name),
            _home: home,
        }
    }

    /// Opens `url` and returns the page's text once a console page (its `main`) is
    /// there. Chromium's own error page (a connection that failed under load: `ERR_…`)
    /// is retried twice, a second apart; any other page without `main` fails the test.
    pub async fn open(&self, url: &str) -> String {
        for attempt in 1..=3 {
            self.client.goto(url).await.expect("the page opens");
            let ours = self
                .client
                .execute(
                    "return document.querySelector('main#main') !== null;",
                    vec![],
                )
                .await
                .ok()
                .and_then(|v| v.as_bool())
                .unwrap_or(false);
            let text = self.text().await;
            if ours {
                return text;
            }
            assert!(
                text.contains("ERR_") && attempt < 3,
                "{url} is not a console page (attempt {attempt}):\n{text}"
            );
            eprintln!("{url}: chromium's error page, opening it again:\n{text}");
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        unreachable!("the loop returns or fails")
    }

    pub async fn text(&self) -> String {
        self.client
            .find(Locator::Css("body"))
            .await
            .expect("a body")
            .text()
            .await
            .expect("its text")
    }

    /// Saves a screenshot of the page as `NAME-PAGE.png` and checks it with axe-core
    /// (WCAG 2.1 A and AA, and best practices): any violation fails the test, listed.
    pub async fn check(&self, page: &str) {
        let png = self.client.screenshot().await.expect("screenshot");
        let file = PathBuf::from(format!("{}-{page}.png", self.screenshots.display()));
        std::fs::write(&file, png).expect("save the screenshot");
        let violations = self.violations().await;
        assert!(
            violations.is_empty(),
            "axe-core on {page} ({}):\n{}",
            self.client
                .current_url()
                .await
                .map(|u| u.to_string())
                .unwrap_or_default(),
            violations.join("\n")
        );
    }

    /// What axe-core finds wrong with the page: `rule-id: help, elements`.
    pub async fn violations(&self) -> Vec<String> {
        self.client
            .execute(&axe_script(), vec![])
            .await
            .expect("axe-core loads");
        let result = self
            .client
            .execute_async(
                "const done = arguments[arguments.length - 1];
                 axe.run(document, { runOnly: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'best-practice'] })
                    .then(r => done(r.violations.map(v => v.id + ': ' + v.help + ' ' +
                        v.nodes.map(n => n.target.join(' ')).join(', '))))
                    .catch(e => done(['axe failed: ' + e]));",
                vec![],
            )
            .await
            .expect("axe-core runs");
        serde_json::from_value(result).expect("a list")
    }

    /// Fills the form field `name` of the form whose action is `action`.
    pub async fn fill(&self, action: &str, fields: &[(&str, &str)]) -> fantoccini::elements::Form {
        let form = self
            .client
            .form(Locator::Css(&format!("form[action=\"{action}\"]")))
            .await
            .unwrap_or_else(|e| panic!("a form posting to {action}: {e}"));
        for (name, value) in fields {
            let field = form
                .set_by_name(name, value)
                .await
                .unwrap_or_else(|e| panic!("{action}: field {name}: {e}"));
            drop(field);
        }
        form
    }

    /// Ticks the box `id`.
    pub async fn tick(&self, id: &str) {
        self.client
            .find(Locator::Id(id))
            .await
            .unwrap_or_else(|e| panic!("box {id}: {e}"))
            .click()
            .await
            .expect("tick");
    }

    /// Marks the page, so that [`Browser::next_page`] knows when another replaced it.
    pub async fn mark(&self) {
        self.client
            .execute("window.__ztgwOld = true;", vec![])
            .await
            .expect("mark the page");
    }

    /// Waits (10 s at most) until the marked page has been replaced by a loaded one;
    /// returns its text.
    pub async fn next_page(&self) -> String {
        for _ in 0..100 {
            let replaced = self
                .client
                .execute(
                    "return !window.__ztgwOld && document.readyState === 'complete';",
                    vec![],
                )
                .await
                .ok()
                .and_then(|v| v.as_bool())
                .unwrap_or(false);
            if replaced {
                return self.text().await;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("no new page within 10 s");
    }

    /// Submits the form posting to `action` and returns the next page's text.
    pub async fn submit(&self, action: &str) -> String {
        self.mark().await;
        self.client
            .find(Locator::Css(&format!(
                "form[action=\"{action}\"] button[type=submit]"
            )))
            .await
            .unwrap_or_else(|e| panic!("the button of {action}: {e}"))
            .click()
            .await
            .expect("submit");
        self.next_page().await
    }

    /// The page's `<html dir>` and the body's computed direction.
    pub async fn direction(&self) -> (String, String) {
        let v = self
            .client
            .execute(
                "return [document.documentElement.getAttribute('dir'), getComputedStyle(document.body).direction];",
                vec![],
            )
            .await
            .expect("direction");
        serde_json::from_value(v).expect("two strings")
    }

    /// Ends the session and the driver.
    pub async fn close(self) {
        let _ = self.client.clone().close().await;
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // chromedriver's process group: the driver, chromium and its helpers.
        if let Some(group) = rustix::process::Pid::from_raw(
            i32::try_from(self.driver.child.id()).unwrap_or(i32::MAX),
        ) {
            let _ = rustix::process::kill_process_group(group, rustix::process::Signal::KILL);
        }
    }
}

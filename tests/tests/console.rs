//! The web console in a real browser (Debian's chromium over WebDriver), signed in with
//! the operator's PKCS#12 file as `ztgw operator add` writes it, against `ztgw serve` in
//! a network namespace with wireguard-go laptops. Every page is saved as a screenshot
//! (target/console-screenshots/) and checked with axe-core. Needs root (CI is root),
//! chromium, chromium-driver, libnss3-tools and axe-core (deploy/scripts/test.sh installs
//! them all).

use std::time::Duration;

use fantoccini::Locator;
use ztgw_tests::browser::Browser;
use ztgw_tests::console::{ConsoleSite, PASSPHRASE};
use ztgw_tests::netns;
use ztgw_tests::site::{ALWAYS, Posture, lab_policy};

/// Every page of the menu, by the name its screenshot takes.
const PAGES: &[(&str, &str)] = &[
    ("overview", "/"),
    ("devices", "/devices"),
    ("employees", "/employees"),
    ("sessions", "/sessions"),
    ("incidents", "/incidents"),
    ("overrides", "/overrides"),
    ("policy", "/policy"),
    ("journal", "/journal"),
    ("journal-verify", "/journal/verify"),
    ("reports", "/reports"),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_security_unit_invites_approves_and_revokes_a_device_and_its_tunnel_is_cut() {
    let mut cs = ConsoleSite::new(&lab_policy(ALWAYS), |s| {
        s.replace(
            "require_device_approval = false",
            "require_device_approval = true",
        )
    });
    let p12 = cs.operator("amina", "security-unit");
    let b = Browser::start(
        "security-unit",
        &cs.ca,
        Some((&p12, PASSPHRASE)),
        &cs.client,
    )
    .await;
    let url = |path: &str| format!("{}{path}", cs.url);

    let text = b.open(&url("/?lang=en")).await;
    assert!(
        text.contains("Signed in as amina (security unit)"),
        "{text}"
    );
    b.check("overview-empty").await;

    // Invite: the invitation is shown once, with its QR code.
    b.open(&url("/devices")).await;
    b.fill(
        "/devices/invite",
        &[
            ("employee", "e1029"),
            ("role", "finance"),
            ("reference", "DEC-2027-14"),
        ],
    )
    .await;
    let text = b.submit("/devices/invite").await;
    assert!(
        text.contains("The invitation is shown once"),
        "{text}\n{:?}",
        cs.site.journal("console.refused")
    );
    let invitation = b
        .client
        .find(Locator::Id("invitation"))
        .await
        .expect("the invitation")
        .prop("value")
        .await
        .expect("its text")
        .expect("a value");
    assert!(invitation.starts_with("ztgw1-"), "{invitation}");
    b.client
        .find(Locator::Css("div.qr[role=img] svg"))
        .await
        .expect("the QR code");
    b.check("invitation").await;

    // The employee enrols with it; the device waits for approval.
    let laptop = cs
        .site
        .enrol("e1029", &invitation, Posture::Compliant, &[], None)
        .expect("enrolment with the console's invitation");
    let text = b.open(&url(&format!("/devices/{}", laptop.device))).await;
    assert!(text.contains("awaiting approval"), "{text}");
    b.check("device-pending").await;
    let text = b.submit("/devices/approve").await;
    assert!(text.contains("approved"), "{text}");

    let _agent = laptop.connect().expect("the approved laptop connects");
    assert!(
        netns::eventually(Duration::from_secs(10), || laptop.reaches_dns()),
        "traffic flows once admitted"
    );
    let text = b.open(&url("/sessions")).await;
    assert!(text.contains(&laptop.device), "{text}");
    for (name, path) in PAGES {
        b.open(&url(path)).await;
        b.check(name).await;
    }

    // Revoked with a reason, once the box is ticked: the live tunnel is cut. Unticked,
    // the browser does not send the form (the server refuses it too: tests/console_input.rs).
    b.open(&url(&format!("/devices/{}", laptop.device))).await;
    b.fill(
        "/devices/revoke",
        &[("reason", "stolen"), ("note", "<b>reported</b> by phone")],
    )
    .await;
    let valid = b
        .client
        .execute(
            "return document.querySelector('form[action=\"/devices/revoke\"]').checkValidity();",
            vec![],
        )
        .await
        .expect("validity");
    assert_eq!(
        valid,
        serde_json::json!(false),
        "the confirmation is required"
    );
    b.tick("revoke-confirm").await;
    let text = b.submit("/devices/revoke").await;
    assert!(text.contains("revoked"), "{text}");
    assert!(
        netns::eventually(Duration::from_secs(3), || !laptop.reaches_dns()),
        "the tunnel is cut"
    );
    let revoked = cs.site.journal("device.revoked");
    assert_eq!(revoked.len(), 1, "{revoked:?}");
    assert_eq!(revoked[0]["operator"], "amina (console)");
    assert_eq!(revoked[0]["reason"], "stolen");
    let ended = cs.site.journal("session.ended");
    assert_eq!(ended[0]["reason"], "device-revoked", "{ended:?}");
    // The note is shown as text, not markup.
    let text = b.open(&url(&format!("/devices/{}", laptop.device))).await;
    assert!(text.contains("<b>reported</b> by phone"), "{text}");
    b.check("device-revoked").await;

    // Arabic, right to left, remembered from page to page.
    b.open(&url("/?lang=ar")).await;
    assert_eq!(b.direction().await, ("rtl".into(), "rtl".into()));
    b.check("overview-ar").await;
    let text = b.open(&url("/devices")).await;
    assert!(text.contains("الأجهزة"), "{text}");
    assert_eq!(b.direction().await, ("rtl".into(), "rtl".into()));
    b.check("devices-ar").await;
    b.open(&url("/reports?lang=fr")).await;
    assert_eq!(b.direction().await, ("ltr".into(), "ltr".into()));
    b.check("reports-fr").await;
    b.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_auditor_verifies_searches_and_exports_the_journal_and_may_not_act() {
    let cs = ConsoleSite::new(&lab_policy(ALWAYS), |s| s);
    let p12 = cs.operator("omar", "auditor");
    let b = Browser::start("auditor", &cs.ca, Some((&p12, PASSPHRASE)), &cs.client).await;
    let url = |path: &str| format!("{}{path}", cs.url);

    let text = b.open(&url("/journal/verify?lang=en")).await;
    assert!(text.contains("Journal: intact"), "{text}");
    b.check("auditor-verify").await;

    let text = b.open(&url("/journal?kind=operator.")).await;
    assert!(text.contains("\"name\":\"omar\""), "{text}");
    assert!(text.contains("Shown: the latest 1 of 1"), "{text}");
    b.check("auditor-journal-search").await;

    // Comparing a proposed policy, uploaded as a file, changes nothing: auditors may.
    let proposal = cs.site.dir.path().join("proposal.toml");
    std::fs::write(
        &proposal,
        lab_policy(ALWAYS).replace(
            "resources = [\"database\", \"dns\"]",
            "resources = [\"dns\"]",
        ),
    )
    .expect("proposal");
    b.open(&url("/policy")).await;
    b.client
        .find(Locator::Id("upload"))
        .await
        .expect("the file input")
        .send_keys(&proposal.display().to_string())
        .await
        .expect("choose the file");
    let text = b.submit("/policy/diff").await;
    assert!(
        text.contains("role finance loses resource database"),
        "{text}"
    );
    b.check("auditor-policy-diff").await;

    // The export downloads the search's events as CSV.
    b.open(&url("/journal?kind=operator.")).await;
    b.client
        .find(Locator::Css("a[download]"))
        .await
        .expect("the export link")
        .click()
        .await
        .expect("download");
    let csv = b.downloads.join("ztgw-journal.csv");
    assert!(
        netns::eventually(Duration::from_secs(10), || csv.exists()),
        "the CSV is downloaded"
    );
    let csv = std::fs::read_to_string(&csv).expect("the CSV");
    assert!(csv.starts_with("seq,time,type,employee,device"), "{csv}");
    assert!(csv.contains("operator.added"), "{csv}");
    assert_eq!(csv.lines().count(), 2, "the search's one event: {csv}");

    // An auditor's pages offer no action; a form forged in the page is refused (403)
    // and journaled.
    let text = b.open(&url("/devices")).await;
    assert!(!text.contains("Invite a device"), "{text}");
    b.check("auditor-devices").await;
    b.mark().await;
    b.client
        .execute(
            "const f = document.createElement('form');
             f.method = 'post'; f.action = '/devices/invite';
             for (const [k, v] of [['csrf', document.querySelector('input[name=csrf]') ? document.querySelector('input[name=csrf]').value : ''],
                                   ['employee', 'e1'], ['role', 'finance'], ['reference', 'x']]) {
                 const i = document.createElement('input'); i.name = k; i.value = v; f.appendChild(i);
             }
             document.body.appendChild(f); f.submit();",
            vec![],
        )
        .await
        .expect("a forged form");
    let text = b.next_page().await;
    assert!(text.contains("Auditors see and export"), "{text}");
    let refused = cs.site.journal("console.refused");
    assert_eq!(refused.len(), 1, "{refused:?}");
    assert_eq!(refused[0]["name"], "omar");
    assert_eq!(refused[0]["reason"], "role-may-not-act");
    assert!(cs.site.journal("invitation.created").is_empty());

    // axe-core does find what is wrong: an image without a text alternative.
    b.open(&url("/")).await;
    b.client
        .execute(
            "document.querySelector('main').appendChild(document.createElement('img')).src = '/static/console.css';",
            vec![],
        )
        .await
        .expect("an image");
    let found = b.violations().await;
    assert!(
        found.iter().any(|v| v.starts_with("image-alt")),
        "{found:?}"
    );
    b.close().await;
}

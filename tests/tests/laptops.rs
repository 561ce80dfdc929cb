//! Every laptop the administration has, end to end in network namespaces with the real
//! wireguard-go client, against the `standard` posture profile of the policy `ztgw init`
//! writes (every check on): a compliant Debian 12 GNOME laptop and a compliant Windows 11
//! laptop (its capture, through the agent's `--posture-root`) are admitted and reach the
//! internal network; the Windows laptop on an open Wi-Fi is refused, told why and how to
//! fix it the Windows way, and the refusal is journaled.

use ztgw_tests::site::{ALWAYS, Posture, Site, standard_policy};

#[test]
fn debian_and_windows_laptops_are_admitted_and_an_open_wifi_is_refused() {
    let mut site = Site::new(&standard_policy(ALWAYS));

    let debian = site.laptop("e4401", "finance", Posture::Debian);
    let _debian_agent = debian
        .connect()
        .unwrap_or_else(|e| panic!("the Debian laptop: {e}"));
    assert!(
        debian.reaches_dns(),
        "the Debian laptop reaches DNS through its tunnel"
    );

    let windows = site.laptop("e4402", "finance", Posture::Windows);
    let _windows_agent = windows
        .connect()
        .unwrap_or_else(|e| panic!("the Windows laptop: {e}"));
    assert!(
        windows.reaches_dns(),
        "the Windows laptop reaches DNS through its tunnel"
    );
    let started = site.journal("session.started");
    assert_eq!(started.len(), 2, "{started:?}");

    let open = site.laptop("e4403", "finance", Posture::WindowsOpenWifi);
    let err = open.connect().expect_err("refused");
    assert!(err.contains("posture.wifi"), "{err}");
    assert!(
        err.contains("Settings > Network & internet > Wi-Fi"),
        "{err}"
    );
    assert!(
        !err.contains("posture.disk-encryption"),
        "only the Wi-Fi fails: {err}"
    );
    let denied = site.journal("admission.denied");
    assert_eq!(denied.len(), 1, "{denied:?}");
    assert_eq!(
        denied[0]["reasons"],
        serde_json::json!(["posture.wifi"]),
        "{denied:?}"
    );
}

//! The Windows parsers on fixtures in the formats the sources write (see
//! `tests/fixtures/README.md`), on damaged input, and on arbitrary bytes.

use std::path::{Path, PathBuf};

use super::parse::*;
use super::{Captured, Probe, Source, decode};

fn get_from(c: &Captured, s: Source) -> Result<String, String> {
    Probe::<Source>::get(c, s)
}
use crate::report::{RemovableStorage, WifiSecurity};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn capture() -> Captured {
    Captured(fixtures().join("windows11/windows-posture"))
}

fn raw(name: &str) -> String {
    let bytes = std::fs::read(fixtures().join("windows-raw").join(name)).expect(name);
    decode(&bytes).expect("text")
}

fn get(s: Source) -> String {
    get_from(&capture(), s).expect("fixture")
}

#[test]
fn version_build_and_windows_11() {
    let os = os(&get(Source::Version)).expect("os");
    assert_eq!(os.name, "Windows 11 Pro 23H2", "build 22631 is Windows 11");
    assert_eq!(os.version, "10.0.22631.4460");
    assert_eq!(os.build.as_deref(), Some("22631.4460"));
    // Written by Windows PowerShell's `>`: UTF-16LE with a byte-order mark.
    let os10 = os_from(&raw("version-utf16.json"));
    assert_eq!(os10.name, "Windows 10 Enterprise 22H2");
    assert_eq!(os10.version, "10.0.19045.5131");
}

fn os_from(text: &str) -> crate::report::OsInfo {
    os(text).expect("os")
}

#[test]
fn the_last_update() {
    assert_eq!(
        last_update(&get(Source::Updates)).as_deref(),
        Ok("2026-11-13T00:00:00Z")
    );
    assert_eq!(
        last_update(&raw("hotfixes-ps5-dates.json")).as_deref(),
        Ok("2025-11-18T00:00:00Z"),
        "PowerShell 5's /Date(ms)/"
    );
    assert!(last_update("[]").is_err());
}

#[test]
fn security_center_and_defender() {
    let avs = antivirus(&get(Source::Antivirus)).expect("antivirus");
    assert_eq!(avs.len(), 1);
    assert!(avs[0].running);
    assert_eq!(
        avs[0].signatures_time.as_deref(),
        Some("2026-11-28T08:11:02Z")
    );
    let two = antivirus(&raw("antivirus-two-products.json")).expect("two");
    assert!(!two[0].running, "Defender off (another product protects)");
    assert!(two[1].running && two[1].product == "ESET Security");
    assert_eq!(product_state(397_568), (true, true));
    assert_eq!(product_state(397_584), (true, false), "out of date");
    assert_eq!(product_state(393_472), (false, true));
    let d = defender(&get(Source::Defender)).expect("defender");
    assert!(d.running);
    assert_eq!(d.signatures_version.as_deref(), Some("1.421.118.0"));
    assert_eq!(d.signatures_time.as_deref(), Some("2026-11-28T06:41:12Z"));
}

#[test]
fn firewall_profiles_and_products() {
    let fw = firewall(&get(Source::FirewallProfiles), Some("")).expect("fw");
    assert!(fw.active && fw.product == "windows-defender-firewall");
    let off = firewall(&raw("firewall-profiles-public-off.json"), None).expect("fw");
    assert!(!off.active, "the Public profile is off");
    let third = firewall(
        &raw("firewall-profiles-public-off.json"),
        Some(r#"{"displayName": "ESET Firewall", "productState": 266256}"#),
    )
    .expect("fw");
    assert!(third.active && third.product == "ESET Firewall");
    assert!(firewall("[]", None).is_err());
}

#[test]
fn bitlocker_volumes() {
    let v = bitlocker(&get(Source::BitLocker)).expect("volumes");
    assert_eq!(v.len(), 1, "volumes without a letter are left out");
    assert!(v[0].encrypted && v[0].mount == "C:");
    assert!(bitlocker(r#"{"DriveLetter": "C:", "ProtectionStatus": 2}"#).is_err());
    assert!(!bitlocker(r#"{"DriveLetter": "C:", "ProtectionStatus": 0}"#).expect("v")[0].encrypted);
}

#[test]
fn the_screen_lock() {
    let l = screen_lock(&get(Source::ScreenLock)).expect("lock");
    assert!(l.enabled && l.idle_delay_secs == Some(600));
    let machine = screen_lock(r#"{"InactivityTimeoutSecs": 900, "Users": []}"#).expect("m");
    assert!(machine.enabled && machine.idle_delay_secs == Some(900));
    let insecure = screen_lock(
        r#"{"InactivityTimeoutSecs": null, "Users": [{"ScreenSaveActive": "1", "ScreenSaverIsSecure": "0", "ScreenSaveTimeOut": "300"}, {"ScreenSaveActive": "1", "ScreenSaverIsSecure": "1", "ScreenSaveTimeOut": "300"}]}"#,
    )
    .expect("weakest");
    assert!(!insecure.enabled, "the weakest user counts");
    assert!(screen_lock(r#"{"InactivityTimeoutSecs": null, "Users": []}"#).is_err());
}

#[test]
fn software_names_and_browsers() {
    let sw = software(&get(Source::Software)).expect("software");
    let names: Vec<&str> = sw.iter().map(|p| p.name.as_str()).collect();
    assert!(
        names.contains(&"google-chrome") && names.contains(&"7-zip"),
        "{names:?}"
    );
    assert_eq!(package_name("Nmap 7.95"), "nmap");
    assert_eq!(package_name("Wireshark 4.2.5 x64"), "wireshark");
    assert_eq!(
        package_name("Mozilla Firefox ESR (x64 fr)"),
        "mozilla-firefox-esr"
    );
    let b = browsers(&sw);
    let b: Vec<(&str, &str)> = b
        .iter()
        .map(|b| (b.name.as_str(), b.version.as_str()))
        .collect();
    assert!(b.contains(&("chrome", "131.0.6778.86")), "{b:?}");
    assert!(b.contains(&("edge", "131.0.2903.70")), "{b:?}");
    assert!(b.contains(&("firefox-esr", "128.5.0")), "{b:?}");
}

#[test]
fn removable_storage_policy() {
    assert_eq!(
        removable_storage(&get(Source::RemovableStorage)),
        Ok(RemovableStorage::Allowed)
    );
    assert_eq!(
        removable_storage(r#"{"UsbStorStart": 4, "DenyAll": null}"#),
        Ok(RemovableStorage::Blocked)
    );
    assert_eq!(
        removable_storage(r#"{"UsbStorStart": 3, "DenyAll": 1}"#),
        Ok(RemovableStorage::Blocked)
    );
    assert!(removable_storage(r#"{"UsbStorStart": null, "DenyAll": null}"#).is_err());
}

#[test]
fn wifi_in_french_and_english() {
    assert_eq!(wifi(&get(Source::Wifi)), Ok(WifiSecurity::Wpa2));
    assert_eq!(wifi(&raw("netsh-open-en.txt")), Ok(WifiSecurity::Open));
    assert_eq!(
        wifi(&raw("netsh-disconnected-en.txt")),
        Ok(WifiSecurity::None)
    );
    assert_eq!(wifi(&raw("netsh-none-en.txt")), Ok(WifiSecurity::None));
    assert!(wifi("The Wireless AutoConfig Service (wlansvc) is not running.").is_err());
    assert!(wifi("").is_err());
}

/// Truncated output, garbage, a huge file: an error with a reason, never a panic.
#[test]
fn damaged_sources_are_errors() {
    for s in Source::ALL {
        let text = get(s);
        for cut in (0..text.len()).step_by(7) {
            let t = text.get(..cut).unwrap_or("");
            let _ = (
                os(t),
                last_update(t),
                antivirus(t),
                defender(t),
                bitlocker(t),
            );
            let _ = (screen_lock(t), software(t), removable_storage(t), wifi(t));
            let _ = firewall(t, Some(t));
        }
    }
    assert!(os("\u{0}\u{1}\u{2}binary").is_err());
    let tmp = tempfile::tempdir().expect("tempdir");
    let big = tmp.path().join(Source::Software.file());
    let f = std::fs::File::create(&big).expect("create");
    f.set_len(100 << 20).expect("100 MB");
    let e = Captured(tmp.path().to_owned())
        .get(Source::Software)
        .expect_err("too large");
    assert!(e.contains("larger than"), "{e}");
}

proptest::proptest! {
    #[test]
    fn any_text_is_parsed_or_refused(t in ".{0,400}") {
        let _ = (os(&t), last_update(&t), antivirus(&t), defender(&t), bitlocker(&t));
        let _ = (screen_lock(&t), software(&t), removable_storage(&t), wifi(&t));
        let _ = firewall(&t, Some(&t));
    }

    #[test]
    fn any_json_value_is_parsed_or_refused(v in proptest::collection::vec(("[A-Za-z]{1,12}", proptest::prelude::any::<i64>(), "[ -~]{0,20}"), 0..6)) {
        let objects: Vec<serde_json::Value> = v
            .iter()
            .map(|(k, n, s)| serde_json::json!({ k.as_str(): n, "DisplayName": s, "productState": n, "Enabled": s }))
            .collect();
        let t = serde_json::Value::Array(objects).to_string();
        let _ = (os(&t), last_update(&t), antivirus(&t), defender(&t), bitlocker(&t));
        let _ = (screen_lock(&t), software(&t), removable_storage(&t));
        let _ = firewall(&t, Some(&t));
    }
}

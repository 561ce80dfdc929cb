//! The macOS parsers on fixtures in the formats the commands write (see
//! `tests/fixtures/README.md`), on damaged input, and on arbitrary text.

use std::path::Path;

use super::Source;
use super::parse::*;
use crate::probe::{Captured, Probe};
use crate::report::WifiSecurity;

fn get(s: Source) -> String {
    let c = Captured(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/macos14/macos-posture"),
    );
    Probe::<Source>::get(&c, s).expect("fixture")
}

#[test]
fn version_updates_and_xprotect() {
    let os = os(&get(Source::Version)).expect("os");
    assert_eq!(
        (os.name.as_str(), os.version.as_str()),
        ("macOS 14.7.1", "14.7.1")
    );
    assert_eq!(os.build.as_deref(), Some("23H222"));
    let h = get(Source::History);
    assert_eq!(
        last_update(&h).as_deref(),
        Ok("2026-11-12T18:02:44Z"),
        "XProtect's data is not a system update"
    );
    let av = xprotect(&h).expect("xprotect");
    assert_eq!(av.len(), 1);
    assert!(av[0].running);
    assert_eq!(av[0].signatures_version.as_deref(), Some("5280"));
    assert_eq!(
        av[0].signatures_time.as_deref(),
        Some("2026-11-27T02:11:04Z")
    );
}

#[test]
fn firewall_filevault_gatekeeper() {
    assert!(firewall(&get(Source::Firewall)).expect("fw").active);
    assert!(
        !firewall("Firewall is disabled. (State = 0)")
            .expect("fw")
            .active
    );
    assert!(
        firewall("Firewall is blocking all non-essential incoming connections. (State = 2)")
            .expect("fw")
            .active
    );
    assert!(firewall("command not found").is_err());
    assert!(filevault(&get(Source::FileVault)).expect("fv")[0].encrypted);
    assert!(
        !filevault("FileVault is Off, but will be enabled after the next restart.").expect("fv")[0]
            .encrypted
    );
    assert!(filevault("").is_err());
    assert_eq!(gatekeeper(&get(Source::Gatekeeper)), Ok(true));
    assert!(gatekeeper("garbage").is_err());
}

#[test]
fn the_screen_lock() {
    let l = screen_lock(&get(Source::ScreenLock)).expect("lock");
    assert!(l.enabled && l.idle_delay_secs == Some(305));
    let off = screen_lock("sysadminctl[1:2] screenLock is off\n300\n").expect("off");
    assert!(!off.enabled);
    let default =
        screen_lock("sysadminctl[1:2] screenLock delay is immediate\nidleTime unset\n").expect("d");
    assert!(default.enabled && default.idle_delay_secs == Some(MACOS_DEFAULT_IDLE_SECS));
    let never = screen_lock("sysadminctl[1:2] screenLock delay is immediate\n0\n").expect("never");
    assert!(
        !never.enabled,
        "a screen saver that never starts never locks"
    );
    assert!(screen_lock("300\n").is_err());
}

#[test]
fn applications_browsers_and_wifi() {
    let sw = software(&get(Source::Applications)).expect("apps");
    let b = browsers(&sw);
    let b: Vec<(&str, &str)> = b
        .iter()
        .map(|b| (b.name.as_str(), b.version.as_str()))
        .collect();
    assert_eq!(b, [("firefox", "133.0"), ("safari", "18.1.1")]);
    assert_eq!(wifi(&get(Source::Wifi)), Ok(WifiSecurity::Wpa2));
    let open = get(Source::Wifi).replace(
        "spairport_security_mode_wpa2_personal",
        "spairport_security_mode_none",
    );
    assert_eq!(wifi(&open), Ok(WifiSecurity::Open));
    assert_eq!(
        wifi(r#"{"SPAirPortDataType": [{"spairport_airport_interfaces": [{"_name": "en0"}]}]}"#),
        Ok(WifiSecurity::None)
    );
    assert!(wifi("{}").is_err());
}

#[test]
fn damaged_sources_are_errors() {
    for s in Source::ALL {
        let text = get(s);
        for cut in 0..text.len() {
            let t = text.get(..cut).unwrap_or("");
            let _ = (
                os(t),
                last_update(t),
                xprotect(t),
                firewall(t),
                filevault(t),
            );
            let _ = (gatekeeper(t), screen_lock(t), software(t), wifi(t));
        }
    }
}

proptest::proptest! {
    #[test]
    fn any_text_is_parsed_or_refused(t in "(.|\n){0,300}") {
        let _ = (os(&t), last_update(&t), xprotect(&t), firewall(&t), filevault(&t));
        let _ = (gatekeeper(&t), screen_lock(&t), software(&t), wifi(&t));
    }
}

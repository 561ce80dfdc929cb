//! No input makes the report parser or the evaluator panic.

use proptest::prelude::*;
use ztgw_posture::evaluate::{Freshness, evaluate};
use ztgw_posture::profile::Profile;
use ztgw_posture::report::PostureReport;

const SAMPLE: &str = r#"{"schema_version":1,"collected_at":"2026-11-29T09:58:00Z","agent_version":"0.1.0","nonce":"n",
"os":{"status":"known","value":{"family":"linux","id":"debian","name":"Debian","version":"12","build":null,"kernel":null},"source":"x"},
"last_update":{"status":"known","value":"2026-11-25T08:00:00Z","source":"apt"},
"antivirus":{"status":"known","value":[{"product":"ClamAV","running":true,"signatures_version":"1","signatures_time":"2026-11-28T08:26:00Z"}],"source":"x"},
"firewall":{"status":"known","value":{"active":true,"product":"ufw"},"source":"x"},
"volumes":{"status":"known","value":[{"mount":"/","encrypted":true}],"source":"x"},
"screen_lock":{"status":"known","value":{"enabled":true,"idle_delay_secs":300},"source":"x"},
"software":{"status":"known","value":[{"name":"nmap","version":"7.9"}],"source":"x"},
"tools_on_path":{"status":"known","value":[],"source":"x"},
"browsers":{"status":"known","value":[{"name":"firefox-esr","version":"1:2.3~rc1-4"}],"source":"x"},
"removable_storage":{"status":"known","value":"blocked","source":"x"},
"wifi":{"status":"unknown","reason":"x"},
"data_markers":{"status":"known","value":[],"source":"x"}}"#;

fn evaluate_all(r: &PostureReport) {
    let profile = Profile {
        min_browser_versions: [("firefox-esr".to_owned(), "115".to_owned())].into(),
        required_software: vec!["clamav".into()],
        ..Profile::default()
    };
    let now: jiff::Timestamp = "2026-11-29T10:00:00Z".parse().expect("now");
    let _ = evaluate(r, &profile, now, Freshness::Require { nonce: "n" });
    let _ = evaluate(r, &profile, now, Freshness::Preview);
}

#[test]
fn the_sample_parses() {
    evaluate_all(&PostureReport::parse(SAMPLE.as_bytes()).expect("sample"));
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes(bytes in prop::collection::vec(any::<u8>(), 0..2048)) {
        if let Ok(r) = PostureReport::parse(&bytes) {
            evaluate_all(&r);
        }
    }

    #[test]
    fn damaged_reports(edits in prop::collection::vec((0usize..3000, any::<u8>(), 0u8..3), 1..10)) {
        let mut bytes = SAMPLE.as_bytes().to_vec();
        for (at, b, kind) in edits {
            let at = at % (bytes.len() + 1);
            match kind {
                0 => bytes.insert(at, b),
                1 if at < bytes.len() => { bytes.remove(at); }
                _ if at < bytes.len() => bytes[at] = b,
                _ => {}
            }
        }
        if let Ok(r) = PostureReport::parse(&bytes) {
            evaluate_all(&r);
        }
    }

    #[test]
    fn arbitrary_versions_compare(a in "\\PC{0,30}", b in "\\PC{0,30}") {
        let _ = ztgw_posture::linux::dpkg::compare(&a, &b);
    }
}

//! Warnings: what deserves a second look without stopping a policy.

use std::path::Path;

use ztgw_config::policy::Policy;

const POLICY: &str = r#"[resources.intranet]
hosts = ["10.20.0.0/24"]
ports = ["tcp/443", "tcp/80"]

[resources.portal]
hosts = ["10.20.0.10"]
ports = ["tcp/443"]

[resources.unused]
hosts = ["10.9.9.9"]
ports = ["udp/53"]

[schedules.office]
days = ["mon"]
hours = ["08:30-16:30"]

[schedules.spare]
days = ["sat"]
hours = ["09:00-12:00"]

[posture.standard]

[roles.finance]
resources = ["intranet", "portal", "intranet"]
schedule = "office"
posture = "standard"

[roles.nothing]
resources = []
schedule = "office"
posture = "standard"
"#;

#[test]
fn redundant_unused_and_empty_are_warned_about() {
    let checked = Policy::parse(Path::new("w.toml"), POLICY).expect("valid despite warnings");
    let got: Vec<String> = checked
        .warnings
        .iter()
        .map(|w| {
            let l = w.location.expect("located");
            format!("{}:{}: {}", l.line, l.column, w.message)
        })
        .collect();
    assert_eq!(
        got,
        vec![
            "9:1: resource \"unused\" is not used by any role",
            "17:1: schedule \"spare\" is not used by any role or employee",
            "24:26: in role \"finance\", resource \"portal\" is redundant: everything it opens is opened by intranet",
            "24:36: role \"finance\" lists resource \"intranet\" twice",
            "28:8: role \"nothing\" reaches no resource",
        ]
    );
}

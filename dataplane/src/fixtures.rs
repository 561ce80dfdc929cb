//! Shared test fixtures of the data plane: a small policy and its rules.

use std::net::IpAddr;
use std::path::Path;

use ztgw_config::policy::{CompiledPolicy, Decision, Policy, Proto, RuleId};

/// finance: the database network (tcp/5432, icmp) and DNS; hr: DNS only.
pub const POLICY: &str = r#"
[resources.db]
hosts = ["10.20.1.0/24", "fd00:20:1::/64"]
ports = ["tcp/5432", "icmp"]
[resources.dns]
hosts = ["10.20.0.53"]
ports = ["udp/53"]
[resources.all]
hosts = ["10.0.0.0/8"]
ports = ["tcp/1-65535", "udp/1-65535"]
[schedules.s]
days = ["mon"]
hours = ["08:00-09:00"]
[posture.p]
[roles.finance]
resources = ["db", "dns"]
schedule = "s"
posture = "p"
[roles.hr]
resources = ["dns"]
schedule = "s"
posture = "p"
[roles.wide]
resources = ["all"]
schedule = "s"
posture = "p"
"#;

pub fn policy() -> CompiledPolicy {
    CompiledPolicy::compile(
        &Policy::parse(Path::new("p.toml"), POLICY)
            .expect("fixture policy")
            .policy,
    )
}

/// The rule of role `wide` that allows `dst` (any TCP or UDP port in 10/8).
pub fn rule(dst: impl Into<IpAddr>, proto: Proto) -> RuleId {
    let c = policy();
    match c.decide(c.role("wide").expect("role"), dst.into(), proto, 1) {
        Decision::Allow(r) => r,
        d => panic!("fixture rule: {d:?}"),
    }
}

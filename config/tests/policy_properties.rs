//! Properties of the policy: the compiled structure agrees with a plain scan of the rules,
//! and no input makes the parser panic.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use proptest::prelude::*;
use ztgw_config::policy::compile::LinearPolicy;
use ztgw_config::policy::{
    CompiledPolicy, Network, Policy, PolicySettings, Proto, Resource, Role, Service,
};

/// Queries per generated policy; 10 policies make the 100,000 queries.
const QUERIES: usize = 10_000;

/// Addresses are drawn from small ranges so that networks overlap and queries hit them.
fn network() -> impl Strategy<Value = Network> {
    prop_oneof![
        (0u8..4, 0u8..=255, 20u8..=32).prop_map(|(b, c, p)| {
            let addr = u32::from(Ipv4Addr::new(10, b, c, 0)) & mask32(p);
            Network::parse(&format!("{}/{p}", Ipv4Addr::from(addr))).expect("v4")
        }),
        (0u16..4, 0u16..=0xff, 112u8..=128).prop_map(|(a, b, p)| {
            let addr = u128::from(Ipv6Addr::new(0xfd00, a, 0, 0, 0, 0, 0, b << 8)) & mask128(p);
            Network::parse(&format!("{}/{p}", Ipv6Addr::from(addr))).expect("v6")
        }),
    ]
}

fn mask32(p: u8) -> u32 {
    if p == 0 {
        0
    } else {
        u32::MAX << (32 - u32::from(p))
    }
}

fn mask128(p: u8) -> u128 {
    if p == 0 {
        0
    } else {
        u128::MAX << (128 - u32::from(p))
    }
}

fn service() -> impl Strategy<Value = Service> {
    prop_oneof![
        (1u16..200, 0u16..50)
            .prop_map(|(a, w)| Service::parse(&format!("tcp/{a}-{}", a + w)).expect("tcp")),
        (1u16..200).prop_map(|a| Service::parse(&format!("udp/{a}")).expect("udp")),
        Just(Service::parse("icmp").expect("icmp")),
    ]
}

fn policy() -> impl Strategy<Value = Policy> {
    let resources = prop::collection::vec(
        (
            prop::collection::vec(network(), 1..4),
            prop::collection::vec(service(), 1..4),
        ),
        1..40,
    );
    resources.prop_flat_map(|res| {
        let n = res.len();
        let roles = prop::collection::vec(prop::collection::vec(0..n, 0..12), 1..12);
        (Just(res), roles).prop_map(|(res, roles)| {
            let resources: BTreeMap<String, Resource> = res
                .into_iter()
                .enumerate()
                .map(|(i, (hosts, services))| {
                    (
                        format!("r{i}"),
                        Resource {
                            hosts,
                            services,
                            description: None,
                        },
                    )
                })
                .collect();
            let roles = roles
                .into_iter()
                .enumerate()
                .map(|(i, picks)| {
                    (
                        format!("role{i}"),
                        Role {
                            resources: picks.into_iter().map(|p| format!("r{p}")).collect(),
                            schedule: "s".into(),
                            posture: "p".into(),
                            quarantine: None,
                            second_factor: None,
                            description: None,
                            dns: Default::default(),
                        },
                    )
                })
                .collect();
            Policy {
                settings: PolicySettings::default(),
                resources,
                schedules: BTreeMap::new(),
                posture: BTreeMap::new(),
                roles,
                employees: BTreeMap::new(),
                tests: vec![],
                dns: None,
            }
        })
    })
}

/// A small deterministic generator for the queries (proptest generates the policies).
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 10, ..ProptestConfig::default() })]

    #[test]
    fn compiled_and_linear_decisions_agree(policy in policy(), seed in 1u64..u64::MAX) {
        let compiled = CompiledPolicy::compile(&policy);
        let linear = LinearPolicy::compile(&policy);
        let roles: Vec<&String> = policy.roles.keys().collect();
        let mut rng = XorShift(seed);
        let mut allowed = 0usize;
        for _ in 0..QUERIES {
            let role = roles[(rng.next() % roles.len() as u64) as usize];
            let r = rng.next();
            let role_def = &policy.roles[role];
            let (ip, proto, port) = if r & 2 == 0 && !role_def.resources.is_empty() {
                // Aim at the edges of something the role opens.
                let res = &policy.resources[&role_def.resources[(r >> 8) as usize % role_def.resources.len()]];
                let host = res.hosts[(r >> 16) as usize % res.hosts.len()];
                let svc = res.services[(r >> 20) as usize % res.services.len()];
                let nudge = (r >> 24) % 3; // below, at, or above the edge
                let ip = match (host.range_v4(), host.range_v6()) {
                    (Some((lo, hi)), _) => IpAddr::V4(Ipv4Addr::from(match nudge { 0 => lo.wrapping_sub(1), 1 => lo, _ => hi })),
                    (_, Some((lo, hi))) => IpAddr::V6(Ipv6Addr::from(match nudge { 0 => lo.wrapping_sub(1), 1 => lo, _ => hi.wrapping_add(1) })),
                    _ => unreachable!("a network is v4 or v6"),
                };
                let port = match (r >> 28) % 4 {
                    0 => svc.first_port.wrapping_sub(1),
                    1 => svc.first_port,
                    2 => svc.last_port,
                    _ => svc.last_port.wrapping_add(1),
                };
                (ip, svc.proto, port)
            } else if r & 1 == 0 {
                let ip = IpAddr::V4(Ipv4Addr::new(10, (r >> 8) as u8 % 5, (r >> 16) as u8, (r >> 24) as u8));
                (ip, [Proto::Tcp, Proto::Udp, Proto::Icmp][((r >> 40) % 3) as usize], ((r >> 48) % 260) as u16)
            } else {
                let ip = IpAddr::V6(Ipv6Addr::new(0xfd00, (r >> 8) as u16 % 5, 0, 0, 0, 0, 0, (r >> 24) as u16));
                (ip, [Proto::Tcp, Proto::Udp, Proto::Icmp][((r >> 40) % 3) as usize], ((r >> 48) % 260) as u16)
            };
            let a = compiled.decide(compiled.role(role).expect("role"), ip, proto, port);
            let b = linear.decide(linear.role(role).expect("role"), ip, proto, port);
            prop_assert_eq!(a, b, "role {} to {} {:?}/{}", role, ip, proto, port);
            allowed += usize::from(matches!(a, ztgw_config::policy::Decision::Allow(_)));
        }
        // Not vacuous: a good share of the queries is allowed.
        let has_rules = policy.roles.values().any(|r| !r.resources.is_empty());
        prop_assert!(!has_rules || allowed > QUERIES / 50, "only {} of {} allowed", allowed, QUERIES);
    }

    #[test]
    fn the_parser_never_panics_on_arbitrary_text(text in "\\PC{0,400}") {
        let _ = Policy::parse(std::path::Path::new("fuzz.toml"), &text);
    }

    #[test]
    fn the_parser_never_panics_on_a_damaged_policy(
        edits in prop::collection::vec((0usize..4000, any::<u8>(), 0u8..3), 1..8)
    ) {
        let mut bytes = include_bytes!("../../deploy/examples/policy.toml").to_vec();
        for (at, byte, kind) in edits {
            let at = at % (bytes.len() + 1);
            match kind {
                0 => bytes.insert(at, byte),
                1 if at < bytes.len() => { bytes.remove(at); }
                _ if at < bytes.len() => bytes[at] = byte,
                _ => {}
            }
        }
        let text = String::from_utf8_lossy(&bytes);
        if let Ok(checked) = Policy::parse(std::path::Path::new("damaged.toml"), &text) {
            // Whatever parses compiles and runs its tests without panicking.
            let compiled = CompiledPolicy::compile(&checked.policy);
            let _ = ztgw_config::policy::cases::run(&checked.policy, &compiled);
        }
    }
}

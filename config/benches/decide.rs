//! `decide` on a large policy: 10,000 rules across 200 roles, IPv4 and IPv6 networks,
//! port ranges. The compiled structure is measured beside the plain linear scan of the
//! same rules in the same run, and the ratio printed (the target: median ≤ 100 ns).
//!
//! Run: `cargo bench -p ztgw-config --bench decide`

use std::collections::BTreeMap;
use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;

use criterion::Criterion;
use ztgw_config::policy::compile::LinearPolicy;
use ztgw_config::policy::{
    CompiledPolicy, Network, Policy, PolicySettings, Proto, Resource, Role, RoleId, Service,
};

const ROLES: usize = 200;
const RESOURCES_PER_ROLE: usize = 50;
const RESOURCES: usize = 2_000;
const QUERIES: usize = 4_096;

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn resource(rng: &mut Rng, i: usize) -> Resource {
    let host = if i.is_multiple_of(2) {
        let prefix = 24 + rng.below(9) as u32;
        let addr = (10u32 << 24 | (rng.below(1 << 20) as u32) << 4) & (u32::MAX << (32 - prefix));
        Network::parse(&format!("{}/{prefix}", Ipv4Addr::from(addr)))
    } else {
        let prefix = 112 + rng.below(17) as u32;
        let addr = (0xfd00u128 << 112 | u128::from(rng.below(1 << 40)) << 16)
            & (u128::MAX << (128 - prefix));
        Network::parse(&format!("{}/{prefix}", Ipv6Addr::from(addr)))
    };
    let services = (0..1 + rng.below(2))
        .map(|_| {
            let first = 1 + rng.below(60_000) as u16;
            let spec = match rng.below(3) {
                0 => format!("tcp/{first}"),
                1 => format!("tcp/{first}-{}", first + rng.below(100) as u16),
                _ => format!("udp/{first}"),
            };
            Service::parse(&spec).expect("service")
        })
        .collect();
    Resource {
        hosts: vec![host.expect("network")],
        services,
        description: None,
    }
}

fn policy(rng: &mut Rng) -> Policy {
    let resources: BTreeMap<String, Resource> = (0..RESOURCES)
        .map(|i| (format!("r{i}"), resource(rng, i)))
        .collect();
    let roles = (0..ROLES)
        .map(|i| {
            let picks = (0..RESOURCES_PER_ROLE)
                .map(|_| format!("r{}", rng.below(RESOURCES as u64)))
                .collect();
            (
                format!("role{i}"),
                Role {
                    resources: picks,
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
}

/// Half the queries aim at something the role opens, half anywhere.
fn queries(
    rng: &mut Rng,
    policy: &Policy,
    compiled: &CompiledPolicy,
) -> Vec<(RoleId, String, IpAddr, Proto, u16)> {
    let names: Vec<&String> = policy.roles.keys().collect();
    (0..QUERIES)
        .map(|i| {
            let name = names[rng.below(names.len() as u64) as usize];
            let role = compiled.role(name).expect("role");
            if i.is_multiple_of(2) {
                let r = &policy.resources
                    [&policy.roles[name].resources[rng.below(RESOURCES_PER_ROLE as u64) as usize]];
                let s = r.services[0];
                let ip = match r.hosts[0] {
                    Network::V4 { addr, .. } => IpAddr::V4(Ipv4Addr::from(addr)),
                    Network::V6 { addr, .. } => IpAddr::V6(Ipv6Addr::from(addr)),
                };
                (role, name.clone(), ip, s.proto, s.first_port)
            } else {
                let ip = if rng.below(2) == 0 {
                    IpAddr::V4(Ipv4Addr::from(10u32 << 24 | rng.below(1 << 24) as u32))
                } else {
                    IpAddr::V6(Ipv6Addr::from(
                        0xfd00u128 << 112 | u128::from(rng.below(1 << 56)),
                    ))
                };
                (
                    role,
                    name.clone(),
                    ip,
                    Proto::Tcp,
                    1 + rng.below(60_000) as u16,
                )
            }
        })
        .collect()
}

fn median_ns(name: &str) -> Option<f64> {
    let dir = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"));
    let text = std::fs::read_to_string(
        dir.join("criterion/decide")
            .join(name)
            .join("new/estimates.json"),
    )
    .ok()?;
    let json: serde_json::Value = serde_json::from_str(&text).ok()?;
    json["median"]["point_estimate"].as_f64()
}

fn main() {
    let mut rng = Rng(0x5eed_1234_abcd_0001);
    let policy = policy(&mut rng);
    let compiled = CompiledPolicy::compile(&policy);
    let linear = LinearPolicy::compile(&policy);
    assert_eq!(compiled.rule_count(), ROLES * RESOURCES_PER_ROLE);
    let qs = queries(&mut rng, &policy, &compiled);
    let linear_roles: Vec<RoleId> = qs
        .iter()
        .map(|q| linear.role(&q.1).expect("role"))
        .collect();
    let allowed = qs
        .iter()
        .filter(|q| {
            matches!(
                compiled.decide(q.0, q.2, q.3, q.4),
                ztgw_config::policy::Decision::Allow(_)
            )
        })
        .count();

    let mut c = Criterion::default()
        .configure_from_args()
        .warm_up_time(std::time::Duration::from_secs(1))
        .measurement_time(std::time::Duration::from_secs(3));
    let mut group = c.benchmark_group("decide");
    let mut i = 0usize;
    group.bench_function("compiled", |b| {
        b.iter(|| {
            let q = &qs[i % QUERIES];
            i += 1;
            black_box(compiled.decide(q.0, black_box(q.2), q.3, q.4))
        })
    });
    let mut j = 0usize;
    group.bench_function("linear", |b| {
        b.iter(|| {
            let k = j % QUERIES;
            let q = &qs[k];
            j += 1;
            black_box(linear.decide(linear_roles[k], black_box(q.2), q.3, q.4))
        })
    });
    group.finish();
    c.final_summary();

    println!();
    println!(
        "decide: {} rules, {} roles, {QUERIES} queries ({allowed} allowed)",
        compiled.rule_count(),
        ROLES
    );
    match (median_ns("compiled"), median_ns("linear")) {
        (Some(fast), Some(slow)) => println!(
            "decide: compiled median {fast:.1} ns, linear scan median {slow:.1} ns: compiled is {:.1}x faster (target: compiled <= 100 ns)",
            slow / fast
        ),
        _ => println!(
            "decide: medians not found under target/criterion/decide (run with `cargo bench`)"
        ),
    }
}

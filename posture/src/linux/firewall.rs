//! The firewall: on the running system, the ruleset in force as nftables reports it
//! (`nft -j list ruleset`, which also shows what ufw, firewalld and iptables-nft put
//! there); on a copied root, the configuration that would be loaded at boot.

use std::path::Path;

use serde_json::Value;

use crate::report::{Fact, Firewall};

/// The ruleset in force: active when a chain on the input hook drops by default or holds
/// a rule that drops or rejects. The product is named from its tables and chains.
pub fn from_ruleset(json: &str) -> Result<Firewall, String> {
    let doc: Value = serde_json::from_str(json).map_err(|e| format!("nft's JSON: {e}"))?;
    let items = doc
        .get("nftables")
        .and_then(Value::as_array)
        .ok_or("nft's JSON has no `nftables` list")?;
    let mut input_chains: Vec<(&str, &str, &str)> = Vec::new();
    for c in items.iter().filter_map(|i| i.get("chain")) {
        let s = |k: &str| c.get(k).and_then(Value::as_str).unwrap_or("");
        if s("hook") == "input" && matches!(s("family"), "ip" | "ip6" | "inet") {
            input_chains.push((s("family"), s("table"), s("name")));
            if s("policy") == "drop" {
                return Ok(Firewall {
                    active: true,
                    product: product_of(items).into(),
                });
            }
        }
    }
    let filtering = items.iter().filter_map(|i| i.get("rule")).any(|r| {
        let s = |k: &str| r.get(k).and_then(Value::as_str).unwrap_or("");
        input_chains.contains(&(s("family"), s("table"), s("chain")))
            && r.get("expr").and_then(Value::as_array).is_some_and(|e| {
                e.iter()
                    .any(|x| x.get("drop").is_some() || x.get("reject").is_some())
            })
    });
    Ok(Firewall {
        active: filtering,
        product: product_of(items).into(),
    })
}

fn product_of(items: &[Value]) -> &'static str {
    let chains = items.iter().filter_map(|i| i.get("chain"));
    let mut product = "nftables";
    for c in chains {
        let s = |k: &str| c.get(k).and_then(Value::as_str).unwrap_or("");
        if s("table") == "firewalld" {
            return "firewalld";
        }
        if s("name").starts_with("ufw-") {
            product = "ufw";
        }
    }
    product
}

/// The configuration a copied root would load at boot (ufw's `ENABLED=yes`, or an
/// enabled nftables service whose rules drop or reject).
pub fn from_configuration(root: &Path) -> Fact<Firewall> {
    let read = |rel: &str| super::text(&root.join(rel));
    const WHY: &str = "(configuration: the ruleset in force is read on the running system only)";
    if let Some(conf) = read("etc/ufw/ufw.conf") {
        let active = conf
            .lines()
            .any(|l| l.trim().eq_ignore_ascii_case("ENABLED=yes"));
        return Fact::known(
            Firewall {
                active,
                product: "ufw".into(),
            },
            format!("/etc/ufw/ufw.conf {WHY}"),
        );
    }
    let enabled = root
        .join("etc/systemd/system/sysinit.target.wants/nftables.service")
        .exists();
    if let Some(rules) = read("etc/nftables.conf") {
        let has_rules = rules.lines().any(|l| {
            let l = l.trim();
            !l.is_empty() && !l.starts_with('#') && (l.contains("drop") || l.contains("reject"))
        });
        return Fact::known(
            Firewall {
                active: enabled && has_rules,
                product: "nftables".into(),
            },
            format!("/etc/nftables.conf and its systemd unit {WHY}"),
        );
    }
    Fact::unknown("neither ufw nor an nftables configuration was found")
}

/// The running system's firewall.
pub fn in_force() -> Fact<Firewall> {
    if !crate::run::is_root() {
        return Fact::unknown(
            "reading the firewall rules in force needs root: run `sudo ztgw-agent posture` (the agent's service runs as root)",
        );
    }
    match crate::run::output("nft", &["-j", "list", "ruleset"]).and_then(|j| from_ruleset(&j)) {
        Ok(fw) => Fact::known(fw, "the ruleset in force (nft -j list ruleset)"),
        Err(e) => Fact::unknown(format!("the ruleset in force cannot be read: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> String {
        std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("tests/fixtures/nft/{name}.json")),
        )
        .expect("fixture")
    }

    #[test]
    fn rulesets_written_by_nft() {
        let check = |name: &str| from_ruleset(&fixture(name)).expect(name);
        assert!(!check("empty").active);
        assert!(
            !check("accept").active,
            "an input chain that accepts everything"
        );
        let fw = check("inet-drop");
        assert!(fw.active && fw.product == "nftables", "{fw:?}");
        let fw = check("ufw");
        assert!(fw.active && fw.product == "ufw", "{fw:?}");
        let fw = check("firewalld");
        assert!(fw.active && fw.product == "firewalld", "{fw:?}");
    }

    #[test]
    fn broken_output_is_an_error() {
        assert!(from_ruleset("").is_err());
        assert!(from_ruleset("{\"nftables\": 3}").is_err());
        let cut = fixture("inet-drop");
        for n in 0..cut.len() {
            let _ = from_ruleset(&cut[..n]);
        }
    }
}

//! The example policy that `ztgw init` writes is valid, warns about nothing, and passes
//! its own tests.

use std::path::Path;

use ztgw_config::policy::{CompiledPolicy, Policy, cases};

#[test]
fn the_example_policy_is_valid_and_its_tests_pass() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/examples/policy.toml");
    let checked = Policy::load(&path).unwrap_or_else(|e| panic!("{e}"));
    assert!(checked.warnings.is_empty(), "{:?}", checked.warnings);
    let compiled = CompiledPolicy::compile(&checked.policy);
    let results = cases::run(&checked.policy, &compiled);
    assert_eq!(results.len(), 7);
    for r in &results {
        assert!(
            r.passed,
            "line {}: {}",
            r.case.line,
            r.actual.render(&checked.policy)
        );
    }
}

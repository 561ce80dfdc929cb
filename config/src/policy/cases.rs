//! Running a policy's `[[test]]` cases (`ztgw policy test`, and before every reload).

use super::explain::{Explanation, explain};
use super::{Expect, Policy, TestCase};
use crate::policy::compile::CompiledPolicy;

/// The outcome of one case.
#[derive(Debug, Clone)]
pub struct CaseResult<'p> {
    pub case: &'p TestCase,
    pub passed: bool,
    pub actual: Explanation,
}

/// Runs every case of `policy` against its compiled form.
pub fn run<'p>(policy: &'p Policy, compiled: &CompiledPolicy) -> Vec<CaseResult<'p>> {
    policy
        .tests
        .iter()
        .map(|case| {
            let actual = explain(
                policy,
                compiled,
                &case.role,
                case.employee.as_deref(),
                &case.destination,
                case.at,
            );
            let passed = match case.expect {
                Expect::Allow => {
                    actual.allowed()
                        && case
                            .rule
                            .as_deref()
                            .is_none_or(|r| actual.resource() == Some(r))
                }
                Expect::Deny => !actual.allowed(),
            };
            CaseResult {
                case,
                passed,
                actual,
            }
        })
        .collect()
}

/// How many passed and failed.
pub fn tally(results: &[CaseResult<'_>]) -> (usize, usize) {
    let passed = results.iter().filter(|r| r.passed).count();
    (passed, results.len() - passed)
}

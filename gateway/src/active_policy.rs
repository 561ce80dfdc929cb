//! The policy in force, and how a new one replaces it.
//!
//! A candidate is read, checked, compiled and its `[[test]]` cases run; only a candidate
//! that passes all of that replaces the policy in force, atomically. Every load and every
//! refusal is recorded with the policy's SHA-256 and the operator.

use std::path::Path;
use std::sync::Arc;

use arc_swap::ArcSwap;
use sha2::Digest as _;
use ztgw_config::location::{Diagnostic, read_config_file};
use ztgw_config::policy::{CompiledPolicy, MAX_POLICY_LEN, Policy, cases};

/// A policy ready to be enforced.
#[derive(Debug)]
pub struct ActivePolicy {
    pub policy: Policy,
    pub compiled: CompiledPolicy,
    /// SHA-256 of the file's bytes, hex.
    pub sha256: String,
    pub warnings: Vec<Diagnostic>,
    /// The text it was read from (what the registry shares with the other gateways).
    pub text: String,
}

/// Why a candidate policy was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("{0}")]
    Invalid(String),
    #[error("{failed} of its {total} tests fail:\n{details}")]
    TestsFail {
        failed: usize,
        total: usize,
        details: String,
    },
}

/// A candidate that was refused, with the hash of what was refused (if it could be read).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    pub sha256: Option<String>,
    pub refusal: Refusal,
}

impl ActivePolicy {
    /// Reads, checks, compiles and tests the policy at `path`.
    pub fn load(path: &Path) -> Result<Self, Refused> {
        let text = read_config_file(path, MAX_POLICY_LEN).map_err(|e| Refused {
            sha256: None,
            refusal: Refusal::Invalid(e.to_string()),
        })?;
        Self::from_text(path, &text)
    }

    /// Checks, compiles and tests the policy `text` (errors name `path`: the file it
    /// came from, or where else it came from).
    pub fn from_text(path: &Path, text: &str) -> Result<Self, Refused> {
        let sha256 = hex(&sha2::Sha256::digest(text.as_bytes()));
        let refused = |refusal| Refused {
            sha256: Some(sha256.clone()),
            refusal,
        };
        let checked =
            Policy::parse(path, text).map_err(|e| refused(Refusal::Invalid(e.to_string())))?;
        let mut compiled = CompiledPolicy::compile(&checked.policy);
        compiled.set_source(&sha256);
        let results = cases::run(&checked.policy, &compiled);
        let (_, failed) = cases::tally(&results);
        if failed > 0 {
            let details = results
                .iter()
                .filter(|r| !r.passed)
                .map(|r| {
                    format!(
                        "  {}:{}: expected {:?}, got: {}",
                        path.display(),
                        r.case.line,
                        r.case.expect,
                        r.actual.reason
                    )
                })
                .collect::<Vec<_>>()
                .join("\n");
            return Err(refused(Refusal::TestsFail {
                failed,
                total: results.len(),
                details,
            }));
        }
        Ok(Self {
            policy: checked.policy,
            compiled,
            sha256,
            warnings: checked.warnings,
            text: text.to_owned(),
        })
    }
}

/// The policy in force, swapped atomically; readers never wait.
#[derive(Debug)]
pub struct PolicyHolder {
    current: ArcSwap<ActivePolicy>,
}

impl PolicyHolder {
    pub fn new(initial: ActivePolicy) -> Self {
        Self {
            current: ArcSwap::from_pointee(initial),
        }
    }

    pub fn current(&self) -> Arc<ActivePolicy> {
        self.current.load_full()
    }

    pub fn replace(&self, next: ActivePolicy) -> Arc<ActivePolicy> {
        let next = Arc::new(next);
        self.current.store(next.clone());
        next
    }
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

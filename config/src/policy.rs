//! The access policy file (`policy.toml`).
//!
//! This module currently reads the names the enrolment path needs: which roles and which
//! schedules exist, so an invitation cannot name a role or schedule the policy does not
//! define. Sections it does not yet interpret (`resources`, `posture`, `settings`,
//! `test`) are kept as TOML values for the policy compiler.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

use crate::location::{ConfigError, read_config_file};

/// Largest policy file accepted.
pub const MAX_POLICY_LEN: u64 = 4 * 1024 * 1024;

/// A parsed policy.
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    pub roles: BTreeMap<String, Role>,
    pub schedules: BTreeMap<String, toml::Value>,
}

/// A role as the enrolment path sees it.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Role {
    #[serde(default)]
    pub schedule: Option<String>,
    #[serde(flatten)]
    pub rest: BTreeMap<String, toml::Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPolicy {
    #[serde(default)]
    roles: BTreeMap<String, Role>,
    #[serde(default)]
    schedules: BTreeMap<String, toml::Value>,
    #[serde(default)]
    resources: BTreeMap<String, toml::Value>,
    #[serde(default)]
    posture: BTreeMap<String, toml::Value>,
    #[serde(default)]
    settings: Option<toml::Value>,
    #[serde(default)]
    test: Vec<toml::Value>,
}

impl Policy {
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = read_config_file(path, MAX_POLICY_LEN)?;
        Self::parse(path, &text)
    }

    pub fn parse(path: &Path, text: &str) -> Result<Self, ConfigError> {
        if text.trim().is_empty() {
            return Err(ConfigError::whole_file(path, "the policy is empty"));
        }
        let raw: RawPolicy =
            toml::from_str(text).map_err(|e| ConfigError::from_toml(path, text, &e))?;
        let _ = (&raw.resources, &raw.posture, &raw.settings, &raw.test);
        for (name, role) in &raw.roles {
            if let Some(schedule) = &role.schedule
                && !raw.schedules.contains_key(schedule)
            {
                let key = format!("[roles.{name}]");
                let span = text.find(&key).map(|s| s..s + key.len());
                return Err(ConfigError::at(
                    path,
                    text,
                    span,
                    format!("role {name:?} names schedule {schedule:?}, which is not defined"),
                ));
            }
        }
        Ok(Self {
            roles: raw.roles,
            schedules: raw.schedules,
        })
    }

    pub fn has_role(&self, name: &str) -> bool {
        self.roles.contains_key(name)
    }

    pub fn has_schedule(&self, name: &str) -> bool {
        self.schedules.contains_key(name)
    }
}

//! The web console's forms and queries (`application/x-www-form-urlencoded`).
//!
//! Each form deserialises into a typed value or fails with the field at fault: ids are
//! checked ids, free text is [`Text`] (bounded, no control characters), an empty field is
//! `None`, and a field the form does not have is refused. The gateway parses a form once,
//! at its edge, and hands the typed value to the same admin code the command line uses.
//!
//! Every form that changes something carries `csrf`, the token the console put in the
//! page (checked by the gateway before anything else); and every destructive one
//! `confirm=yes`, the box the operator ticked.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize};
use ztgw_pki::{DeviceId, EmployeeId, OperatorName};

/// Longest free-text field (note, reason, reference), in characters.
pub const MAX_TEXT_LEN: usize = 500;
/// Largest form body the console reads, in bytes (a policy proposal excepted).
pub const MAX_FORM_BYTES: usize = 16 * 1024;
/// Largest policy proposal pasted for a `diff`, in bytes.
pub const MAX_POLICY_BYTES: usize = 256 * 1024;
/// Longest choice (a reason or a kind from a list), in characters.
pub const MAX_CHOICE_LEN: usize = 32;

/// Who may do what on the console. Auditors see and export; security units also act.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OperatorRole {
    SecurityUnit,
    Auditor,
}

impl OperatorRole {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::SecurityUnit => "security-unit",
            Self::Auditor => "auditor",
        }
    }

    /// Whether this role may change anything (invite, approve, revoke, end, override).
    pub fn may_act(self) -> bool {
        matches!(self, Self::SecurityUnit)
    }
}

impl std::str::FromStr for OperatorRole {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "security-unit" => Ok(Self::SecurityUnit),
            "auditor" => Ok(Self::Auditor),
            other => Err(format!(
                "unknown operator role {other:?} (security-unit or auditor)"
            )),
        }
    }
}

/// Free text from a form: at most [`MAX_TEXT_LEN`] characters, trimmed, no control
/// characters but line breaks and tabs. It is shown escaped wherever it is shown.
#[derive(Clone, PartialEq, Eq, Serialize)]
pub struct Text(String);

impl Text {
    pub fn new(value: &str) -> Result<Self, String> {
        let value = value.trim();
        if value.chars().count() > MAX_TEXT_LEN {
            return Err(format!("is longer than {MAX_TEXT_LEN} characters"));
        }
        if value
            .chars()
            .any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t'))
        {
            return Err("contains control characters".into());
        }
        Ok(Self(value.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Text {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl fmt::Display for Text {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Text {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Text::new(&s).map_err(serde::de::Error::custom)
    }
}

/// A choice from a list the page offers (a reason, an event type): lower-case letters,
/// digits, '-' and '.', at most [`MAX_CHOICE_LEN`]. The gateway maps it onto its own type.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Choice(String);

impl Choice {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl<'de> Deserialize<'de> for Choice {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        if s.is_empty()
            || s.len() > MAX_CHOICE_LEN
            || !s
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
        {
            return Err(serde::de::Error::custom(format!(
                "{:?} is not one of the choices offered",
                s.chars().take(MAX_CHOICE_LEN).collect::<String>()
            )));
        }
        Ok(Self(s))
    }
}

/// The box ticked to confirm a destructive action: the form sends `confirm=yes`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct Confirmed(pub bool);

impl<'de> Deserialize<'de> for Confirmed {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(Self(String::deserialize(d)? == "yes"))
    }
}

/// An empty field as `None`; anything else parsed as `T` (an id, a [`Text`]).
fn empty_as_none<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: TryFrom<String>,
    T::Error: fmt::Display,
{
    let s = Option::<String>::deserialize(d)?.unwrap_or_default();
    let s = s.trim();
    if s.is_empty() {
        return Ok(None);
    }
    T::try_from(s.to_owned())
        .map(Some)
        .map_err(serde::de::Error::custom)
}

impl TryFrom<String> for Text {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        Text::new(&s)
    }
}

impl TryFrom<String> for Choice {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        Choice::deserialize(serde::de::value::StringDeserializer::<
            serde::de::value::Error,
        >::new(s))
        .map_err(|e| e.to_string())
    }
}

/// `POST /devices/invite`: an invitation for an employee's device.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InviteForm {
    pub csrf: String,
    pub employee: EmployeeId,
    /// Empty: the directory's role (when a directory is configured).
    #[serde(default, deserialize_with = "empty_as_none")]
    pub role: Option<Text>,
    #[serde(default, deserialize_with = "empty_as_none")]
    pub schedule: Option<Text>,
    /// The authorisation's reference (a ticket, a decision number).
    pub reference: Text,
    /// Days the invitation stays valid (empty: the gateway's default).
    #[serde(default, deserialize_with = "empty_as_none")]
    pub valid_days: Option<Text>,
}

/// `POST /devices/approve` and `/devices/unlock`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceForm {
    pub csrf: String,
    pub device: DeviceId,
    #[serde(default, deserialize_with = "empty_as_none")]
    pub note: Option<Text>,
}

/// `POST /devices/revoke`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RevokeForm {
    pub csrf: String,
    pub device: DeviceId,
    pub reason: Choice,
    #[serde(default, deserialize_with = "empty_as_none")]
    pub note: Option<Text>,
    #[serde(default)]
    pub confirm: Confirmed,
}

/// `POST /employees/revoke` and `/employees/reinstate` (`reason` only for a revocation).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmployeeForm {
    pub csrf: String,
    pub employee: EmployeeId,
    #[serde(default, deserialize_with = "empty_as_none")]
    pub reason: Option<Choice>,
    #[serde(default, deserialize_with = "empty_as_none")]
    pub note: Option<Text>,
    #[serde(default)]
    pub confirm: Confirmed,
}

/// `POST /sessions/end`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SessionEndForm {
    pub csrf: String,
    pub session: Text,
    pub reason: Text,
    #[serde(default)]
    pub confirm: Confirmed,
}

/// `POST /incidents`: a device, or every device of an employee, revoked at once.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IncidentForm {
    pub csrf: String,
    #[serde(default, deserialize_with = "empty_as_none")]
    pub device: Option<DeviceId>,
    #[serde(default, deserialize_with = "empty_as_none")]
    pub employee: Option<EmployeeId>,
    pub kind: Choice,
    #[serde(default, deserialize_with = "empty_as_none")]
    pub note: Option<Text>,
    #[serde(default)]
    pub confirm: Confirmed,
}

/// `POST /overrides`: telework allowed outside the schedule for a role or an employee.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OverrideForm {
    pub csrf: String,
    #[serde(default, deserialize_with = "empty_as_none")]
    pub role: Option<Text>,
    #[serde(default, deserialize_with = "empty_as_none")]
    pub employee: Option<EmployeeId>,
    /// `YYYY-MM-DDTHH:MM` in the gateway's time zone (an `<input type=datetime-local>`).
    pub until: Text,
    pub reason: Text,
}

/// `POST /policy/diff` (`multipart/form-data`): the proposal uploaded as a file, or
/// pasted (read-only: auditors may too).
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyDiffForm {
    pub csrf: String,
    /// The file chosen (empty when none was).
    #[serde(default)]
    pub upload: String,
    /// The text pasted (empty when none was).
    #[serde(default)]
    pub proposal: String,
}

impl PolicyDiffForm {
    /// The proposal: the file when one was chosen, else the text pasted.
    pub fn text(&self) -> &str {
        if self.upload.trim().is_empty() {
            &self.proposal
        } else {
            &self.upload
        }
    }
}

impl fmt::Debug for PolicyDiffForm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PolicyDiffForm")
            .field("upload_bytes", &self.upload.len())
            .field("proposal_bytes", &self.proposal.len())
            .finish_non_exhaustive()
    }
}

// Operators are not managed from the console: `ztgw operator add|revoke` on the gateway,
// so that no one signed in to the console can give themselves or others access.

/// `GET /journal?...`: a search of the journal.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JournalSearch {
    #[serde(default, deserialize_with = "empty_as_none")]
    pub employee: Option<EmployeeId>,
    #[serde(default, deserialize_with = "empty_as_none")]
    pub device: Option<DeviceId>,
    /// An event type (`session.started`) or a prefix of one (`session.`).
    #[serde(default, deserialize_with = "empty_as_none")]
    pub kind: Option<Choice>,
    /// `YYYY-MM-DD`, inclusive, in UTC.
    #[serde(default, deserialize_with = "empty_as_none")]
    pub from: Option<Text>,
    #[serde(default, deserialize_with = "empty_as_none")]
    pub to: Option<Text>,
    #[serde(default, deserialize_with = "empty_as_none")]
    pub lang: Option<Choice>,
}

/// `GET /policy?role=..&destination=..&at=..`: why the policy in force allows or refuses.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExplainQuery {
    #[serde(default, deserialize_with = "empty_as_none")]
    pub role: Option<Text>,
    #[serde(default, deserialize_with = "empty_as_none")]
    pub destination: Option<Text>,
    /// `YYYY-MM-DDTHH:MM` in the gateway's time zone; empty: now.
    #[serde(default, deserialize_with = "empty_as_none")]
    pub at: Option<Text>,
    #[serde(default, deserialize_with = "empty_as_none")]
    pub lang: Option<Choice>,
}

/// `GET /reports?month=YYYY-MM`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReportQuery {
    #[serde(default, deserialize_with = "empty_as_none")]
    pub month: Option<Text>,
    #[serde(default, deserialize_with = "empty_as_none")]
    pub lang: Option<Choice>,
}

/// Any other page's query: only the language switch.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PageQuery {
    #[serde(default, deserialize_with = "empty_as_none")]
    pub lang: Option<Choice>,
}

/// An operator as the console lists them (read from the registry).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OperatorView {
    pub name: OperatorName,
    pub role: OperatorRole,
    pub revoked: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse<T: for<'de> Deserialize<'de>>(body: &str) -> Result<T, String> {
        serde_urlencoded::from_str(body).map_err(|e| e.to_string())
    }

    #[test]
    fn a_revocation_form_parses_into_typed_fields() {
        let f: RevokeForm =
            parse("csrf=t&device=dev-abc&reason=lost&note=&confirm=yes").expect("form");
        assert_eq!(f.device.as_str(), "dev-abc");
        assert_eq!(f.reason.as_str(), "lost");
        assert!(f.note.is_none(), "an empty note is no note");
        assert!(f.confirm.0);
        let f: RevokeForm = parse("csrf=t&device=dev-abc&reason=lost").expect("form");
        assert!(!f.confirm.0, "no box ticked, no confirmation");
    }

    #[test]
    fn bad_fields_are_refused_with_the_field_named() {
        for (body, expected) in [
            ("csrf=t&device=dev%20x&reason=lost", "device id"),
            (
                "csrf=t&device=dev-a&reason=Lost%3Cb%3E",
                "not one of the choices",
            ),
            (
                "csrf=t&device=dev-a&reason=lost&extra=1",
                "unknown field `extra`",
            ),
            ("device=dev-a&reason=lost", "missing field `csrf`"),
            (
                "csrf=t&device=dev-a&reason=lost&note=%07bell",
                "control characters",
            ),
        ] {
            let e = parse::<RevokeForm>(body).expect_err(body);
            assert!(e.contains(expected), "{body}: {e}");
        }
        let long = format!("csrf=t&device=dev-a&reason=lost&note={}", "x".repeat(501));
        assert!(
            parse::<RevokeForm>(&long)
                .expect_err("long")
                .contains("longer than 500")
        );
    }

    #[test]
    fn markup_in_text_is_kept_as_text_for_the_page_to_escape() {
        let f: DeviceForm =
            parse("csrf=t&device=dev-a&note=%3Cscript%3Ealert(1)%3C%2Fscript%3E").expect("form");
        assert_eq!(f.note.expect("note").as_str(), "<script>alert(1)</script>");
    }

    #[test]
    fn queries_take_empty_fields_as_absent() {
        let q: JournalSearch = parse("employee=&device=&kind=session.&from=&to=").expect("q");
        assert!(q.employee.is_none() && q.device.is_none() && q.from.is_none());
        assert!(
            parse::<JournalSearch>("kind=Session").is_err(),
            "not a choice offered"
        );
    }
}

//! The policy in force (G2, G4, G18): its text and hash, `explain` for a question (role,
//! destination, time), and `diff` against a proposal uploaded (or pasted) into the page. Neither
//! changes anything: auditors may use both. The proposal is parsed here and forgotten.

use std::path::Path;

use maud::html;
use ztgw_api::console::{ExplainQuery, PolicyDiffForm};
use ztgw_config::policy::explain::explain;
use ztgw_config::policy::{Destination, Policy, diff};

use super::i18n::Msg;
use super::layout::{self, csrf_field, field};
use super::routes::{Req, Response};

/// `GET /policy` (with an explanation when the query asks one) and `POST /policy/diff`.
pub async fn page(r: &Req<'_>, proposal: Option<PolicyDiffForm>) -> Response {
    let q: ExplainQuery = if proposal.is_some() {
        ExplainQuery::default()
    } else {
        match r.query() {
            Ok(q) => q,
            Err(response) => return response,
        }
    };
    let active = r.ctx().policy.current();
    let sha256 = crate::active_policy::hex(&sha2::Digest::finalize(
        <sha2::Sha256 as sha2::Digest>::new_with_prefix(active.text.as_bytes()),
    ));
    let explained = match (&q.role, &q.destination) {
        (Some(role), Some(dst)) => Some(explain_one(
            &active.policy,
            &active.compiled,
            role.as_str(),
            dst.as_str(),
            q.at.as_ref().map(|t| t.as_str()),
            r.ctx().clock.now(),
        )),
        _ => None,
    };
    let compared = proposal.map(|f| {
        Policy::parse(Path::new("proposal.toml"), f.text())
            .map(|checked| diff::diff(&active.policy, &checked.policy))
            .map_err(|e| e.to_string())
    });
    let p = &r.page;
    let text = |t: &Option<ztgw_api::console::Text>| t.as_ref().map(|t| t.as_str().to_owned());
    r.ok(layout::frame(
        p,
        p.t(Msg::Policy),
        html! {
            h2 id="explain" { (p.t(Msg::Explain)) }
            form method="get" action="/policy" aria-labelledby="explain" {
                (field("x-role", "role", p.t(Msg::Role), text(&q.role).as_deref(), true))
                (field("x-dst", "destination", p.t(Msg::Destination), text(&q.destination).as_deref(), true))
                (field("x-at", "at", p.t(Msg::At), text(&q.at).as_deref(), false))
                button type="submit" { (p.t(Msg::ExplainButton)) }
            }
            @if let Some(e) = &explained {
                @match e {
                    Ok((allowed, text)) => {
                        p class=(if *allowed { "done" } else { "error" }) role="status" {
                            (if *allowed { p.t(Msg::Allowed) } else { p.t(Msg::Refused) })
                        }
                        pre { (text) }
                    },
                    Err(e) => p class="error" role="alert" { (e) },
                }
            }
            h2 id="diff" { (p.t(Msg::Diff)) }
            form method="post" action="/policy/diff" enctype="multipart/form-data" aria-labelledby="diff" {
                (csrf_field(p))
                p {
                    label for="upload" { (p.t(Msg::ProposalFile)) }
                    input type="file" id="upload" name="upload" accept=".toml,text/plain";
                }
                p {
                    label for="proposal" { (p.t(Msg::Proposal)) }
                    textarea id="proposal" name="proposal" rows="8" {}
                }
                button type="submit" { (p.t(Msg::DiffButton)) }
            }
            @if let Some(c) = &compared {
                @match c {
                    Ok(changes) if changes.is_empty() => p class="done" role="status" { (p.t(Msg::NoChange)) },
                    Ok(changes) => div role="status" { ul { @for change in changes { li { (change) } } } },
                    Err(e) => pre class="error" role="alert" { (e) },
                }
            }
            h2 { (p.t(Msg::PolicyInForce)) }
            p class="detail" { "sha256 " (sha256) }
            pre { (active.text) }
        },
    ))
}

/// Explains whether `role` reaches `destination` at `at` (gateway time; none: now).
fn explain_one(
    policy: &Policy,
    compiled: &ztgw_config::policy::CompiledPolicy,
    role: &str,
    destination: &str,
    at: Option<&str>,
    now: time::OffsetDateTime,
) -> Result<(bool, String), String> {
    let dst = Destination::parse(destination)?;
    if !policy.has_role(role) {
        return Err(format!("role {role:?} is not in the policy in force"));
    }
    let at = match at {
        Some(s) => super::sessions::local_time(s)?,
        None => now,
    };
    let at = jiff::Timestamp::from_second(at.unix_timestamp()).map_err(|e| e.to_string())?;
    let e = explain(policy, compiled, role, None, &dst, at);
    Ok((e.allowed(), e.render(policy)))
}

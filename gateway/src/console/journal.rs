//! The journal as auditors read it (G10): its state in plain words, a search by employee,
//! device, type and period, the full verification, and the export as CSV. And the
//! overview, which says the journal's state beside the sessions and today's refusals.

use std::collections::BTreeMap;

use maud::{Markup, html};
use time::OffsetDateTime;
use ztgw_api::console::JournalSearch;

use super::i18n::Msg;
use super::layout::{self, Page, when};
use super::routes::{Req, Response, with_headers};
use crate::admin::{AdminRequest, AdminResponse};
use crate::journal::query::{self, Filter, Record};
use crate::journal::verify::{Report, verify_dir_until};

/// Most events a search or an export reads (as the auditors' API).
pub const MAX_READ: usize = crate::audit::MAX_EVENTS;
/// Events a search shows, the latest.
pub const SHOWN: usize = 500;

/// The latest `max` events matching `filter` in the journal's durable part, and how many
/// matched (at most [`MAX_READ`] are read).
pub async fn latest(
    r: &Req<'_>,
    filter: Filter,
    max: usize,
) -> Result<(Vec<Record>, usize), Response> {
    let read = r
        .read_journal(move |ctx| {
            query::read_at_most(
                &ctx.settings.journal.dir,
                &filter,
                ctx.journal.durable_end(),
                MAX_READ,
            )
        })
        .await?;
    match read {
        Ok((mut records, _)) => {
            let matched = records.len();
            records.reverse();
            records.truncate(max);
            Ok((records, matched))
        }
        Err(d) => Err(r.damaged(&d.to_string())),
    }
}

/// The journal verified with the gateway's key, up to its durable end.
async fn verified(r: &Req<'_>) -> Result<Result<Report, String>, Response> {
    r.read_journal(|ctx| {
        verify_dir_until(
            &ctx.settings.journal.dir,
            Some(&ctx.journal.public_key()),
            None,
            ctx.journal.durable_end(),
        )
        .map_err(|d| d.to_string())
    })
    .await
}

/// The journal's state in one sentence.
fn status_line(p: &Page, report: &Result<Report, String>) -> Markup {
    match report {
        Ok(r) => html! {
            p class="done" {
                (p.t(Msg::JournalStatus)) ": " (p.t(Msg::JournalIntact)) ", "
                (r.records) " " (p.t(Msg::Records)) ", "
                @match &r.last_checkpoint {
                    Some(c) => {
                        (p.t(Msg::LastCheckpoint)) " "
                        @if let Ok(t) = OffsetDateTime::from_unix_timestamp(c.head.time_ms.div_euclid(1000)) { (when(t)) }
                    },
                    None => (p.t(Msg::NoCheckpoint)),
                }
            }
        },
        Err(damage) => html! {
            p class="error" role="alert" { (p.t(Msg::JournalStatus)) ": " (p.t(Msg::JournalDamaged)) " — " (damage) }
        },
    }
}

/// `GET /`: sessions now, devices awaiting approval, today's refusals, the journal.
pub async fn overview(r: &Req<'_>) -> Response {
    let (here, elsewhere) = match r.act(AdminRequest::SessionList).await {
        Ok(AdminResponse::Sessions {
            sessions,
            elsewhere,
            ..
        }) => (sessions.len(), elsewhere.len()),
        _ => (0, 0),
    };
    let pending = match r.act(AdminRequest::DeviceList).await {
        Ok(AdminResponse::Devices { devices }) => devices
            .iter()
            .filter(|d| d.status == ztgw_api::control::DeviceStatus::Pending)
            .count(),
        _ => 0,
    };
    let today = r.ctx().clock.now().replace_time(time::Time::MIDNIGHT);
    let filter = Filter {
        kinds: vec!["admission.denied".into(), "enrolment.refused".into()],
        since: Some(today),
        ..Default::default()
    };
    let refusals = match latest(r, filter, MAX_READ).await {
        Ok((records, _)) => by_reason(&records),
        Err(response) => return response,
    };
    let report = match verified(r).await {
        Ok(report) => report,
        Err(response) => return response,
    };
    let p = &r.page;
    r.ok(layout::frame(
        p,
        p.t(Msg::Overview),
        html! {
            ul class="figures" {
                li { (p.t(Msg::SessionsNow)) strong { (here) " / " (elsewhere) } (p.t(Msg::HereAndElsewhere)) }
                li { (p.t(Msg::PendingApproval)) strong { a href="/devices" { (pending) } } }
            }
            (status_line(p, &report))
            h2 { (p.t(Msg::RefusalsToday)) " (UTC)" }
            (reason_table(p, &refusals, Msg::NoRefusals))
        },
    ))
}

/// Refusals counted by reason (an admission refused for several reasons counts under each).
pub fn by_reason(records: &[Record]) -> BTreeMap<String, u32> {
    let mut counts = BTreeMap::new();
    for r in records {
        let reasons: Vec<String> = match r.event.get("reasons").and_then(|v| v.as_array()) {
            Some(list) => list
                .iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect(),
            None => vec![
                r.event
                    .get("reason")
                    .and_then(|v| v.as_str())
                    .unwrap_or("unspecified")
                    .to_owned(),
            ],
        };
        for reason in reasons {
            *counts.entry(reason).or_insert(0) += 1;
        }
    }
    counts
}

pub fn reason_table(p: &Page, counts: &BTreeMap<String, u32>, none: Msg) -> Markup {
    html! {
        @if counts.is_empty() { p { (p.t(none)) } } @else {
            table {
                thead { tr { th scope="col" { (p.t(Msg::Reason)) } th scope="col" { (p.t(Msg::Count)) } } }
                tbody { @for (reason, n) in counts { tr { td { (reason) } td { (n) } } } }
            }
        }
    }
}

/// The filter a search asks for; a bad date is an error naming the field.
fn filter(q: &JournalSearch) -> Result<Filter, String> {
    let day = |field: &str, v: &Option<ztgw_api::console::Text>, next: bool| {
        v.as_ref()
            .map(|d| {
                let date = time::Date::parse(
                    d.as_str(),
                    time::macros::format_description!("[year]-[month]-[day]"),
                )
                .map_err(|_| format!("{field}: {:?} is not YYYY-MM-DD", d.as_str()))?;
                let date = if next {
                    date.next_day().unwrap_or(date)
                } else {
                    date
                };
                Ok::<_, String>(date.midnight().assume_utc())
            })
            .transpose()
    };
    Ok(Filter {
        employee: q.employee.as_ref().map(|e| e.as_str().to_owned()),
        device: q.device.as_ref().map(|d| d.as_str().to_owned()),
        kinds: q
            .kind
            .as_ref()
            .map(|k| {
                let k = k.as_str();
                // `session.` or `session` asks for the family.
                match k.strip_suffix('.') {
                    Some(family) => format!("{family}.*"),
                    None => k.to_owned(),
                }
            })
            .into_iter()
            .collect(),
        since: day("from", &q.from, false)?,
        until: day("to", &q.to, true)?,
    })
}

/// `GET /journal`: the search form and the latest matching events.
pub async fn search(r: &Req<'_>) -> Response {
    let q: JournalSearch = match r.query() {
        Ok(q) => q,
        Err(response) => return response,
    };
    let f = match filter(&q) {
        Ok(f) => f,
        Err(e) => return r.invalid(&e, "/journal"),
    };
    let (records, matched) = match latest(r, f, SHOWN).await {
        Ok(x) => x,
        Err(response) => return response,
    };
    let p = &r.page;
    let text = |v: Option<&str>| v.map(str::to_owned);
    let export = format!("/journal/export.csv?{}", r.query);
    r.ok(layout::frame(
        p,
        p.t(Msg::Journal),
        html! {
            form method="get" action="/journal" {
                (layout::field("q-employee", "employee", p.t(Msg::Employee), text(q.employee.as_ref().map(|e| e.as_str())).as_deref(), false))
                (layout::field("q-device", "device", p.t(Msg::Device), text(q.device.as_ref().map(|d| d.as_str())).as_deref(), false))
                p {
                    label for="q-kind" { (p.t(Msg::EventType)) }
                    select id="q-kind" name="kind" {
                        @for (value, label) in KINDS {
                            @let chosen = q.kind.as_ref().map(|k| k.as_str()) == Some(*value) || (value.is_empty() && q.kind.is_none());
                            option value=(value) selected[chosen] { (if value.is_empty() { p.t(Msg::AllEvents) } else { label }) }
                        }
                        @if let Some(k) = q.kind.as_ref().filter(|k| !KINDS.iter().any(|(v, _)| *v == k.as_str())) {
                            option value=(k.as_str()) selected { (k.as_str()) }
                        }
                    }
                }
                (date_field("q-from", "from", p.t(Msg::From), q.from.as_ref().map(|d| d.as_str())))
                (date_field("q-to", "to", p.t(Msg::To), q.to.as_ref().map(|d| d.as_str())))
                button type="submit" { (p.t(Msg::Search)) }
            }
            p {
                a href="/journal/verify" { (p.t(Msg::Verify)) } " · "
                a href=(export) download="ztgw-journal.csv" { (p.t(Msg::ExportCsv)) }
            }
            p { (p.t(Msg::Shown)) " " (records.len()) " " (p.t(Msg::Matching)) " " (matched) }
            @if !records.is_empty() {
                table {
                    thead { tr {
                        th scope="col" { (p.t(Msg::Seq)) }
                        th scope="col" { (p.t(Msg::Time)) }
                        th scope="col" { (p.t(Msg::Type)) }
                        th scope="col" { (p.t(Msg::Employee)) }
                        th scope="col" { (p.t(Msg::Device)) }
                        th scope="col" { (p.t(Msg::Detail)) }
                    } }
                    tbody { @for rec in &records { tr {
                        td { (rec.seq) }
                        td { (when(rec.time)) }
                        td { (field(&rec.event, "type")) }
                        td { (field(&rec.event, "employee")) }
                        td { (field(&rec.event, "device")) }
                        td class="detail" { (rec.event.to_string()) }
                    } } }
                }
            }
        },
    ))
}

/// The event types offered by the search (a family ends with '.'), the types' own names.
const KINDS: &[(&str, &str)] = &[
    ("", ""),
    ("admission.", "admission.*"),
    ("session.", "session.*"),
    ("posture.checked", "posture.checked"),
    ("device.", "device.*"),
    ("employee.", "employee.*"),
    ("invitation.created", "invitation.created"),
    ("enrolment.", "enrolment.*"),
    ("certificate.", "certificate.*"),
    ("incident.", "incident.*"),
    ("schedule.override", "schedule.override"),
    ("policy.", "policy.*"),
    ("revocation.queued", "revocation.queued"),
    ("operator.", "operator.*"),
    ("console.refused", "console.refused"),
    ("auditor.", "auditor.*"),
    ("directory.", "directory.*"),
    ("journal.", "journal.*"),
    ("gateway.", "gateway.*"),
];

/// A labelled date (the browser's date picker; `YYYY-MM-DD`).
fn date_field(id: &str, name: &str, label: &str, value: Option<&str>) -> Markup {
    html! {
        p {
            label for=(id) { (label) }
            input type="date" id=(id) name=(name) value=[value];
        }
    }
}

fn field(event: &serde_json::Value, k: &str) -> String {
    event
        .get(k)
        .and_then(|v| v.as_str())
        .unwrap_or("")
        .to_owned()
}

/// `GET /journal/verify`: the whole journal checked (chain, Merkle tree, every
/// checkpoint's signature with the gateway's key).
pub async fn verify(r: &Req<'_>) -> Response {
    let report = match verified(r).await {
        Ok(report) => report,
        Err(response) => return response,
    };
    let p = &r.page;
    r.ok(layout::frame(
        p,
        p.t(Msg::VerifyResult),
        html! {
            (status_line(p, &report))
            @if let Ok(rep) = &report {
                table { tbody {
                    tr { th scope="row" { (p.t(Msg::Records)) } td { (rep.records) } }
                    tr { th scope="row" { (p.t(Msg::Checkpoints)) } td { (rep.checkpoints) } }
                    tr { th scope="row" { (p.t(Msg::Segments)) } td { (rep.segments) } }
                    @if let Some(c) = &rep.last_checkpoint {
                        tr { th scope="row" { "Merkle root" } td class="detail" { (c.head.root) } }
                        tr { th scope="row" { "key id" } td class="detail" { (c.key_id) } }
                    }
                } }
            }
            p { a href="/journal" { (p.t(Msg::Back)) } }
        },
    ))
}

/// `GET /journal/export.csv?...`: the search's events (up to [`MAX_READ`]) as CSV, with
/// formulas made inert for spreadsheets.
pub async fn export(r: &Req<'_>) -> Response {
    let q: JournalSearch = match r.query() {
        Ok(q) => q,
        Err(response) => return response,
    };
    let f = match filter(&q) {
        Ok(f) => f,
        Err(e) => return r.invalid(&e, "/journal"),
    };
    let (mut records, _) = match latest(r, f, MAX_READ).await {
        Ok(x) => x,
        Err(response) => return response,
    };
    records.reverse();
    let mut response = with_headers(
        http::StatusCode::OK,
        "text/csv; charset=utf-8",
        bytes::Bytes::from(query::to_csv(&records)),
    );
    response.headers_mut().insert(
        http::header::CONTENT_DISPOSITION,
        http::HeaderValue::from_static("attachment; filename=\"ztgw-journal.csv\""),
    );
    response
}

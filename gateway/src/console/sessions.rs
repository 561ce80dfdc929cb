//! Live sessions (ending one), incidents (G13: a device or an employee cut at once) and
//! emergency schedule overrides.

use maud::html;
use time::OffsetDateTime;
use ztgw_api::console::{IncidentForm, OverrideForm, SessionEndForm};

use super::devices::{choice, finish, invalid, unconfirmed};
use super::i18n::Msg;
use super::journal::latest;
use super::layout::{self, confirm_box, csrf_field, field, note, select, when};
use super::routes::{Req, Response};
use crate::admin::incident::IncidentKind;
use crate::admin::{AdminError, AdminErrorCode, AdminRequest, AdminResponse};

/// Incident kinds offered.
const KINDS: &[&str] = &["lost-secret", "malware", "data-theft", "device-lost"];
/// Incidents listed on the page, the latest first.
const RECENT_INCIDENTS: usize = 50;

/// `GET /sessions`: the sessions on this gateway and, with a shared registry, the others.
pub async fn list(r: &Req<'_>) -> Response {
    let (mine, elsewhere, unknown) = match r.act(AdminRequest::SessionList).await {
        Ok(AdminResponse::Sessions {
            sessions,
            elsewhere,
            elsewhere_unknown,
        }) => (sessions, elsewhere, elsewhere_unknown),
        Ok(_) => (Vec::new(), Vec::new(), None),
        Err(e) => return r.admin_failed(&e, "/"),
    };
    let p = &r.page;
    r.ok(layout::frame(
        p,
        p.t(Msg::Sessions),
        html! {
            @if mine.is_empty() && elsewhere.is_empty() { p { (p.t(Msg::None_)) } } @else {
                table {
                    thead { tr {
                        th scope="col" { (p.t(Msg::Employee)) }
                        th scope="col" { (p.t(Msg::Device)) }
                        th scope="col" { (p.t(Msg::Role)) }
                        th scope="col" { (p.t(Msg::TunnelAddress)) }
                        th scope="col" { (p.t(Msg::Started)) }
                        th scope="col" { (p.t(Msg::EndsAt)) }
                        th scope="col" { (p.t(Msg::Gateway)) }
                        @if p.may_act() { th scope="col" { (p.t(Msg::EndSession)) } }
                    } }
                    tbody {
                        @for s in &mine { tr {
                            td { (s.employee.as_str()) }
                            td { a href=(format!("/devices/{}", s.device.as_str())) { (s.device.as_str()) } }
                            td { (s.role) }
                            td { (s.tunnel_addr) }
                            td { (when(s.started)) }
                            td { (when(s.ends_at)) }
                            td { (r.ctx().gateway_name()) }
                            @if p.may_act() { td {
                                form class="inline" method="post" action="/sessions/end" {
                                    (csrf_field(p))
                                    input type="hidden" name="session" value=(s.id);
                                    (field(&format!("end-{}", s.id), "reason", p.t(Msg::Reason), None, true))
                                    (confirm_box(p, &format!("end-confirm-{}", s.id)))
                                    button type="submit" class="danger" { (p.t(Msg::EndSession)) }
                                }
                            } }
                        } }
                        @for s in &elsewhere { tr {
                            td { (s.employee.as_str()) }
                            td { a href=(format!("/devices/{}", s.device.as_str())) { (s.device.as_str()) } }
                            td { (s.role) }
                            td { (s.tunnel_addr) }
                            td { (when(s.started)) }
                            td { (when(s.ends_at)) }
                            td { (s.gateway) }
                            @if p.may_act() { td { "—" } }
                        } }
                    }
                }
            }
            @if let Some(why) = unknown { p class="error" { (why) } }
        },
    ))
}

/// `POST /sessions/end`.
pub async fn end(r: &Req<'_>, f: SessionEndForm) -> Response {
    if !f.confirm.0 {
        return unconfirmed(r, "/sessions");
    }
    let request = AdminRequest::SessionEnd {
        session: f.session.as_str().to_owned(),
        reason: f.reason.as_str().to_owned(),
    };
    finish(r, request, "/sessions").await
}

/// `GET /incidents`: the form, and the incidents reported, the latest first.
pub async fn incidents(r: &Req<'_>) -> Response {
    let filter = crate::journal::query::Filter {
        kinds: vec!["incident.reported".into()],
        ..Default::default()
    };
    let records = match latest(r, filter, RECENT_INCIDENTS).await {
        Ok((records, _)) => records,
        Err(response) => return response,
    };
    let p = &r.page;
    let kinds: Vec<(&str, &str)> = KINDS.iter().map(|k| (*k, *k)).collect();
    let s =
        |e: &serde_json::Value, k: &str| e.get(k).and_then(|v| v.as_str()).unwrap_or("").to_owned();
    r.ok(layout::frame(
        p,
        p.t(Msg::Incidents),
        html! {
            @if p.may_act() {
                h2 id="report" { (p.t(Msg::ReportIncident)) }
                form method="post" action="/incidents" aria-labelledby="report" {
                    p { (p.t(Msg::IncidentHelp)) }
                    (csrf_field(p))
                    (field("inc-device", "device", &format!("{} ({})", p.t(Msg::Device), p.t(Msg::Optional)), None, false))
                    (field("inc-employee", "employee", &format!("{} ({})", p.t(Msg::Employee), p.t(Msg::Optional)), None, false))
                    (select("inc-kind", "kind", p.t(Msg::Kind), &kinds))
                    (note(p, "inc-note"))
                    (confirm_box(p, "inc-confirm"))
                    button type="submit" class="danger" { (p.t(Msg::ReportIncident)) }
                }
            }
            h2 { (p.t(Msg::RecentIncidents)) }
            @if records.is_empty() { p { (p.t(Msg::None_)) } } @else {
                table {
                    thead { tr {
                        th scope="col" { (p.t(Msg::Time)) }
                        th scope="col" { (p.t(Msg::Kind)) }
                        th scope="col" { (p.t(Msg::Employee)) }
                        th scope="col" { (p.t(Msg::Device)) }
                        th scope="col" { (p.t(Msg::Operator)) }
                        th scope="col" { (p.t(Msg::Note)) }
                    } }
                    tbody { @for rec in &records { tr {
                        td { (when(rec.time)) }
                        td { (s(&rec.event, "kind")) }
                        td { (s(&rec.event, "employee")) }
                        td { (s(&rec.event, "device")) }
                        td { (s(&rec.event, "reporter")) }
                        td { (s(&rec.event, "note")) }
                    } } }
                }
            }
        },
    ))
}

/// `POST /incidents`.
pub async fn report_incident(r: &Req<'_>, f: IncidentForm) -> Response {
    if !f.confirm.0 {
        return unconfirmed(r, "/incidents");
    }
    let Some(kind) = choice::<IncidentKind>(f.kind.as_str()) else {
        return invalid(r, "kind", "/incidents");
    };
    let request = AdminRequest::IncidentReport {
        device: f.device,
        employee: f.employee,
        kind,
        note: f.note.map(|n| n.as_str().to_owned()),
    };
    finish(r, request, "/incidents").await
}

/// `GET /overrides`: the overrides in force, and the form.
pub async fn overrides(r: &Req<'_>) -> Response {
    let now = r.ctx().clock.now();
    let list = match r.read(move |ctx| ctx.registry.overrides(now)).await {
        Ok(Ok(list)) => list,
        Ok(Err(e)) => return r.admin_failed(&e.into(), "/"),
        Err(response) => return response,
    };
    let p = &r.page;
    r.ok(layout::frame(
        p,
        p.t(Msg::Overrides),
        html! {
            @if list.is_empty() { p { (p.t(Msg::None_)) } } @else {
                table {
                    thead { tr {
                        th scope="col" { (p.t(Msg::Target)) }
                        th scope="col" { (p.t(Msg::Until)) }
                        th scope="col" { (p.t(Msg::Reason)) }
                        th scope="col" { (p.t(Msg::Operator)) }
                    } }
                    tbody { @for o in &list { tr {
                        td { (o.target) }
                        td { (when(o.until)) }
                        td { (o.reason) }
                        td { (o.operator) }
                    } } }
                }
            }
            @if p.may_act() {
                h2 id="override" { (p.t(Msg::AddOverride)) }
                form method="post" action="/overrides" aria-labelledby="override" {
                    p { (p.t(Msg::OverrideHelp)) " (" (ztgw_config::policy::DEFAULT_TIMEZONE) ")" }
                    (csrf_field(p))
                    (field("ovr-role", "role", &format!("{} ({})", p.t(Msg::Role), p.t(Msg::Optional)), None, false))
                    (field("ovr-employee", "employee", &format!("{} ({})", p.t(Msg::Employee), p.t(Msg::Optional)), None, false))
                    p {
                        label for="ovr-until" { (p.t(Msg::Until)) }
                        input type="datetime-local" id="ovr-until" name="until" required;
                    }
                    (field("ovr-reason", "reason", p.t(Msg::Reason), None, true))
                    button type="submit" { (p.t(Msg::Save)) }
                }
            }
        },
    ))
}

/// `POST /overrides`.
pub async fn add_override(r: &Req<'_>, f: OverrideForm) -> Response {
    let until = match local_time(f.until.as_str()) {
        Ok(t) => t,
        Err(e) => {
            return r.admin_failed(
                &AdminError::new(AdminErrorCode::Invalid, format!("until: {e}")),
                "/overrides",
            );
        }
    };
    let request = AdminRequest::ScheduleOverride {
        role: f.role.map(|t| t.as_str().to_owned()),
        employee: f.employee,
        until,
        reason: f.reason.as_str().to_owned(),
    };
    finish(r, request, "/overrides").await
}

/// `YYYY-MM-DDTHH:MM` (an `<input type=datetime-local>`) in the gateway's time zone.
pub fn local_time(s: &str) -> Result<OffsetDateTime, String> {
    let civil: jiff::civil::DateTime = s
        .parse()
        .map_err(|_| format!("{s:?} is not a date and time (YYYY-MM-DDTHH:MM)"))?;
    let tz = jiff::tz::db()
        .get(ztgw_config::policy::DEFAULT_TIMEZONE)
        .map_err(|e| e.to_string())?;
    let ts = tz.to_timestamp(civil).map_err(|e| e.to_string())?;
    OffsetDateTime::from_unix_timestamp(ts.as_second()).map_err(|e| e.to_string())
}

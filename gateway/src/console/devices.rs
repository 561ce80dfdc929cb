//! Devices and employees: the list, a device's record, invitations (shown once, with a QR
//! code), approval, revocation, the second-factor lockout, an employee's telework ended
//! or reinstated. Every action is an [`AdminRequest`], as on the command line.

use maud::{Markup, html};
use ztgw_api::console::{DeviceForm, EmployeeForm, InviteForm, RevokeForm};
use ztgw_api::control::DeviceStatus;
use ztgw_pki::{DeviceId, EmployeeId};

use super::i18n::Msg;
use super::layout::{self, Page, confirm_box, csrf_field, field, note, select, when};
use super::routes::{Req, Response};
use crate::admin::{
    AdminRequest, AdminResponse, DeviceSummary, EmployeeRevokeReason, RevokeReason,
};

/// Device revocation reasons offered (value, as the command line spells it).
const DEVICE_REASONS: &[&str] = &["lost", "stolen", "compromised", "ended", "other"];
/// Employee revocation reasons offered.
const EMPLOYEE_REASONS: &[&str] = &["ended", "employee-request", "departed", "incident", "other"];

/// `GET /devices`: every device, and the invitation form.
pub async fn list(r: &Req<'_>) -> Response {
    let devices = match r.act(AdminRequest::DeviceList).await {
        Ok(AdminResponse::Devices { devices }) => devices,
        Ok(_) => Vec::new(),
        Err(e) => return r.admin_failed(&e, "/"),
    };
    let p = &r.page;
    r.ok(layout::frame(
        p,
        p.t(Msg::Devices),
        html! {
            (device_table(p, &devices))
            @if p.may_act() { (invite_form(p)) }
        },
    ))
}

fn device_table(p: &Page, devices: &[DeviceSummary]) -> Markup {
    html! {
        @if devices.is_empty() { p { (p.t(Msg::None_)) } } @else {
            table {
                thead { tr {
                    th scope="col" { (p.t(Msg::Device)) }
                    th scope="col" { (p.t(Msg::Employee)) }
                    th scope="col" { (p.t(Msg::Role)) }
                    th scope="col" { (p.t(Msg::Status)) }
                    th scope="col" { (p.t(Msg::Hostname)) }
                    th scope="col" { (p.t(Msg::Enrolled)) }
                } }
                tbody {
                    @for d in devices { tr {
                        td { a href=(format!("/devices/{}", d.id.as_str())) { (d.id.as_str()) } }
                        td { (d.employee.as_str()) }
                        td { (d.role) }
                        td { (p.t(status(d.status))) }
                        td { (d.hostname) }
                        td { (when(d.enrolled_at)) }
                    } }
                }
            }
        }
    }
}

fn status(s: DeviceStatus) -> Msg {
    match s {
        DeviceStatus::Pending => Msg::StatusPending,
        DeviceStatus::Active => Msg::StatusActive,
        DeviceStatus::Revoked => Msg::StatusRevoked,
        DeviceStatus::Decommissioned => Msg::StatusDecommissioned,
    }
}

fn invite_form(p: &Page) -> Markup {
    html! {
        h2 id="invite" { (p.t(Msg::Invite)) }
        form method="post" action="/devices/invite" aria-labelledby="invite" {
            (csrf_field(p))
            (field("inv-employee", "employee", p.t(Msg::Employee), None, true))
            (field("inv-role", "role", &format!("{} ({})", p.t(Msg::Role), p.t(Msg::Optional)), None, false))
            (field("inv-schedule", "schedule", &format!("{} ({})", p.t(Msg::Schedule), p.t(Msg::Optional)), None, false))
            (field("inv-reference", "reference", p.t(Msg::Reference), None, true))
            (field("inv-days", "valid_days", &format!("{} ({})", p.t(Msg::ValidDays), p.t(Msg::Optional)), None, false))
            button type="submit" { (p.t(Msg::InviteButton)) }
        }
    }
}

/// `GET /devices/ID`: one device, with what may be done to it.
pub async fn show(r: &Req<'_>, id: &str) -> Response {
    let Ok(device) = DeviceId::new(id) else {
        return super::routes::not_found(r);
    };
    let detail = match r.act(AdminRequest::DeviceShow { device }).await {
        Ok(AdminResponse::Device { device }) => device,
        Ok(_) => return super::routes::not_found(r),
        Err(e) => return r.admin_failed(&e, "/devices"),
    };
    let p = &r.page;
    let d = &detail.summary;
    let id = d.id.as_str();
    let reasons: Vec<(&str, &str)> = DEVICE_REASONS.iter().map(|r| (*r, *r)).collect();
    r.ok(layout::frame(
        p,
        &format!("{} {id}", p.t(Msg::Device)),
        html! {
            table {
                tbody {
                    tr { th scope="row" { (p.t(Msg::Employee)) } td { (d.employee.as_str()) } }
                    tr { th scope="row" { (p.t(Msg::Role)) } td { (d.role) } }
                    tr { th scope="row" { (p.t(Msg::Status)) } td { (p.t(status(d.status))) } }
                    tr { th scope="row" { (p.t(Msg::Hostname)) } td { (d.hostname) " · " (detail.os) } }
                    tr { th scope="row" { (p.t(Msg::Schedule)) } td { (detail.schedule.as_deref().unwrap_or("—")) } }
                    tr { th scope="row" { (p.t(Msg::Enrolled)) } td { (when(d.enrolled_at)) } }
                    @if let Some(a) = &detail.approved {
                        tr { th scope="row" { (p.t(Msg::Approve)) } td { (when(a.at)) " · " (a.by) (note_suffix(&a.note)) } }
                    }
                    @if let Some(e) = &detail.ended {
                        tr { th scope="row" { (p.t(Msg::Revoke)) } td { (when(e.at)) " · " (e.by) " · " (e.reason) (note_suffix(&e.note)) } }
                    }
                }
            }
            h2 { (p.t(Msg::Certificates)) }
            table {
                thead { tr {
                    th scope="col" { (p.t(Msg::Serial)) }
                    th scope="col" { (p.t(Msg::ValidUntil)) }
                    th scope="col" { (p.t(Msg::Status)) }
                } }
                tbody { @for c in &detail.certificates { tr {
                    td class="detail" { (c.serial) }
                    td { (when(c.not_after)) }
                    td { @if let Some(at) = c.revoked_at { (p.t(Msg::StatusRevoked)) " " (when(at)) } @else { "—" } }
                } } }
            }
            @if p.may_act() {
                @if d.status == DeviceStatus::Pending {
                    form method="post" action="/devices/approve" {
                        (csrf_field(p))
                        input type="hidden" name="device" value=(id);
                        (note(p, "approve-note"))
                        button type="submit" { (p.t(Msg::Approve)) }
                    }
                }
                @if matches!(d.status, DeviceStatus::Pending | DeviceStatus::Active) {
                    h2 id="revoke" { (p.t(Msg::Revoke)) }
                    form method="post" action="/devices/revoke" aria-labelledby="revoke" {
                        (csrf_field(p))
                        input type="hidden" name="device" value=(id);
                        (select("revoke-reason", "reason", p.t(Msg::Reason), &reasons))
                        (note(p, "revoke-note"))
                        (confirm_box(p, "revoke-confirm"))
                        button type="submit" class="danger" { (p.t(Msg::Revoke)) }
                    }
                    form method="post" action="/devices/unlock" {
                        (csrf_field(p))
                        input type="hidden" name="device" value=(id);
                        (note(p, "unlock-note"))
                        button type="submit" { (p.t(Msg::Unlock)) }
                    }
                }
            }
        },
    ))
}

fn note_suffix(note: &Option<String>) -> Markup {
    html! { @if let Some(n) = note { " · " q { (n) } } }
}

/// `POST /devices/invite`: the invitation, shown once with its QR code.
pub async fn invite(r: &Req<'_>, f: InviteForm) -> Response {
    let valid_for_secs = match f.valid_days.as_ref().map(|d| d.as_str().parse::<u64>()) {
        None => None,
        Some(Ok(days)) if (1..=30).contains(&days) => Some(days * 86_400),
        Some(_) => {
            return r.admin_failed(
                &crate::admin::AdminError::new(
                    crate::admin::AdminErrorCode::Invalid,
                    "valid_days: a number of days from 1 to 30",
                ),
                "/devices",
            );
        }
    };
    let request = AdminRequest::Invite {
        employee: f.employee,
        role: f.role.map(|t| t.as_str().to_owned()),
        schedule: f.schedule.map(|t| t.as_str().to_owned()),
        approved_by: r.page.operator.name.as_str().to_owned(),
        reference: f.reference.as_str().to_owned(),
        valid_for_secs,
    };
    let issued = match r.act(request).await {
        Ok(AdminResponse::Invitation(i)) => i,
        Ok(_) => return super::routes::not_found(r),
        Err(e) => return r.admin_failed(&e, "/devices"),
    };
    let p = &r.page;
    let text = issued.invitation.expose();
    let qr = qrcode::QrCode::new(text.as_bytes())
        .map(|code| {
            code.render::<qrcode::render::svg::Color<'_>>()
                .min_dimensions(240, 240)
                .build()
        })
        .map(|svg| {
            // The library's SVG, from our own string: its prolog dropped, hidden from
            // screen readers (the figure's label says what it is).
            let start = svg.find("<svg").unwrap_or(0);
            svg[start..].replacen("<svg", "<svg aria-hidden=\"true\" focusable=\"false\"", 1)
        });
    r.ok(layout::frame(
        p,
        p.t(Msg::Invitation),
        html! {
            p role="status" { (p.t(Msg::InvitationShownOnce)) }
            table { tbody {
                tr { th scope="row" { (p.t(Msg::Employee)) } td { (issued.employee.as_str()) } }
                tr { th scope="row" { (p.t(Msg::Role)) } td { (issued.role) } }
                tr { th scope="row" { (p.t(Msg::Expires)) } td { (when(issued.expires_at)) } }
            } }
            p {
                label for="invitation" { (p.t(Msg::Invitation)) }
                textarea class="invitation" id="invitation" readonly rows="3" { (text) }
            }
            @if let Ok(svg) = qr {
                div class="qr" role="img" aria-label=(p.t(Msg::QrCode)) { (layout::trusted(svg)) }
            }
            p { a href="/devices" { (p.t(Msg::Back)) } }
        },
    ))
}

/// `POST /devices/approve`.
pub async fn approve(r: &Req<'_>, f: DeviceForm) -> Response {
    let back = format!("/devices/{}", f.device.as_str());
    let request = AdminRequest::DeviceApprove {
        device: f.device,
        note: f.note.map(|n| n.as_str().to_owned()),
    };
    finish(r, request, &back).await
}

/// `POST /devices/unlock`.
pub async fn unlock(r: &Req<'_>, f: DeviceForm) -> Response {
    let back = format!("/devices/{}", f.device.as_str());
    let request = AdminRequest::DeviceUnlock {
        device: f.device,
        note: f.note.map(|n| n.as_str().to_owned()),
    };
    finish(r, request, &back).await
}

/// `POST /devices/revoke`: with a reason, once the box is ticked.
pub async fn revoke(r: &Req<'_>, f: RevokeForm) -> Response {
    let back = format!("/devices/{}", f.device.as_str());
    if !f.confirm.0 {
        return unconfirmed(r, &back);
    }
    let Some(reason) = choice::<RevokeReason>(f.reason.as_str()) else {
        return invalid(r, "reason", &back);
    };
    let request = AdminRequest::DeviceRevoke {
        device: f.device,
        reason,
        note: f.note.map(|n| n.as_str().to_owned()),
    };
    finish(r, request, &back).await
}

/// `GET /employees`: the employees who have devices, and whether their telework is on.
pub async fn employees(r: &Req<'_>) -> Response {
    let devices = match r.act(AdminRequest::DeviceList).await {
        Ok(AdminResponse::Devices { devices }) => devices,
        Ok(_) => Vec::new(),
        Err(e) => return r.admin_failed(&e, "/"),
    };
    let mut ids: Vec<EmployeeId> = devices.iter().map(|d| d.employee.clone()).collect();
    ids.sort();
    ids.dedup();
    let rows = match r
        .read(move |ctx| {
            ids.into_iter()
                .map(|id| {
                    let revoked = ctx.registry.employee(&id)?.and_then(|e| e.revoked);
                    Ok((id, revoked))
                })
                .collect::<Result<Vec<_>, crate::registry::RegistryError>>()
        })
        .await
    {
        Ok(Ok(rows)) => rows,
        Ok(Err(e)) => return r.admin_failed(&e.into(), "/"),
        Err(response) => return response,
    };
    let p = &r.page;
    let reasons: Vec<(&str, &str)> = EMPLOYEE_REASONS.iter().map(|r| (*r, *r)).collect();
    r.ok(layout::frame(
        p,
        p.t(Msg::Employees),
        html! {
            @if rows.is_empty() { p { (p.t(Msg::None_)) } } @else {
                table {
                    thead { tr {
                        th scope="col" { (p.t(Msg::Employee)) }
                        th scope="col" { (p.t(Msg::Devices)) }
                        th scope="col" { (p.t(Msg::Status)) }
                    } }
                    tbody { @for (id, revoked) in &rows { tr {
                        td { (id.as_str()) }
                        td { (devices.iter().filter(|d| &d.employee == id).count()) }
                        td { @if let Some(c) = revoked { (p.t(Msg::StatusRevoked)) " " (when(c.at)) " · " (c.reason) (note_suffix(&c.note)) } @else { (p.t(Msg::StatusActive)) } }
                    } } }
                }
            }
            @if p.may_act() {
                h2 id="emp-revoke" { (p.t(Msg::Revoke)) }
                form method="post" action="/employees/revoke" aria-labelledby="emp-revoke" {
                    (csrf_field(p))
                    (field("emp-id", "employee", p.t(Msg::Employee), None, true))
                    (select("emp-reason", "reason", p.t(Msg::Reason), &reasons))
                    (note(p, "emp-note"))
                    (confirm_box(p, "emp-confirm"))
                    button type="submit" class="danger" { (p.t(Msg::Revoke)) }
                }
                h2 id="emp-reinstate" { (p.t(Msg::Reinstate)) }
                form method="post" action="/employees/reinstate" aria-labelledby="emp-reinstate" {
                    (csrf_field(p))
                    (field("emp-id2", "employee", p.t(Msg::Employee), None, true))
                    (note(p, "emp-note2"))
                    button type="submit" { (p.t(Msg::Reinstate)) }
                }
            }
        },
    ))
}

/// `POST /employees/revoke`.
pub async fn revoke_employee(r: &Req<'_>, f: EmployeeForm) -> Response {
    if !f.confirm.0 {
        return unconfirmed(r, "/employees");
    }
    let Some(reason) = f
        .reason
        .as_ref()
        .and_then(|c| choice::<EmployeeRevokeReason>(c.as_str()))
        .filter(|r| *r != EmployeeRevokeReason::Directory)
    else {
        return invalid(r, "reason", "/employees");
    };
    let request = AdminRequest::EmployeeRevoke {
        employee: f.employee,
        reason,
        note: f.note.map(|n| n.as_str().to_owned()),
    };
    finish(r, request, "/employees").await
}

/// `POST /employees/reinstate`.
pub async fn reinstate_employee(r: &Req<'_>, f: EmployeeForm) -> Response {
    let request = AdminRequest::EmployeeReinstate {
        employee: f.employee,
        note: f.note.map(|n| n.as_str().to_owned()),
    };
    finish(r, request, "/employees").await
}

/// Carries out an action and shows what it did.
pub(super) async fn finish(r: &Req<'_>, request: AdminRequest, back: &str) -> Response {
    match r.act(request).await {
        Ok(AdminResponse::Done { message, .. }) => r.ok(layout::done(&r.page, &message, back)),
        Ok(_) => r.ok(layout::done(&r.page, r.page.t(Msg::Done), back)),
        Err(e) => r.admin_failed(&e, back),
    }
}

/// The answer to a destructive form sent without its box ticked.
pub(super) fn unconfirmed(r: &Req<'_>, back: &str) -> Response {
    r.admin_failed(
        &crate::admin::AdminError::new(
            crate::admin::AdminErrorCode::Invalid,
            r.page.t(Msg::ConfirmNeeded),
        ),
        back,
    )
}

pub(super) fn invalid(r: &Req<'_>, field: &str, back: &str) -> Response {
    r.admin_failed(
        &crate::admin::AdminError::new(
            crate::admin::AdminErrorCode::Invalid,
            format!("{field}: not one of the choices offered"),
        ),
        back,
    )
}

/// A [`ztgw_api::console::Choice`] as one of the gateway's kebab-case enums.
pub(super) fn choice<T: serde::de::DeserializeOwned>(value: &str) -> Option<T> {
    serde_json::from_value(serde_json::Value::String(value.to_owned())).ok()
}

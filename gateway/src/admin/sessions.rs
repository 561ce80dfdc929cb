//! Admin requests about live sessions, which only a running gateway can answer.

use crate::admin::{
    AdminError, AdminErrorCode, AdminRequest, AdminResponse, RemoteSession, check_text,
};
use crate::context::Context;
use crate::sessions::SessionService;

/// Answers `request` if it is about sessions; `None` lets the general handler have it.
pub fn handle(
    ctx: &Context,
    sessions: &SessionService,
    operator: &str,
    request: &AdminRequest,
) -> Option<Result<AdminResponse, AdminError>> {
    Some(match request {
        AdminRequest::SessionList => list(ctx, sessions),
        AdminRequest::SessionEnd { session, reason } => {
            end(ctx, sessions, operator, session, reason)
        }
        _ => return None,
    })
}

/// This gateway's sessions, and with a shared registry those the others hold.
fn list(ctx: &Context, sessions: &SessionService) -> Result<AdminResponse, AdminError> {
    let mine = sessions.list();
    let (elsewhere, elsewhere_unknown) = if ctx.registry.shared() {
        match ctx.registry.live_sessions() {
            Ok(all) => (
                all.into_iter()
                    .filter(|s| s.gateway != ctx.gateway_name())
                    .map(|s| RemoteSession {
                        id: s.session,
                        gateway: s.gateway,
                        device: s.device,
                        employee: s.employee,
                        role: s.role,
                        tunnel_addr: s.tunnel_address,
                        started: s.started,
                        ends_at: s.ends_at,
                    })
                    .collect(),
                None,
            ),
            // This gateway's own sessions are still known: listed, with why the others'
            // are not.
            Err(e) => (
                Vec::new(),
                Some(format!("the registry cannot be read: {e}")),
            ),
        }
    } else {
        (Vec::new(), None)
    };
    Ok(AdminResponse::Sessions {
        sessions: mine,
        elsewhere,
        elsewhere_unknown,
    })
}

fn end(
    ctx: &Context,
    sessions: &SessionService,
    operator: &str,
    session: &str,
    reason: &str,
) -> Result<AdminResponse, AdminError> {
    check_text("reason", reason, true)?;
    match sessions.end_by_operator(session, &format!("{operator}: {reason}")) {
        Some(s) => Ok(AdminResponse::Done {
            message: format!("session {} of device {} ended", s.id, s.device),
            devices_ended: Vec::new(),
        }),
        None => {
            // Held by another gateway: it is ended there.
            let holder = ctx
                .registry
                .live_sessions()
                .ok()
                .and_then(|all| all.into_iter().find(|s| s.session == session))
                .map(|s| s.gateway);
            Err(AdminError::new(
                AdminErrorCode::NotFound,
                match holder {
                    Some(gw) => format!(
                        "session {session} is held by gateway {gw}: run `ztgw session end` there"
                    ),
                    None => format!("no live session {session}"),
                },
            ))
        }
    }
}

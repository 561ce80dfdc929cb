//! Admin requests about live sessions, which only a running gateway can answer.

use crate::admin::{AdminError, AdminErrorCode, AdminRequest, AdminResponse, check_text};
use crate::context::Context;
use crate::sessions::SessionService;

/// Answers `request` if it is about sessions; `None` lets the general handler have it.
pub fn handle(
    _ctx: &Context,
    sessions: &SessionService,
    operator: &str,
    request: &AdminRequest,
) -> Option<Result<AdminResponse, AdminError>> {
    Some(match request {
        AdminRequest::SessionList => Ok(AdminResponse::Sessions {
            sessions: sessions.list(),
        }),
        AdminRequest::SessionEnd { session, reason } => end(sessions, operator, session, reason),
        _ => return None,
    })
}

fn end(
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
        None => Err(AdminError::new(
            AdminErrorCode::NotFound,
            format!("no live session {session}"),
        )),
    }
}

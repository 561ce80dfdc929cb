//! The control plane's endpoints. Each reads a bounded JSON body, does its work on a
//! blocking thread (the registry is synchronous), and answers JSON.

use std::net::IpAddr;
use std::sync::Arc;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt as _, Full, Limited};
use hyper::body::Incoming;
use serde::Serialize;
use serde::de::DeserializeOwned;
use ztgw_pki::wire::{
    AdmissionRequest, EndRequest, EnrolRequest, IncidentRequest, RecheckRequest, RenewRequest, path,
};

use super::limits::SourceLimits;
use crate::api_error::{ApiError, Reason};
use crate::context::Context;
use crate::device_auth::{Presented, authenticate, authenticate_auditor};
use crate::enrolment;
use crate::sessions::SessionService;

/// Longest a session watch waits before answering that the session is still live.
pub const WATCH_LIMIT: std::time::Duration = std::time::Duration::from_secs(25);

/// Answers one request.
pub async fn route(
    ctx: Arc<Context>,
    sessions: Arc<SessionService>,
    limits: Arc<SourceLimits>,
    source: IpAddr,
    presented: Arc<Presented>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, std::convert::Infallible> {
    let timeout = ctx.settings.control.request_timeout.get();
    let answer = tokio::time::timeout(
        timeout,
        dispatch(ctx, sessions, limits, source, presented, req),
    )
    .await
    .unwrap_or_else(|_| Err(ApiError::new(Reason::Timeout, "the request took too long")));
    Ok(match answer {
        Ok(response) => response,
        Err(e) => error_response(&e),
    })
}

async fn dispatch(
    ctx: Arc<Context>,
    sessions: Arc<SessionService>,
    limits: Arc<SourceLimits>,
    source: IpAddr,
    presented: Arc<Presented>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, ApiError> {
    let max = ctx.settings.control.max_request_bytes;
    match (req.method().clone(), req.uri().path()) {
        (Method::POST, path::ENROL) => {
            if !limits.allow_enrolment(source) {
                return Err(ApiError::new(
                    Reason::RateLimited,
                    "too many enrolment attempts from this address; wait a minute",
                ));
            }
            let body: EnrolRequest = read_json(req, max).await?;
            let answer = blocking(move || enrolment::enrol(&ctx, &body)).await?;
            json(StatusCode::OK, &answer)
        }
        (Method::POST, path::RENEW) => {
            let body: RenewRequest = read_json(req, max).await?;
            let answer = blocking(move || {
                let device = authenticate(&ctx, &presented)?;
                enrolment::renew(&ctx, &device, &body)
            })
            .await?;
            json(StatusCode::OK, &answer)
        }
        (Method::GET, path::DEVICE) => {
            let answer =
                blocking(move || authenticate(&ctx, &presented).map(|d| enrolment::view(&d)))
                    .await?;
            json(StatusCode::OK, &answer)
        }
        (Method::GET, path::POSTURE_PROFILE) => {
            let answer = blocking(move || {
                let device = authenticate(&ctx, &presented)?;
                posture_profile(&ctx, &device)
            })
            .await?;
            json(StatusCode::OK, &answer)
        }
        (Method::POST, path::SESSION_NONCE) => {
            if !limits.allow_admission(source) {
                return Err(too_many_admissions());
            }
            let answer = blocking(move || {
                let device = authenticate(&ctx, &presented)?;
                sessions.nonce(&device)
            })
            .await?;
            json(StatusCode::OK, &answer)
        }
        (Method::POST, path::SESSION) => {
            if !limits.allow_admission(source) {
                return Err(too_many_admissions());
            }
            let body: AdmissionRequest = read_json(req, max).await?;
            let answer = blocking(move || {
                let device = authenticate(&ctx, &presented)?;
                sessions.admit(&device, &body)
            })
            .await?;
            json(StatusCode::OK, &answer)
        }
        (Method::POST, path::SESSION_RECHECK) => {
            if !limits.allow_admission(source) {
                return Err(too_many_admissions());
            }
            let body: RecheckRequest = read_json(req, max).await?;
            let answer = blocking(move || {
                let device = authenticate(&ctx, &presented)?;
                sessions.recheck(&device, &body)
            })
            .await?;
            json(StatusCode::OK, &answer)
        }
        (Method::POST, path::SESSION_END) => {
            let body: EndRequest = read_json(req, max).await?;
            blocking(move || {
                let device = authenticate(&ctx, &presented)?;
                sessions.disconnect(&device, &body)
            })
            .await?;
            json(StatusCode::OK, &serde_json::json!({"ended": true}))
        }
        (Method::POST, path::SESSION_WATCH) => {
            let body: EndRequest = read_json(req, max).await?;
            let device = {
                let ctx = ctx.clone();
                blocking(move || authenticate(&ctx, &presented)).await?
            };
            // Answered before the request's own time limit runs out.
            let limit = ctx
                .settings
                .control
                .request_timeout
                .get()
                .saturating_sub(std::time::Duration::from_secs(1))
                .min(WATCH_LIMIT);
            let answer = sessions
                .watch(Arc::new(device), body.session, limit)
                .await?;
            json(StatusCode::OK, &answer)
        }
        (Method::POST, path::INCIDENT) => {
            let body: IncidentRequest = read_json(req, max).await?;
            let answer = blocking(move || {
                let device = authenticate(&ctx, &presented)?;
                let mut access = Vec::new();
                let answer = crate::admin::incident::from_device(&ctx, &device, &body, &mut access);
                sessions.apply_all(&access);
                answer
            })
            .await?;
            json(StatusCode::OK, &answer)
        }
        (Method::GET, path::AUDIT_EVENTS | path::AUDIT_VERIFY | path::AUDIT_CHECKPOINT) => {
            let route = req.uri().path().to_owned();
            let query = req.uri().query().unwrap_or("").to_owned();
            blocking(move || {
                let auditor = authenticate_auditor(&ctx, &presented)?;
                crate::audit::answer(&ctx, &auditor, &route, &query)
            })
            .await
        }
        (
            _,
            path::ENROL
            | path::RENEW
            | path::DEVICE
            | path::AUDIT_EVENTS
            | path::AUDIT_VERIFY
            | path::AUDIT_CHECKPOINT
            | path::SESSION_NONCE
            | path::SESSION
            | path::SESSION_RECHECK
            | path::SESSION_END
            | path::INCIDENT
            | path::SESSION_WATCH,
        ) => Err(ApiError::new(
            Reason::MethodNotAllowed,
            format!("{} is not allowed here", req.method()),
        )),
        _ => Err(ApiError::new(Reason::NotFound, "no such endpoint")),
    }
}

fn too_many_admissions() -> ApiError {
    ApiError::new(
        Reason::RateLimited,
        "too many admission attempts from this address; wait a little",
    )
}

fn posture_profile(
    ctx: &Context,
    device: &crate::device_auth::AuthenticatedDevice,
) -> Result<ztgw_pki::wire::PostureProfileView, ApiError> {
    let active = ctx.policy.current();
    let role = active
        .policy
        .roles
        .get(&device.record.role)
        .ok_or_else(|| {
            ApiError::new(
                Reason::RoleUnknown,
                "this device's role is no longer in the policy; contact your security unit",
            )
        })?;
    let profile =
        active.policy.posture.get(&role.posture).ok_or_else(|| {
            ApiError::new(Reason::Internal, "the role's posture profile is missing")
        })?;
    Ok(ztgw_pki::wire::PostureProfileView {
        role: device.record.role.clone(),
        profile_name: role.posture.clone(),
        profile: serde_json::to_value(profile)
            .map_err(|e| ApiError::new(Reason::Internal, e.to_string()))?,
    })
}

async fn read_json<T: DeserializeOwned>(req: Request<Incoming>, max: usize) -> Result<T, ApiError> {
    let bytes = Limited::new(req.into_body(), max)
        .collect()
        .await
        .map_err(|e| {
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some()
            {
                ApiError::new(
                    Reason::RequestTooLarge,
                    format!("the request body exceeds {max} bytes"),
                )
            } else {
                ApiError::new(
                    Reason::RequestMalformed,
                    "the request body could not be read",
                )
            }
        })?
        .to_bytes();
    serde_json::from_slice(&bytes).map_err(|e| {
        ApiError::new(
            Reason::RequestMalformed,
            format!("the request body is not valid: {e}"),
        )
    })
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f).await.unwrap_or_else(|e| {
        tracing::error!(error = %e, "request handler failed");
        Err(ApiError::new(
            Reason::Internal,
            "the gateway could not complete the request",
        ))
    })
}

fn json(status: StatusCode, value: &impl Serialize) -> Result<Response<Full<Bytes>>, ApiError> {
    let body = serde_json::to_vec(value).map_err(|e| {
        tracing::error!(error = %e, "response serialisation failed");
        ApiError::new(
            Reason::Internal,
            "the gateway could not complete the request",
        )
    })?;
    Ok(response(status, body))
}

fn error_response(e: &ApiError) -> Response<Full<Bytes>> {
    let body = serde_json::to_vec(&e.body())
        .unwrap_or_else(|_| b"{\"error\":\"internal_error\",\"message\":\"\"}".to_vec());
    response(e.reason.status(), body)
}

/// A response with a body of the given content type.
pub fn typed_response(
    status: StatusCode,
    content_type: &'static str,
    body: Vec<u8>,
) -> Response<Full<Bytes>> {
    let mut r = response(status, body);
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static(content_type),
    );
    r
}

fn response(status: StatusCode, body: Vec<u8>) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    r.headers_mut().insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-store"),
    );
    r
}

//! The control plane's endpoints. Each reads a bounded JSON body, does its work on a
//! blocking thread (the registry is synchronous), and answers JSON.

use std::net::IpAddr;
use std::sync::Arc;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt as _, Full, Limited};
use hyper::body::{Body as _, Incoming};
use serde::Serialize;
use serde::de::DeserializeOwned;
use ztgw_api::control::{
    AdmissionRequest, EndRequest, EnrolRequest, IncidentRequest, NonceRequest, RecheckRequest,
    RenewRequest, path,
};

use super::limits::SourceLimits;

/// A response's body: whole, or (a session watch) streamed with heartbeats.
pub type Body = http_body_util::combinators::BoxBody<Bytes, std::convert::Infallible>;

/// While a session watch waits, a space is sent this often (JSON allows white space
/// before a value): an agent that hears nothing for a few of these knows its gateway
/// stopped answering, even when no connection was reset (a frozen process, a cut link).
pub const WATCH_HEARTBEAT: std::time::Duration =
    std::time::Duration::from_secs(ztgw_api::control::WATCH_HEARTBEAT_SECS);
use crate::api_error::{ApiError, Reason};
use crate::context::Context;
use crate::device_auth::{Presented, authenticate, authenticate_auditor};
use crate::directory::client::{LoginError, LoginProof};
use crate::enrolment;
use crate::sessions::SessionService;

/// Longest a session watch waits before answering that the session is still live.
pub const WATCH_LIMIT: std::time::Duration = std::time::Duration::from_secs(25);
/// After a refusal, what the client is still sending is read and dropped, up to this
/// many bytes and this long, so that the refusal reaches it as a complete response
/// rather than a reset connection or stream.
const DRAIN_BYTES: usize = 4 * 1024 * 1024;
const DRAIN_TIME: std::time::Duration = std::time::Duration::from_secs(3);
/// How long a request waits for room in the body budget.
const BUDGET_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// Request body bytes held in memory at once, over all connections.
#[derive(Debug)]
pub struct BodyBudget {
    bytes: Arc<tokio::sync::Semaphore>,
    max: usize,
}

impl BodyBudget {
    pub fn new(max: usize) -> Self {
        Self {
            bytes: Arc::new(tokio::sync::Semaphore::new(max)),
            max,
        }
    }

    /// Room for `n` bytes, waiting a little for it.
    async fn reserve(&self, n: usize) -> Result<tokio::sync::OwnedSemaphorePermit, ApiError> {
        let n = u32::try_from(n.min(self.max)).unwrap_or(u32::MAX);
        tokio::time::timeout(BUDGET_WAIT, self.bytes.clone().acquire_many_owned(n))
            .await
            .ok()
            .and_then(Result::ok)
            .ok_or_else(|| {
                ApiError::new(
                    Reason::Busy,
                    "the gateway is receiving too many requests at once; try again shortly",
                )
            })
    }

    /// Bytes held now.
    pub fn in_use(&self) -> usize {
        self.max.saturating_sub(self.bytes.available_permits())
    }
}

/// Who is asking, and what the gateway answers with.
#[derive(Debug, Clone)]
pub struct Caller {
    pub ctx: Arc<Context>,
    pub sessions: Arc<SessionService>,
    pub limits: Arc<SourceLimits>,
    pub bodies: Arc<BodyBudget>,
    pub refusals: Arc<super::refusals::RefusalTally>,
    pub source: IpAddr,
    pub presented: Arc<Presented>,
}

/// Answers one request.
pub async fn route(
    caller: Caller,
    req: Request<Incoming>,
) -> Result<Response<Body>, std::convert::Infallible> {
    let timeout = caller.ctx.settings.control.request_timeout.get();
    let (parts, mut body) = req.into_parts();
    let answer = tokio::time::timeout(timeout, dispatch(caller, &parts, &mut body))
        .await
        .unwrap_or_else(|_| Err(ApiError::new(Reason::Timeout, "the request took too long")));
    Ok(match answer {
        Ok(response) => {
            // A body the endpoint had no use for (a GET's) is read too: left unread, it
            // would end the connection after this answer instead of keeping it open.
            if !body.is_end_stream() {
                drain(&mut body).await;
            }
            response
        }
        Err(e) => {
            drain(&mut body).await;
            error_response(&e)
        }
    })
}

/// Reads and drops what is left of a refused request's body (bounded in size and time).
async fn drain(body: &mut Incoming) {
    let _ = tokio::time::timeout(DRAIN_TIME, async {
        let mut seen = 0usize;
        while seen < DRAIN_BYTES {
            match body.frame().await {
                Some(Ok(frame)) => {
                    seen += frame.data_ref().map_or(0, Bytes::len);
                }
                _ => break,
            }
        }
    })
    .await;
}

/// The device behind the connection's certificate, checked against the registry before
/// any of its request's body is read.
async fn device(caller: &Caller) -> Result<crate::device_auth::AuthenticatedDevice, ApiError> {
    let ctx = caller.ctx.clone();
    let presented = caller.presented.clone();
    blocking(move || authenticate(&ctx, &presented)).await
}

async fn dispatch(
    caller: Caller,
    parts: &http::request::Parts,
    body: &mut Incoming,
) -> Result<Response<Body>, ApiError> {
    let Caller {
        ctx,
        sessions,
        limits,
        bodies,
        refusals,
        source,
        presented,
    } = caller.clone();
    let max = ctx.settings.control.max_request_bytes;
    match (parts.method.clone(), parts.uri.path()) {
        (Method::POST, path::ENROL) => {
            // Refusals are counted per source and minute, journaled by the daemon.
            let refused = |e: ApiError, invitation: Option<&str>| {
                if !matches!(e.reason, Reason::JournalUnavailable | Reason::Internal) {
                    refusals.record(source, e.reason.code(), invitation, ctx.clock.now());
                }
                e
            };
            if !limits.allow_enrolment(source) {
                return Err(refused(
                    ApiError::new(
                        Reason::RateLimited,
                        "too many enrolment attempts from this address; wait a minute",
                    ),
                    None,
                ));
            }
            let body: EnrolRequest = read_json(parts, body, max, &bodies)
                .await
                .map_err(|e| refused(e, None))?;
            let invitation = body.invitation_id.to_string();
            let login = directory_login(&ctx, &body)
                .await
                .map_err(|e| refused(e, Some(&invitation)))?;
            let work = ctx.clone();
            let answer = blocking(move || enrolment::enrol(&work, &body, login.as_ref()))
                .await
                .map_err(|e| refused(e, Some(&invitation)))?;
            json(StatusCode::OK, &answer)
        }
        (Method::POST, path::RENEW) => {
            device(&caller).await?;
            let body: RenewRequest = read_json(parts, body, max, &bodies).await?;
            let answer = blocking(move || {
                let device = authenticate(&ctx, &presented)?;
                enrolment::renew(&ctx, &device, &body)
            })
            .await?;
            json(StatusCode::OK, &answer)
        }
        (Method::GET, path::DEVICE) => {
            let answer = device(&caller).await.map(|d| enrolment::view(&d))?;
            json(StatusCode::OK, &answer)
        }
        (Method::GET, path::POSTURE_PROFILE) => {
            let device = device(&caller).await?;
            json(StatusCode::OK, &posture_profile(&ctx, &device)?)
        }
        (Method::POST, path::SESSION_NONCE) => {
            if !limits.allow_admission(source) {
                return Err(too_many_admissions());
            }
            let device = device(&caller).await?;
            // No body, or `{}` (what the agent sends).
            if !body.is_end_stream() {
                let NonceRequest {} = read_json(parts, body, max, &bodies).await?;
            }
            let answer = blocking(move || sessions.nonce(&device)).await?;
            json(StatusCode::OK, &answer)
        }
        (Method::POST, path::SESSION) => {
            if !limits.allow_admission(source) {
                return Err(too_many_admissions());
            }
            device(&caller).await?;
            let body: AdmissionRequest = read_json(parts, body, max, &bodies).await?;
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
            device(&caller).await?;
            let body: RecheckRequest = read_json(parts, body, max, &bodies).await?;
            let answer = blocking(move || {
                let device = authenticate(&ctx, &presented)?;
                sessions.recheck(&device, &body)
            })
            .await?;
            json(StatusCode::OK, &answer)
        }
        (Method::POST, path::SESSION_END) => {
            device(&caller).await?;
            let body: EndRequest = read_json(parts, body, max, &bodies).await?;
            blocking(move || {
                let device = authenticate(&ctx, &presented)?;
                sessions.disconnect(&device, &body)
            })
            .await?;
            json(StatusCode::OK, &serde_json::json!({"ended": true}))
        }
        (Method::POST, path::SESSION_WATCH) => {
            let device = device(&caller).await?;
            let body: EndRequest = read_json(parts, body, max, &bodies).await?;
            // Answered before the request's own time limit runs out.
            let limit = ctx
                .settings
                .control
                .request_timeout
                .get()
                .saturating_sub(std::time::Duration::from_secs(1))
                .min(WATCH_LIMIT);
            watch_reply(sessions.watch(Arc::new(device), body.session, limit))
        }
        (Method::POST, path::INCIDENT) => {
            device(&caller).await?;
            let body: IncidentRequest = read_json(parts, body, max, &bodies).await?;
            let answer = blocking(move || {
                let device = authenticate(&ctx, &presented)?;
                let mut access = Vec::new();
                let _changing = ctx.changing();
                let answer = crate::admin::incident::from_device(&ctx, &device, &body, &mut access);
                sessions.apply_all(&access);
                answer
            })
            .await?;
            json(StatusCode::OK, &answer)
        }
        (Method::GET, path::AUDIT_EVENTS | path::AUDIT_VERIFY | path::AUDIT_CHECKPOINT) => {
            let route = parts.uri.path().to_owned();
            let query = parts.uri.query().unwrap_or("").to_owned();
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
            format!("{} is not allowed here", parts.method),
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

/// With `require_directory_login`, the employee's password is checked by a bind as the
/// invitation's employee — only for an invitation that may be redeemed, so that nobody
/// without one can try passwords against the directory. `None` when not required.
async fn directory_login(
    ctx: &Arc<Context>,
    body: &EnrolRequest,
) -> Result<Option<LoginProof>, ApiError> {
    let Some(d) = ctx
        .settings
        .directory
        .clone()
        .filter(|d| d.require_directory_login)
    else {
        return Ok(None);
    };
    let Some(password) = body.directory_password.clone() else {
        return Err(ApiError::new(
            Reason::DirectoryLoginRequired,
            "this gateway requires your directory password at enrolment (ztgw-agent enroll --directory-login)",
        ));
    };
    let work = ctx.clone();
    let check = body.clone();
    let employee = blocking(move || enrolment::invitation(&work, &check))
        .await?
        .employee;
    match crate::directory::client::login(&d, &employee, password.expose()).await {
        Ok(proof) => Ok(Some(proof)),
        Err(LoginError::Refused(e)) => Err(ApiError::new(
            Reason::DirectoryLoginFailed,
            format!("the directory did not accept this password for {e}"),
        )),
        Err(LoginError::Directory(e)) => {
            tracing::error!(error = %e, "a directory login at enrolment could not be checked");
            Err(ApiError::new(
                Reason::DirectoryUnavailable,
                "the directory could not check the password now; try again later",
            ))
        }
    }
}

fn posture_profile(
    ctx: &Context,
    device: &crate::device_auth::AuthenticatedDevice,
) -> Result<ztgw_api::control::PostureProfileView, ApiError> {
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
    Ok(ztgw_api::control::PostureProfileView {
        role: device.record.role.clone(),
        profile_name: role.posture.clone(),
        profile: serde_json::to_value(profile)
            .map_err(|e| ApiError::new(Reason::Internal, e.to_string()))?,
    })
}

/// Reads a JSON body of at most `max` bytes, held within the global body budget (the
/// declared length is refused at once when it is too large).
async fn read_json<T: DeserializeOwned>(
    parts: &http::request::Parts,
    body: &mut Incoming,
    max: usize,
    budget: &BodyBudget,
) -> Result<T, ApiError> {
    let too_large = || {
        ApiError::new(
            Reason::RequestTooLarge,
            format!("the request body exceeds {max} bytes"),
        )
    };
    let declared = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > max as u64) {
        return Err(too_large());
    }
    let room = declared.map_or(max, |n| n as usize);
    let _held = budget.reserve(room).await?;
    let bytes = Limited::new(body, room)
        .collect()
        .await
        .map_err(|e| {
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some()
            {
                too_large()
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

/// The answer to a session watch: at once if `watch` is over at its first poll (a
/// refusal keeps its own status); otherwise `200` with a body that carries a space every
/// [`WATCH_HEARTBEAT`] and then the watch's answer.
fn watch_reply(
    watch: impl std::future::Future<Output = Result<ztgw_api::control::WatchView, ApiError>>
    + Send
    + 'static,
) -> Result<Response<Body>, ApiError> {
    use std::task::{Context as TaskContext, Poll, Waker};
    let mut watch = Box::pin(watch);
    if let Poll::Ready(answer) = watch
        .as_mut()
        .poll(&mut TaskContext::from_waker(Waker::noop()))
    {
        return json(StatusCode::OK, &answer?);
    }
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(2);
    tokio::spawn(async move {
        // The first space at once: the answer's head goes with it, and the agent knows
        // the watch is set up.
        let mut beat = tokio::time::interval(WATCH_HEARTBEAT);
        loop {
            tokio::select! {
                answer = &mut watch => {
                    let bytes = match answer {
                        Ok(view) => serde_json::to_vec(&view).unwrap_or_default(),
                        // Past the first poll a watch only answers; a refusal would have
                        // come first. Said as the body of the error, for the record.
                        Err(e) => serde_json::to_vec(&e.body()).unwrap_or_default(),
                    };
                    let _ = tx.send(Bytes::from(bytes)).await;
                    return;
                }
                _ = beat.tick() => {
                    if tx.send(Bytes::from_static(b" ")).await.is_err() {
                        // The agent went away: the watch (and its slot) goes too.
                        return;
                    }
                }
            }
        }
    });
    Ok(json_headers(Response::new(ChannelBody(rx).boxed())))
}

/// A body whose frames come from a channel, ending when its sender is gone.
#[derive(Debug)]
struct ChannelBody(tokio::sync::mpsc::Receiver<Bytes>);

impl hyper::body::Body for ChannelBody {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Bytes>, Self::Error>>> {
        self.0
            .poll_recv(cx)
            .map(|b| b.map(|b| Ok(hyper::body::Frame::data(b))))
    }
}

fn json(status: StatusCode, value: &impl Serialize) -> Result<Response<Body>, ApiError> {
    let body = serde_json::to_vec(value).map_err(|e| {
        tracing::error!(error = %e, "response serialisation failed");
        ApiError::new(
            Reason::Internal,
            "the gateway could not complete the request",
        )
    })?;
    Ok(response(status, body))
}

fn error_response(e: &ApiError) -> Response<Body> {
    let body = serde_json::to_vec(&e.body())
        .unwrap_or_else(|_| b"{\"error\":\"internal_error\",\"message\":\"\"}".to_vec());
    response(e.reason.status(), body)
}

/// A response with a body of the given content type.
pub fn typed_response(
    status: StatusCode,
    content_type: &'static str,
    body: Vec<u8>,
) -> Response<Body> {
    let mut r = response(status, body);
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static(content_type),
    );
    r
}

fn response(status: StatusCode, body: Vec<u8>) -> Response<Body> {
    let mut r = json_headers(Response::new(Full::new(Bytes::from(body)).boxed()));
    *r.status_mut() = status;
    r
}

/// `r` as JSON that no one keeps (every answer of the control plane).
fn json_headers(mut r: Response<Body>) -> Response<Body> {
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

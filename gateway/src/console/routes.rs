//! The console's requests: who asks, in which language, for which page or action, and
//! the headers every answer carries (a strict Content-Security-Policy, no caching, no
//! framing, no referrer to other sites).
//!
//! A change (POST) is checked in this order before it reaches the admin code: the
//! request comes from the console's own pages (`Sec-Fetch-Site`, `Origin`), the role may
//! act (auditors may only compare a policy), the body is small and arrives in time, the
//! CSRF token is this operator's, and the form parses into its typed value. A refusal of
//! the role, the origin or the token is journaled (`console.refused`).

use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderValue, Method, StatusCode, header};
use http_body_util::{BodyExt as _, Full, Limited};
use hyper::body::Incoming;
use maud::Markup;
use serde::de::DeserializeOwned;

use super::auth::{self, Csrf, NotSignedIn};
use super::i18n::{Lang, Msg};
use super::layout::{self, Page};
use super::{devices, journal, policy, reports, sessions};
use crate::admin::{AdminError, AdminErrorCode, AdminRequest, AdminResponse};
use crate::context::Context;
use crate::device_auth::Presented;
use crate::journal::Event;
use crate::sessions::SessionService;

/// Reads of the whole journal at once (a search, an export, the verification, a
/// report): each can take a while and hold up to [`super::journal::MAX_READ`] events, so
/// the others wait for a place, at most the request timeout.
pub const MAX_JOURNAL_READS: usize = 2;

/// What every request of the console shares.
#[derive(Debug)]
pub struct Shared {
    pub ctx: Arc<Context>,
    pub sessions: Arc<SessionService>,
    pub csrf: Csrf,
    /// Places for journal reads ([`MAX_JOURNAL_READS`]).
    pub journal_reads: tokio::sync::Semaphore,
}

pub type Response = hyper::Response<Full<Bytes>>;

/// The Content-Security-Policy of every answer: nothing but this origin's stylesheet,
/// forms posting to this origin, no framing, no script at all.
pub const CSP: &str = "default-src 'none'; style-src 'self'; img-src 'self'; \
    form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// The cookie that remembers the language switch (not personal data; `SameSite=Strict`).
const LANG_COOKIE: &str = "ztgw_lang";

/// A request as the page handlers see it.
#[derive(Debug)]
pub struct Req<'a> {
    pub shared: &'a Shared,
    pub page: Page<'a>,
    pub query: &'a str,
}

impl Req<'_> {
    pub fn ctx(&self) -> &Context {
        &self.shared.ctx
    }

    /// Parses the query string into `T`; a malformed one is a 400 page.
    pub fn query<T: DeserializeOwned + Default>(&self) -> Result<T, Response> {
        if self.query.is_empty() {
            return Ok(T::default());
        }
        serde_urlencoded::from_str(self.query).map_err(|e| {
            let title = self.page.t(Msg::BadForm);
            html(
                StatusCode::BAD_REQUEST,
                layout::failed(&self.page, title, &e.to_string(), self.page.path),
            )
        })
    }

    /// Carries out `request` for the signed-in operator, on the admin socket's path.
    pub async fn act(&self, request: AdminRequest) -> Result<AdminResponse, AdminError> {
        let operator = format!("{} (console)", self.page.operator.name);
        crate::admin::socket::carry_out(
            self.shared.ctx.clone(),
            self.shared.sessions.clone(),
            operator,
            request,
        )
        .await
    }

    /// The page for an action's failure, with the status its code maps to.
    pub fn admin_failed(&self, e: &AdminError, back: &str) -> Response {
        let status = match e.code {
            AdminErrorCode::Invalid => StatusCode::UNPROCESSABLE_ENTITY,
            AdminErrorCode::NotFound => StatusCode::NOT_FOUND,
            AdminErrorCode::Conflict => StatusCode::CONFLICT,
            AdminErrorCode::Forbidden => StatusCode::FORBIDDEN,
            AdminErrorCode::Internal => StatusCode::SERVICE_UNAVAILABLE,
        };
        html(
            status,
            layout::failed(&self.page, self.page.t(Msg::ErrorTitle), &e.message, back),
        )
    }

    pub fn ok(&self, markup: Markup) -> Response {
        html(StatusCode::OK, markup)
    }

    /// Runs `f` (registry and journal reads block) off the async threads.
    pub async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Context) -> T + Send + 'static,
    ) -> Result<T, Response> {
        let ctx = self.shared.ctx.clone();
        tokio::task::spawn_blocking(move || f(&ctx))
            .await
            .map_err(|_| {
                html(
                    StatusCode::SERVICE_UNAVAILABLE,
                    layout::failed(
                        &self.page,
                        self.page.t(Msg::Unavailable),
                        self.page.t(Msg::Unavailable),
                        "/",
                    ),
                )
            })
    }

    /// [`Req::read`] for work that reads the whole journal: it waits for one of the
    /// [`MAX_JOURNAL_READS`] places, at most the request timeout (then 503).
    pub async fn read_journal<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Context) -> T + Send + 'static,
    ) -> Result<T, Response> {
        let timeout = self.ctx().settings.control.request_timeout.get();
        let _place = match tokio::time::timeout(timeout, self.shared.journal_reads.acquire()).await
        {
            Ok(Ok(place)) => place,
            Ok(Err(_)) | Err(_) => {
                tracing::warn!("console: every journal read place stayed taken");
                return Err(html(
                    StatusCode::SERVICE_UNAVAILABLE,
                    layout::failed(
                        &self.page,
                        self.page.t(Msg::Unavailable),
                        self.page.t(Msg::Unavailable),
                        "/",
                    ),
                ));
            }
        };
        self.read(f).await
    }

    /// The page for a request whose fields are wrong (`message` names the field).
    pub fn invalid(&self, message: &str, back: &str) -> Response {
        self.admin_failed(
            &AdminError::new(AdminErrorCode::Invalid, message.to_owned()),
            back,
        )
    }

    /// The page for a journal that cannot be read: the damage, as `verify` states it.
    pub fn damaged(&self, damage: &str) -> Response {
        tracing::error!(damage, "console: the journal is damaged");
        html(
            StatusCode::INTERNAL_SERVER_ERROR,
            layout::failed(&self.page, self.page.t(Msg::JournalDamaged), damage, "/"),
        )
    }
}

/// Answers one request of the connection whose certificate is `presented`.
pub async fn route(
    shared: Arc<Shared>,
    presented: Arc<Presented>,
    req: hyper::Request<Incoming>,
) -> Response {
    let path = req.uri().path().to_owned();
    let query = req.uri().query().unwrap_or("").to_owned();
    if path == layout::CSS_PATH && req.method() == Method::GET {
        return with_headers(
            StatusCode::OK,
            "text/css; charset=utf-8",
            Bytes::from_static(layout::CSS.as_bytes()),
        );
    }
    let switch = lang_switch(&query);
    let lang = Lang::pick(
        switch.as_deref(),
        cookie(&req, LANG_COOKIE).as_deref(),
        header_str(&req, header::ACCEPT_LANGUAGE),
    );
    let who = {
        let ctx = shared.ctx.clone();
        let presented = presented.clone();
        tokio::task::spawn_blocking(move || auth::identify(&ctx, &presented)).await
    };
    let operator = match who {
        Ok(Ok(o)) => o,
        Ok(Err(why)) => return not_signed_in(lang, &why),
        Err(_) => return not_signed_in(lang, &NotSignedIn::NotCurrent),
    };
    let now = shared.ctx.clock.now().unix_timestamp();
    let r = Req {
        shared: &shared,
        page: Page {
            operator: &operator,
            lang,
            path: &path,
            csrf: shared.csrf.token(&operator, now),
        },
        query: &query,
    };
    let mut response = if req.method() == Method::POST {
        post(&r, req).await
    } else if req.method() == Method::GET || req.method() == Method::HEAD {
        get(&r).await
    } else {
        html(
            StatusCode::METHOD_NOT_ALLOWED,
            layout::failed(
                &r.page,
                r.page.t(Msg::NotFound),
                r.page.t(Msg::NotFound),
                "/",
            ),
        )
    };
    if let Some(l) = switch.as_deref().and_then(Lang::from_code)
        && let Ok(v) = HeaderValue::from_str(&format!(
            "{LANG_COOKIE}={}; Path=/; Secure; HttpOnly; SameSite=Strict; Max-Age=31536000",
            l.code()
        ))
    {
        response.headers_mut().insert(header::SET_COOKIE, v);
    }
    response
}

async fn get(r: &Req<'_>) -> Response {
    let path = r.page.path;
    match path {
        "/" => journal::overview(r).await,
        "/devices" => devices::list(r).await,
        "/employees" => devices::employees(r).await,
        "/sessions" => sessions::list(r).await,
        "/incidents" => sessions::incidents(r).await,
        "/overrides" => sessions::overrides(r).await,
        "/policy" => policy::page(r, None).await,
        "/journal" => journal::search(r).await,
        "/journal/verify" => journal::verify(r).await,
        "/journal/export.csv" => journal::export(r).await,
        "/reports" => reports::page(r).await,
        _ => match path.strip_prefix("/devices/") {
            Some(id) => devices::show(r, id).await,
            None => not_found(r),
        },
    }
}

async fn post(r: &Req<'_>, req: hyper::Request<Incoming>) -> Response {
    let path = r.page.path;
    // Comparing a policy changes nothing: auditors may.
    let read_only = path == "/policy/diff";
    if let Err(refused) = same_origin(&req) {
        return refuse(r, "cross-site-request", r.page.t(Msg::CsrfRefused), refused).await;
    }
    if !read_only && !r.page.may_act() {
        return refuse(
            r,
            "role-may-not-act",
            r.page.t(Msg::AuditorsMayNotAct),
            "auditor",
        )
        .await;
    }
    let limit = if read_only {
        ztgw_api::console::MAX_POLICY_BYTES
    } else {
        ztgw_api::console::MAX_FORM_BYTES
    };
    let req_content_type = header_str(&req, header::CONTENT_TYPE).map(str::to_owned);
    let body = match read_body(r, req, limit).await {
        Ok(b) => b,
        Err(response) => return response,
    };
    let content_type = req_content_type.as_deref();
    let fields = match ztgw_api::form::fields(content_type, &body) {
        Ok(fields) => fields,
        Err(e) => {
            return html(
                StatusCode::BAD_REQUEST,
                layout::failed(&r.page, r.page.t(Msg::BadForm), &e, "/"),
            );
        }
    };
    let token = fields.iter().find(|(k, _)| k == "csrf").map(|(_, v)| v);
    let now = r.ctx().clock.now().unix_timestamp();
    if !token.is_some_and(|t| r.shared.csrf.check(r.page.operator, now, t)) {
        return refuse(r, "csrf-token-invalid", r.page.t(Msg::CsrfRefused), "token").await;
    }
    dispatch(r, path, &fields)
        .await
        .unwrap_or_else(|response| response)
}

/// The action at `path`, with its form parsed from `body`'s fields.
async fn dispatch(
    r: &Req<'_>,
    path: &str,
    body: &[(String, String)],
) -> Result<Response, Response> {
    Ok(match path {
        "/devices/invite" => devices::invite(r, form(r, body)?).await,
        "/devices/approve" => devices::approve(r, form(r, body)?).await,
        "/devices/revoke" => devices::revoke(r, form(r, body)?).await,
        "/devices/unlock" => devices::unlock(r, form(r, body)?).await,
        "/employees/revoke" => devices::revoke_employee(r, form(r, body)?).await,
        "/employees/reinstate" => devices::reinstate_employee(r, form(r, body)?).await,
        "/sessions/end" => sessions::end(r, form(r, body)?).await,
        "/incidents" => sessions::report_incident(r, form(r, body)?).await,
        "/overrides" => sessions::add_override(r, form(r, body)?).await,
        "/policy/diff" => policy::page(r, Some(form(r, body)?)).await,
        _ => not_found(r),
    })
}

/// Parses a form's fields into `T`; the error names the field at fault.
fn form<T: DeserializeOwned>(r: &Req<'_>, fields: &[(String, String)]) -> Result<T, Response> {
    let encoded = serde_urlencoded::to_string(fields).unwrap_or_default();
    serde_urlencoded::from_str(&encoded).map_err(|e| {
        html(
            StatusCode::BAD_REQUEST,
            layout::failed(
                &r.page,
                r.page.t(Msg::BadForm),
                &format!("{}: {e}", r.page.t(Msg::BadForm)),
                "/",
            ),
        )
    })
}

/// Reads at most `limit` bytes of body within the request timeout.
async fn read_body(
    r: &Req<'_>,
    req: hyper::Request<Incoming>,
    limit: usize,
) -> Result<Bytes, Response> {
    let too_large = || {
        html(
            StatusCode::PAYLOAD_TOO_LARGE,
            layout::failed(
                &r.page,
                r.page.t(Msg::BadForm),
                r.page.t(Msg::TooLarge),
                "/",
            ),
        )
    };
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(too_large());
    }
    let timeout = r.ctx().settings.control.request_timeout.get();
    match tokio::time::timeout(timeout, Limited::new(req.into_body(), limit).collect()).await {
        Ok(Ok(body)) => Ok(body.to_bytes()),
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => Err(too_large()),
        Ok(Err(_)) | Err(_) => Err(html(
            StatusCode::BAD_REQUEST,
            layout::failed(&r.page, r.page.t(Msg::BadForm), r.page.t(Msg::BadForm), "/"),
        )),
    }
}

/// Whether a POST comes from the console's own pages: the browser says so in
/// `Sec-Fetch-Site`, and an `Origin` it sends is this host's.
fn same_origin(req: &hyper::Request<Incoming>) -> Result<(), &'static str> {
    if let Some(site) = header_str(req, "sec-fetch-site")
        && site != "same-origin"
        && site != "none"
    {
        return Err("sec-fetch-site");
    }
    let host = req
        .uri()
        .authority()
        .map(|a| a.as_str().to_owned())
        .or_else(|| header_str(req, header::HOST).map(str::to_owned));
    match (header_str(req, header::ORIGIN), host) {
        (None, _) => Ok(()),
        (Some(origin), Some(host)) if origin == format!("https://{host}") => Ok(()),
        _ => Err("origin"),
    }
}

/// Journals a refused change and answers 403.
async fn refuse(r: &Req<'_>, reason: &str, text: &str, detail: &str) -> Response {
    let event = Event::ConsoleRefused {
        name: r.page.operator.name.as_str().to_owned(),
        action: r.page.path.chars().take(100).collect(),
        reason: reason.to_owned(),
    };
    let ctx = r.shared.ctx.clone();
    let journaled = tokio::task::spawn_blocking(move || ctx.journal(&event)).await;
    if !matches!(journaled, Ok(Ok(_))) {
        tracing::error!(reason, "a refused console action could not be journaled");
    }
    tracing::info!(reason, detail, "console refused an action");
    html(
        StatusCode::FORBIDDEN,
        layout::failed(&r.page, r.page.t(Msg::Forbidden), text, "/"),
    )
}

fn not_signed_in(lang: Lang, why: &NotSignedIn) -> Response {
    let (status, text) = match why {
        NotSignedIn::NoCertificate => (StatusCode::UNAUTHORIZED, Msg::NoCertificate),
        NotSignedIn::NotAnOperator => (StatusCode::FORBIDDEN, Msg::NotOperatorCertificate),
        NotSignedIn::NotCurrent => (StatusCode::FORBIDDEN, Msg::CertificateNotCurrent),
        NotSignedIn::Registry(e) => {
            tracing::warn!(error = %e, "console: the registry cannot be read");
            (StatusCode::SERVICE_UNAVAILABLE, Msg::Unavailable)
        }
    };
    html(
        status,
        layout::refusal(lang, lang.t(Msg::Forbidden), lang.t(text)),
    )
}

pub fn not_found(r: &Req<'_>) -> Response {
    html(
        StatusCode::NOT_FOUND,
        layout::failed(
            &r.page,
            r.page.t(Msg::NotFound),
            r.page.t(Msg::NotFound),
            "/",
        ),
    )
}

/// An HTML answer with the console's headers.
pub fn html(status: StatusCode, markup: Markup) -> Response {
    with_headers(
        status,
        "text/html; charset=utf-8",
        Bytes::from(markup.into_string()),
    )
}

/// An answer with the console's headers: strict CSP, no caching (pages hold personal
/// data), no sniffing, no framing, no referrer to other origins, HTTPS only.
pub fn with_headers(status: StatusCode, content_type: &'static str, body: Bytes) -> Response {
    let mut r = hyper::Response::new(Full::new(body));
    *r.status_mut() = status;
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    // Not `no-referrer`: with it browsers send `Origin: null` on the console's own forms,
    // and the origin check needs the real one. Nothing is sent to another origin.
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    h.insert(
        header::STRICT_TRANSPORT_SECURITY,
        HeaderValue::from_static("max-age=31536000"),
    );
    h.insert(
        "cross-origin-opener-policy",
        HeaderValue::from_static("same-origin"),
    );
    r
}

fn header_str(req: &hyper::Request<Incoming>, name: impl header::AsHeaderName) -> Option<&str> {
    req.headers().get(name).and_then(|v| v.to_str().ok())
}

fn cookie(req: &hyper::Request<Incoming>, name: &str) -> Option<String> {
    req.headers()
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|c| {
            let (k, v) = c.trim().split_once('=')?;
            (k == name).then(|| v.to_owned())
        })
}

/// `lang=` from a query string, if any.
fn lang_switch(query: &str) -> Option<String> {
    serde_urlencoded::from_str::<Vec<(String, String)>>(query)
        .ok()?
        .into_iter()
        .find(|(k, _)| k == "lang")
        .map(|(_, v)| v)
}

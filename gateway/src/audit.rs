//! The auditors' read-only endpoints on the control plane (G10): events, verification
//! and the latest checkpoint of the live journal. Nothing else is reachable with an
//! auditor's certificate, and these are reachable with nothing else.

use http::{Response, StatusCode};
use time::OffsetDateTime;
use ztgw_api::control::path;
use ztgw_pki::AuditorName;

use crate::api_error::{ApiError, Reason};
use crate::context::Context;
use crate::control::routes::typed_response;
use crate::journal::query::{self, Filter};
use crate::journal::verify::verify_dir_until;

/// Most events one request returns; `limit` asks for fewer.
pub const MAX_EVENTS: usize = 100_000;

/// Answers an auditor's request for `route` with query string `query`.
pub fn answer(
    ctx: &Context,
    auditor: &AuditorName,
    route: &str,
    query: &str,
) -> Result<Response<crate::control::routes::Body>, ApiError> {
    let dir = &ctx.settings.journal.dir;
    let limit = ctx.journal.durable_end();
    tracing::debug!(%auditor, route, "auditor request");
    match route {
        path::AUDIT_EVENTS => {
            let (filter, max) = parse_filter(query)?;
            let (records, truncated) =
                query::read_at_most(dir, &filter, limit, max).map_err(damaged)?;
            let mut r = typed_response(
                StatusCode::OK,
                "application/x-ndjson",
                query::to_jsonl(&records).into_bytes(),
            );
            if truncated {
                r.headers_mut()
                    .insert("x-ztgw-truncated", http::HeaderValue::from_static("true"));
            }
            Ok(r)
        }
        path::AUDIT_VERIFY => {
            let report = verify_dir_until(dir, Some(&ctx.journal.public_key()), None, limit);
            let body = match report {
                Ok(r) => serde_json::json!({
                    "intact": true,
                    "records": r.records,
                    "events": r.events,
                    "checkpoints": r.checkpoints,
                    "segments": r.segments,
                    "first_seq": r.first_seq,
                    "last_checkpoint": r.last_checkpoint,
                }),
                Err(d) => serde_json::json!({ "intact": false, "damage": d.to_string() }),
            };
            Ok(typed_response(
                StatusCode::OK,
                "application/json",
                body.to_string().into_bytes(),
            ))
        }
        path::AUDIT_CHECKPOINT => {
            let report = verify_dir_until(dir, None, None, limit).map_err(damaged)?;
            let sth = report.last_checkpoint.ok_or_else(|| {
                ApiError::new(Reason::NotFound, "the journal has no checkpoint yet")
            })?;
            let body = serde_json::to_vec(&sth)
                .map_err(|e| ApiError::new(Reason::Internal, e.to_string()))?;
            Ok(typed_response(StatusCode::OK, "application/json", body))
        }
        _ => Err(ApiError::new(Reason::NotFound, "no such endpoint")),
    }
}

fn damaged(d: crate::journal::verify::Damage) -> ApiError {
    tracing::error!(damage = %d, "the journal is damaged");
    ApiError::new(Reason::Internal, format!("the journal is damaged: {d}"))
}

/// `employee=…&device=…&type=…&since=…&until=…&limit=…`
fn parse_filter(query: &str) -> Result<(Filter, usize), ApiError> {
    let mut f = Filter::default();
    let mut max = 10_000;
    let bad = |m: String| ApiError::new(Reason::RequestMalformed, m);
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let v = percent_decode(v).ok_or_else(|| bad(format!("{k}: bad percent-encoding")))?;
        match k {
            "employee" => f.employee = Some(v),
            "device" => f.device = Some(v),
            "type" => f.kinds.push(v),
            "since" => {
                f.since =
                    Some(instant(&v).ok_or_else(|| bad(format!("since: {v:?} is not RFC 3339")))?)
            }
            "until" => {
                f.until =
                    Some(instant(&v).ok_or_else(|| bad(format!("until: {v:?} is not RFC 3339")))?)
            }
            "limit" => {
                max = v
                    .parse::<usize>()
                    .ok()
                    .filter(|n| (1..=MAX_EVENTS).contains(n))
                    .ok_or_else(|| bad(format!("limit must be 1 to {MAX_EVENTS}")))?
            }
            other => return Err(bad(format!("unknown parameter {other:?}"))),
        }
    }
    Ok((f, max))
}

fn instant(s: &str) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).ok()
}

fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_parse_and_refuse_unknown_parameters() {
        let (f, max) =
            parse_filter("employee=e1&type=device.%2A&since=2027-01-01T00%3A00%3A00Z&limit=5")
                .expect("parse");
        assert_eq!(f.employee.as_deref(), Some("e1"));
        assert_eq!(f.kinds, vec!["device.*"]);
        assert!(f.since.is_some());
        assert_eq!(max, 5);
        assert!(parse_filter("bogus=1").is_err());
        assert!(parse_filter("limit=0").is_err());
        assert!(parse_filter("since=yesterday").is_err());
        assert!(parse_filter("employee=%zz").is_err());
    }
}

//! Prometheus metrics and the health check, served on `[metrics] listen` (plain HTTP on a
//! local or management address). `render` is a pure function of the values it is given.

use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use bytes::Bytes;
use http::{Response, StatusCode, header};
use http_body_util::Full;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use ztgw_api::control::DeviceStatus;

use crate::context::Context;
use crate::control::Counters;
use crate::control::Observed;
use crate::revocation;
use crate::sessions::SessionService;

/// The values a scrape reports.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Snapshot {
    pub devices: Vec<(&'static str, u64)>,
    /// Why the registry could not be read, when it could not (a database that is down).
    pub registry_error: Option<String>,
    pub connections: u64,
    pub refused_rate_limited: u64,
    pub refused_too_many_connections: u64,
    pub refused_source_connections: u64,
    pub closed_idle: u64,
    pub closed_lifetime: u64,
    pub open_connections: u64,
    pub body_bytes_buffered: u64,
    pub handshakes_failed: u64,
    pub handshakes_timed_out: u64,
    pub rate_limited_sources: u64,
    pub journal_healthy: bool,
    pub journal_appended: u64,
    /// Free bytes on the journal's filesystem, and whether that is below the warning.
    pub journal_free_bytes: Option<u64>,
    pub journal_free_space_low: bool,
    /// Refused enrolments counted, not yet journaled.
    pub refusals_pending: u64,
    /// Seconds until the CRL expires; negative or absent when it is unusable.
    pub crl_seconds_left: Option<i64>,
    pub policy_rules: u64,
    pub policy_sha256: String,
    /// Directory syncs failed in a row, when there is a directory.
    pub directory_failed_syncs: Option<u64>,
    pub sessions: u64,
    pub admissions_granted: u64,
    pub admissions_refused: u64,
    /// The data plane's counters (absent when it does not run).
    pub dataplane: Option<ztgw_dataplane::counters::Snapshot>,
    pub peers: u64,
    /// Peers and sessions reconciliation removed (never expected).
    pub orphans_removed: u64,
    /// Each `[export]` target, by name.
    pub exports: Vec<ExportSnapshot>,
}

/// One export target's figures.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ExportSnapshot {
    pub name: String,
    /// Journal records not yet delivered.
    pub lag: u64,
    pub connected: bool,
    pub sent: u64,
    pub failures: u64,
    pub skipped: u64,
}

/// Gathers the current values.
pub fn snapshot(
    ctx: &Context,
    counters: &Counters,
    observed: &Observed,
    sessions: &SessionService,
) -> Snapshot {
    let (devices, registry_error) = match ctx.registry.devices() {
        Ok(d) => (d, None),
        Err(e) => (Vec::new(), Some(e.to_string())),
    };
    let count = |s: DeviceStatus| devices.iter().filter(|d| d.status == s).count() as u64;
    let now = ctx.clock.now();
    let policy = ctx.policy.current();
    Snapshot {
        devices: [
            DeviceStatus::Pending,
            DeviceStatus::Active,
            DeviceStatus::Revoked,
            DeviceStatus::Decommissioned,
        ]
        .iter()
        .map(|s| (s.as_str(), count(*s)))
        .collect(),
        registry_error,
        connections: counters.connections.load(Ordering::Relaxed),
        refused_rate_limited: counters.refused_rate_limited.load(Ordering::Relaxed),
        refused_too_many_connections: counters
            .refused_too_many_connections
            .load(Ordering::Relaxed),
        handshakes_failed: counters.handshakes_failed.load(Ordering::Relaxed),
        handshakes_timed_out: counters.handshakes_timed_out.load(Ordering::Relaxed),
        rate_limited_sources: observed.limits.tracked_sources() as u64,
        refused_source_connections: counters.refused_source_connections.load(Ordering::Relaxed),
        closed_idle: counters.closed_idle.load(Ordering::Relaxed),
        closed_lifetime: counters.closed_lifetime.load(Ordering::Relaxed),
        open_connections: observed.connections.open(observed.max_connections) as u64,
        body_bytes_buffered: observed.bodies.in_use() as u64,
        journal_healthy: ctx.journal.healthy(),
        journal_appended: ctx.journal.appended(),
        journal_free_bytes: crate::journal::free_bytes(&ctx.settings.journal.dir),
        journal_free_space_low: crate::journal::free_bytes(&ctx.settings.journal.dir)
            .is_some_and(|f| f < ctx.settings.journal.free_space_warning),
        refusals_pending: observed.refusals.pending(),
        crl_seconds_left: revocation::inspect(&ctx.settings.state().crl(), &ctx.ca, now)
            .ok()
            .map(|(_, next)| (next - now).whole_seconds()),
        policy_rules: policy.compiled.rule_count() as u64,
        policy_sha256: policy.sha256.clone(),
        directory_failed_syncs: ctx.settings.directory.as_ref().map(|_| {
            ctx.directory_health
                .failures
                .load(std::sync::atomic::Ordering::Relaxed)
        }),
        sessions: sessions.count() as u64,
        admissions_granted: sessions.granted(),
        admissions_refused: sessions.refused(),
        dataplane: sessions.dataplane_counters(),
        peers: sessions.peer_count() as u64,
        orphans_removed: sessions.orphans_removed(),
        exports: ctx
            .export
            .0
            .iter()
            .map(|t| ExportSnapshot {
                name: t.name.clone(),
                lag: crate::export::lag(t, ctx.journal.next_seq()),
                connected: t.connected.load(Ordering::Relaxed),
                sent: t.sent.load(Ordering::Relaxed),
                failures: t.failures.load(Ordering::Relaxed),
                skipped: t.skipped.load(Ordering::Relaxed),
            })
            .collect(),
    }
}

/// The Prometheus text exposition of `s`.
pub fn render(s: &Snapshot) -> String {
    let mut o = String::new();
    let mut metric = |name: &str, kind: &str, help: &str, samples: &[(&str, f64)]| {
        let _ = writeln!(o, "# HELP ztgw_{name} {help}");
        let _ = writeln!(o, "# TYPE ztgw_{name} {kind}");
        for (labels, v) in samples {
            let _ = writeln!(o, "ztgw_{name}{labels} {v}");
        }
    };
    let devices: Vec<(String, f64)> = s
        .devices
        .iter()
        .map(|(st, n)| (format!("{{status=\"{st}\"}}"), *n as f64))
        .collect();
    let devices: Vec<(&str, f64)> = devices.iter().map(|(l, v)| (l.as_str(), *v)).collect();
    metric("devices", "gauge", "Enrolled devices by status.", &devices);
    metric(
        "registry_up",
        "gauge",
        "1 while the registry can be read (0: no admission, enrolment or renewal is granted).",
        &[("", f64::from(u8::from(s.registry_error.is_none())))],
    );
    metric(
        "control_connections_total",
        "counter",
        "TCP connections accepted by the control plane.",
        &[("", s.connections as f64)],
    );
    metric(
        "control_refused_total",
        "counter",
        "Control-plane connections refused before TLS, by reason.",
        &[
            ("{reason=\"rate-limited\"}", s.refused_rate_limited as f64),
            (
                "{reason=\"too-many-connections\"}",
                s.refused_too_many_connections as f64,
            ),
            (
                "{reason=\"source-connections\"}",
                s.refused_source_connections as f64,
            ),
        ],
    );
    metric(
        "control_connections_open",
        "gauge",
        "Control-plane connections open now.",
        &[("", s.open_connections as f64)],
    );
    metric(
        "control_closed_total",
        "counter",
        "Control-plane connections the gateway closed, by reason.",
        &[
            ("{reason=\"idle\"}", s.closed_idle as f64),
            ("{reason=\"lifetime\"}", s.closed_lifetime as f64),
        ],
    );
    metric(
        "control_body_bytes_buffered",
        "gauge",
        "Request body bytes held in memory now (bounded by max_buffered_body_bytes).",
        &[("", s.body_bytes_buffered as f64)],
    );
    metric(
        "control_handshakes_failed_total",
        "counter",
        "TLS handshakes that failed or timed out.",
        &[
            ("{reason=\"failed\"}", s.handshakes_failed as f64),
            ("{reason=\"timed-out\"}", s.handshakes_timed_out as f64),
        ],
    );
    metric(
        "rate_limited_sources",
        "gauge",
        "Source addresses the rate limiters remember.",
        &[("", s.rate_limited_sources as f64)],
    );
    metric(
        "journal_healthy",
        "gauge",
        "1 while the audit journal accepts appends.",
        &[("", f64::from(u8::from(s.journal_healthy)))],
    );
    metric(
        "journal_events_total",
        "counter",
        "Events appended to the journal since start.",
        &[("", s.journal_appended as f64)],
    );
    metric(
        "journal_free_bytes",
        "gauge",
        "Free space on the journal's filesystem (-1: unknown).",
        &[("", s.journal_free_bytes.map_or(-1.0, |v| v as f64))],
    );
    metric(
        "journal_free_space_low",
        "gauge",
        "1 while the journal's filesystem has less free space than [journal] free_space_warning.",
        &[("", f64::from(u8::from(s.journal_free_space_low)))],
    );
    metric(
        "enrolment_refusals_pending",
        "gauge",
        "Refused enrolments counted and not yet journaled (journaled each minute, per source).",
        &[("", s.refusals_pending as f64)],
    );
    metric(
        "crl_seconds_until_expiry",
        "gauge",
        "Seconds until the revocation list in force expires (-1: none usable).",
        &[("", s.crl_seconds_left.map_or(-1.0, |v| v as f64))],
    );
    metric(
        "sessions",
        "gauge",
        "Live sessions.",
        &[("", s.sessions as f64)],
    );
    metric(
        "admissions_total",
        "counter",
        "Admission requests decided, by outcome.",
        &[
            ("{outcome=\"granted\"}", s.admissions_granted as f64),
            ("{outcome=\"refused\"}", s.admissions_refused as f64),
        ],
    );
    if !s.exports.is_empty() {
        let per_target = |value: &dyn Fn(&ExportSnapshot) -> f64| -> Vec<(String, f64)> {
            s.exports
                .iter()
                .map(|e| (format!("{{target=\"{}\"}}", e.name), value(e)))
                .collect()
        };
        for (name, kind, help, samples) in [
            (
                "export_lag_records",
                "gauge",
                "Journal records an export target has not yet received.",
                per_target(&|e| e.lag as f64),
            ),
            (
                "export_connected",
                "gauge",
                "1 while an export target's receiver is connected.",
                per_target(&|e| f64::from(u8::from(e.connected))),
            ),
            (
                "export_records_sent_total",
                "counter",
                "Journal records sent to an export target (resent ones included).",
                per_target(&|e| e.sent as f64),
            ),
            (
                "export_failures_total",
                "counter",
                "Connections to an export target that failed or were cut.",
                per_target(&|e| e.failures as f64),
            ),
            (
                "export_records_skipped_total",
                "counter",
                "Journal records purged by retention before an export target received them. Alert on any.",
                per_target(&|e| e.skipped as f64),
            ),
        ] {
            let samples: Vec<(&str, f64)> = samples.iter().map(|(l, v)| (l.as_str(), *v)).collect();
            metric(name, kind, help, &samples);
        }
    }
    metric(
        "sessions_orphans_removed_total",
        "counter",
        "Peers without a live session, or sessions out of service, that reconciliation removed. Never expected: alert on any.",
        &[("", s.orphans_removed as f64)],
    );
    if let Some(d) = &s.dataplane {
        metric(
            "wireguard_peers",
            "gauge",
            "Peers installed in the data plane.",
            &[("", s.peers as f64)],
        );
        metric(
            "wireguard_handshakes_total",
            "counter",
            "Handshake initiations past the cookie check, and responses sent.",
            &[
                ("{stage=\"initiation\"}", d.handshake_initiations as f64),
                ("{stage=\"response\"}", d.handshakes_completed as f64),
            ],
        );
        metric(
            "wireguard_cookie_replies_total",
            "counter",
            "Cookie replies sent under handshake load.",
            &[("", d.cookie_replies as f64)],
        );
        metric(
            "wireguard_forwarded_bytes_total",
            "counter",
            "Inner bytes forwarded, by direction.",
            &[
                ("{direction=\"to-internal\"}", d.forwarded_in_bytes as f64),
                ("{direction=\"to-laptop\"}", d.forwarded_out_bytes as f64),
            ],
        );
        let drops: Vec<(String, f64)> = d
            .drops
            .iter()
            .map(|(r, n)| (format!("{{reason=\"{r}\"}}"), *n as f64))
            .collect();
        let drops: Vec<(&str, f64)> = drops.iter().map(|(l, v)| (l.as_str(), *v)).collect();
        metric(
            "wireguard_drops_total",
            "counter",
            "Datagrams and packets the data plane dropped, by reason.",
            &drops,
        );
    }
    if let Some(n) = s.directory_failed_syncs {
        metric(
            "directory_failed_syncs",
            "gauge",
            "Directory syncs that failed in a row (0 once one succeeds).",
            &[("", n as f64)],
        );
    }
    let info = format!("{{sha256=\"{}\"}}", s.policy_sha256);
    metric(
        "policy_rules",
        "gauge",
        "Rules (role x resource) of the policy in force.",
        &[(info.as_str(), s.policy_rules as f64)],
    );
    o
}

/// Failed directory syncs in a row after which `/health` says so: the gateway still
/// works on its last view of the directory, which is growing old.
pub const DIRECTORY_FAILURES_UNHEALTHY: u64 = 3;

/// Whether the gateway can do its job: the registry can be read, the journal accepts
/// appends, a CRL is in force, and the directory (when there is one) answers.
pub fn health(s: &Snapshot) -> Result<(), String> {
    if let Some(e) = &s.registry_error {
        return Err(format!("the registry cannot be read ({e})"));
    }
    if !s.journal_healthy {
        return Err("the audit journal cannot be written".into());
    }
    if s.crl_seconds_left.is_none_or(|v| v <= 0) {
        return Err("no usable revocation list".into());
    }
    if let Some(n) = s.directory_failed_syncs
        && n >= DIRECTORY_FAILURES_UNHEALTHY
    {
        return Err(format!(
            "the directory has not answered {n} syncs in a row (departures are not seen)"
        ));
    }
    Ok(())
}

/// Serves `/metrics` and `/health` until the task is dropped.
pub async fn serve(
    listener: TcpListener,
    ctx: Arc<Context>,
    counters: Arc<Counters>,
    observed: Arc<Observed>,
    sessions: Arc<SessionService>,
) {
    loop {
        let Ok((tcp, _)) = listener.accept().await else {
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            continue;
        };
        let (ctx, counters, observed, sessions) = (
            ctx.clone(),
            counters.clone(),
            observed.clone(),
            sessions.clone(),
        );
        tokio::spawn(async move {
            let service =
                hyper::service::service_fn(move |req: http::Request<hyper::body::Incoming>| {
                    let (ctx, counters, observed, sessions) = (
                        ctx.clone(),
                        counters.clone(),
                        observed.clone(),
                        sessions.clone(),
                    );
                    async move {
                        let path = req.uri().path().to_owned();
                        let snap = tokio::task::spawn_blocking(move || {
                            snapshot(&ctx, &counters, &observed, &sessions)
                        })
                        .await
                        .unwrap_or_default();
                        let (status, ctype, body) = match path.as_str() {
                            "/metrics" => {
                                (StatusCode::OK, "text/plain; version=0.0.4", render(&snap))
                            }
                            "/health" => match health(&snap) {
                                Ok(()) => (StatusCode::OK, "text/plain", "ok\n".to_owned()),
                                Err(why) => (
                                    StatusCode::SERVICE_UNAVAILABLE,
                                    "text/plain",
                                    format!("unhealthy: {why}\n"),
                                ),
                            },
                            _ => (
                                StatusCode::NOT_FOUND,
                                "text/plain",
                                "not found\n".to_owned(),
                            ),
                        };
                        let mut r = Response::new(Full::new(Bytes::from(body)));
                        *r.status_mut() = status;
                        r.headers_mut().insert(
                            header::CONTENT_TYPE,
                            header::HeaderValue::from_static(ctype),
                        );
                        Ok::<_, std::convert::Infallible>(r)
                    }
                });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(tcp), service)
                .await;
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_the_exposition_format_and_judges_health() {
        let s = Snapshot {
            devices: vec![("active", 3), ("revoked", 1)],
            journal_healthy: true,
            crl_seconds_left: Some(3600),
            policy_sha256: "ab".into(),
            directory_failed_syncs: None,
            policy_rules: 7,
            ..Snapshot::default()
        };
        let text = render(&s);
        assert!(
            text.contains("ztgw_devices{status=\"active\"} 3\n"),
            "{text}"
        );
        assert!(
            text.contains("# TYPE ztgw_journal_healthy gauge\nztgw_journal_healthy 1\n"),
            "{text}"
        );
        assert!(
            text.contains("ztgw_policy_rules{sha256=\"ab\"} 7\n"),
            "{text}"
        );
        assert_eq!(health(&s), Ok(()));
        assert!(text.contains("ztgw_registry_up 1\n"), "{text}");
        let down = Snapshot {
            registry_error: Some("connection refused".into()),
            ..s.clone()
        };
        assert!(render(&down).contains("ztgw_registry_up 0\n"));
        assert_eq!(
            health(&down),
            Err("the registry cannot be read (connection refused)".into())
        );
        assert!(
            health(&Snapshot {
                journal_healthy: false,
                ..s.clone()
            })
            .is_err()
        );
        assert!(
            health(&Snapshot {
                crl_seconds_left: None,
                ..s
            })
            .is_err()
        );
    }
}

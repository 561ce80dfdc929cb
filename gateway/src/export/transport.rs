//! The two ways records leave the gateway: RFC 5424 over TLS (RFC 5425) and JSON lines
//! over HTTPS. Each runs one connection until it fails; the caller waits and calls again.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use bytes::Bytes;
use http::{Request, header};
use http_body_util::{BodyExt as _, Full, Limited};
use hyper_util::rt::TokioIo;
use rustls_pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWriteExt as _, ReadHalf};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use ztgw_config::ExportTarget;

use super::{Delivery, Interrupted, POLL, SETTLE, message};
use crate::context::Context;

/// The most of a receiver's answer read (and dropped) so the connection can be reused.
const MAX_ANSWER: usize = 64 * 1024;
/// The largest token file.
const MAX_TOKEN: u64 = 8 * 1024;

/// Delivers over one syslog-over-TLS connection until it fails.
pub(super) async fn syslog(
    ctx: &Context,
    target: &ExportTarget,
    d: &mut Delivery,
) -> Result<(), Interrupted> {
    let stream = connect(target, None).await.map_err(|what| Interrupted {
        what,
        delivered_some: false,
    })?;
    d.status.connected.store(true, Ordering::Relaxed);
    d.rewind();
    let hostname = gateway_name(ctx);
    let (mut rd, mut wr) = tokio::io::split(stream);
    // Written records not yet counted as delivered: when, and the record after them.
    let mut unsettled: VecDeque<(Instant, u64)> = VecDeque::new();
    let mut delivered_some = false;
    loop {
        if unsettled
            .front()
            .is_some_and(|(at, _)| at.elapsed() >= SETTLE)
        {
            // Only if the receiver has not closed the connection meanwhile.
            if let Some(why) = closed_now(&mut rd).await {
                return Err(Interrupted::new(why, delivered_some));
            }
            while let Some(&(at, next)) = unsettled.front() {
                if at.elapsed() < SETTLE {
                    break;
                }
                unsettled.pop_front();
                d.delivered(next);
                delivered_some = true;
            }
        }
        let fail = |what: String| Interrupted::new(what, delivered_some);
        if d.behind(ctx) {
            let batch = d.next_batch(ctx, target.batch).await.map_err(fail)?;
            if !batch.records.is_empty() {
                let mut bytes = Vec::new();
                for r in &batch.records {
                    bytes.extend_from_slice(&message::syslog_frame(r, &hostname));
                }
                let written = tokio::time::timeout(target.timeout.get(), async {
                    wr.write_all(&bytes).await?;
                    wr.flush().await
                })
                .await;
                match written {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => return Err(fail(format!("writing to the receiver: {e}"))),
                    Err(_) => {
                        return Err(fail("the receiver did not take the records in time".into()));
                    }
                }
                d.status
                    .sent
                    .fetch_add(batch.records.len() as u64, Ordering::Relaxed);
                unsettled.push_back((Instant::now(), d.follower.next_seq()));
                continue;
            }
        }
        // Nothing to send: wait for more (or for the oldest records to settle), watching
        // the connection.
        let wait = unsettled.front().map_or(POLL, |(at, _)| {
            SETTLE.saturating_sub(at.elapsed()).min(POLL)
        });
        let mut scratch = [0u8; 512];
        tokio::select! {
            r = rd.read(&mut scratch) => match r {
                Ok(0) => return Err(fail("the receiver closed the connection".into())),
                // A syslog receiver sends nothing; whatever it sends is dropped.
                Ok(_) => {}
                Err(e) => return Err(fail(format!("the connection failed: {e}"))),
            },
            () = tokio::time::sleep(wait) => {}
        }
    }
}

/// Delivers over one HTTPS connection (kept alive) until it fails.
pub(super) async fn https(
    ctx: &Context,
    target: &ExportTarget,
    d: &mut Delivery,
) -> Result<(), Interrupted> {
    let early = |what: String| Interrupted {
        what,
        delivered_some: false,
    };
    let url = target.url.as_deref().unwrap_or_default();
    let rest = url.strip_prefix("https://").unwrap_or(url);
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let token = match &target.token_file {
        Some(p) => Some(
            ztgw_pki::read_private_file(p, MAX_TOKEN)
                .map_err(|e| early(format!("{}: {e}", p.display())))?,
        ),
        None => None,
    };
    let stream = connect(target, Some(b"http/1.1")).await.map_err(early)?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| early(format!("HTTP: {e}")))?;
    let driver = AbortOnDrop(tokio::spawn(conn));
    d.status.connected.store(true, Ordering::Relaxed);
    d.rewind();
    let gateway = gateway_name(ctx);
    let mut delivered_some = false;
    loop {
        let fail = |what: String| Interrupted::new(what, delivered_some);
        if driver.0.is_finished() {
            return Err(fail("the receiver closed the connection".into()));
        }
        if !d.behind(ctx) {
            tokio::time::sleep(POLL).await;
            continue;
        }
        let batch = d.next_batch(ctx, target.batch).await.map_err(fail)?;
        let (Some(first), Some(last)) = (batch.records.first(), batch.records.last()) else {
            tokio::time::sleep(POLL).await;
            continue;
        };
        let mut body = Vec::new();
        for r in &batch.records {
            body.extend_from_slice(&message::json_line(r, &gateway));
        }
        let mut request = Request::post(path)
            .header(header::HOST, authority)
            .header(header::CONTENT_TYPE, "application/x-ndjson")
            .header("x-ztgw-first-seq", first.seq)
            .header("x-ztgw-last-seq", last.seq);
        if let Some(t) = &token {
            request = request.header(header::AUTHORIZATION, format!("Bearer {}", t.expose()));
        }
        let request = request
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| fail(e.to_string()))?;
        let answered = tokio::time::timeout(target.timeout.get(), async {
            let response = sender.send_request(request).await?;
            let status = response.status();
            // Read to the end so the connection can carry the next batch.
            let _ = Limited::new(response.into_body(), MAX_ANSWER)
                .collect()
                .await;
            Ok::<_, hyper::Error>(status)
        })
        .await;
        let status = match answered {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => return Err(fail(format!("HTTP: {e}"))),
            Err(_) => return Err(fail("the receiver did not answer in time".into())),
        };
        if !status.is_success() {
            return Err(fail(format!("the receiver answered {status}")));
        }
        d.status
            .sent
            .fetch_add(batch.records.len() as u64, Ordering::Relaxed);
        d.delivered(d.follower.next_seq());
        delivered_some = true;
    }
}

/// Connects to the receiver over TLS, trusting only the target's CA and checking the
/// receiver's name.
async fn connect(
    target: &ExportTarget,
    alpn: Option<&[u8]>,
) -> Result<TlsStream<TcpStream>, String> {
    let (host, port) = target
        .host_port()
        .ok_or_else(|| format!("{} is not a receiver's address", target.destination()))?;
    let ca = &target.ca_file;
    let pem = std::fs::read(ca).map_err(|e| format!("{}: {e}", ca.display()))?;
    let mut config = ztgw_pki::tls::client_config_trusting(&pem)
        .map_err(|e| format!("{}: {e}", ca.display()))?;
    if let Some(p) = alpn {
        config.alpn_protocols = vec![p.to_vec()];
    }
    let name = ServerName::try_from(host.clone())
        .map_err(|_| format!("{host:?} is not a valid server name"))?;
    let within = target.timeout.get();
    let tcp = tokio::time::timeout(within, TcpStream::connect((host.as_str(), port)))
        .await
        .map_err(|_| format!("no answer from {host}:{port} in time"))?
        .map_err(|e| format!("cannot reach {host}:{port}: {e}"))?;
    let _ = tcp.set_nodelay(true);
    tokio::time::timeout(
        within,
        tokio_rustls::TlsConnector::from(Arc::new(config)).connect(name, tcp),
    )
    .await
    .map_err(|_| format!("no TLS handshake with {host}:{port} in time"))?
    .map_err(|e| {
        let text = e.to_string();
        if text.contains("UnknownIssuer") || text.contains("invalid peer certificate") {
            format!(
                "the receiver's certificate is not signed by {} or does not name {host} ({text})",
                ca.display()
            )
        } else {
            format!("TLS with {host}:{port}: {text}")
        }
    })
}

/// Whether the receiver has closed the connection (checked without waiting).
async fn closed_now<S: AsyncRead>(rd: &mut ReadHalf<S>) -> Option<String> {
    let mut scratch = [0u8; 512];
    match tokio::time::timeout(std::time::Duration::ZERO, rd.read(&mut scratch)).await {
        Ok(Ok(0)) => Some("the receiver closed the connection".into()),
        Ok(Err(e)) => Some(format!("the connection failed: {e}")),
        Ok(Ok(_)) | Err(_) => None,
    }
}

/// The name the gateway goes by in what it sends.
fn gateway_name(ctx: &Context) -> String {
    ctx.settings
        .gateway
        .names
        .first()
        .cloned()
        .unwrap_or_else(|| "ztgw".into())
}

/// A task that ends with the connection it drives.
struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

//! HTTPS to the control plane: HTTP/1.1, bounded in size and time. A client keeps its
//! connection open between requests (keep-alive), so the requests of one operation
//! (profile, nonce and admission or re-check) cost one TLS handshake, not one each.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, header};
use http_body_util::{BodyExt as _, Full, Limited};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use rustls::ClientConfig;
use rustls_pki_types::ServerName;
use serde::Serialize;
use serde::de::DeserializeOwned;
use ztgw_api::control::ErrorBody;

use crate::error::AgentError;

/// Largest answer the agent reads.
pub const MAX_RESPONSE_LEN: usize = 1024 * 1024;
/// How long one request may take, connection included.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// How long a connection may have been idle and still be used for the next request:
/// well under the gateway's own idle timeout (`[control] idle_timeout`, 20 s by default),
/// so that the gateway does not close it just as a request goes out.
pub const KEEP_IDLE: Duration = Duration::from_secs(8);

/// A control plane at `address` (`host:port`), reached with `config`. Clones share the
/// connection kept open.
#[derive(Debug, Clone)]
pub struct ControlClient {
    address: String,
    config: Arc<ClientConfig>,
    idle: Arc<std::sync::Mutex<Option<Idle>>>,
}

/// A connection whose last answer was read whole, and since when it waits.
#[derive(Debug)]
struct Idle {
    sender: SendRequest<Full<Bytes>>,
    since: std::time::Instant,
}

impl ControlClient {
    pub fn new(address: impl Into<String>, config: ClientConfig) -> Self {
        Self {
            address: address.into(),
            config: Arc::new(config),
            idle: Arc::default(),
        }
    }

    pub fn address(&self) -> &str {
        &self.address
    }

    /// `POST path` with a JSON body; the JSON answer, or the gateway's refusal.
    pub async fn post<Q: Serialize, A: DeserializeOwned>(
        &self,
        path: &str,
        body: &Q,
    ) -> Result<A, AgentError> {
        let bytes = serde_json::to_vec(body).map_err(|e| AgentError::Local(e.to_string()))?;
        parse(&self.send(Method::POST, path, Bytes::from(bytes)).await?)
    }

    /// `POST path` whose answer the gateway streams with heartbeats (a session watch):
    /// the gateway is taken for stopped (`Unreachable`) when the connection is not set up
    /// within one and a half times `silence`, or when nothing of the answer arrives for
    /// `silence`.
    pub async fn post_heard<Q: Serialize, A: DeserializeOwned>(
        &self,
        path: &str,
        body: &Q,
        silence: Duration,
    ) -> Result<A, AgentError> {
        let bytes = serde_json::to_vec(body).map_err(|e| AgentError::Local(e.to_string()))?;
        let answer = tokio::time::timeout(
            REQUEST_TIMEOUT,
            self.exchange_heard(Method::POST, path, Bytes::from(bytes), Some(silence)),
        )
        .await
        .unwrap_or_else(|_| {
            Err(AgentError::Unreachable {
                address: self.address.clone(),
                problem: "no answer in time".into(),
            })
        })?;
        parse(&answer)
    }

    /// `GET path`; the JSON answer, or the gateway's refusal.
    pub async fn get<A: DeserializeOwned>(&self, path: &str) -> Result<A, AgentError> {
        parse(&self.get_bytes(path).await?)
    }

    /// `GET path`; the answer's body as it is (JSON lines, for instance).
    pub async fn get_bytes(&self, path: &str) -> Result<Bytes, AgentError> {
        self.send(Method::GET, path, Bytes::new()).await
    }

    async fn send(&self, method: Method, path: &str, body: Bytes) -> Result<Bytes, AgentError> {
        tokio::time::timeout(REQUEST_TIMEOUT, self.exchange(method, path, body))
            .await
            .unwrap_or_else(|_| {
                Err(AgentError::Unreachable {
                    address: self.address.clone(),
                    problem: "no answer in time".into(),
                })
            })
    }

    async fn exchange(&self, method: Method, path: &str, body: Bytes) -> Result<Bytes, AgentError> {
        self.exchange_heard(method, path, body, None).await
    }

    async fn exchange_heard(
        &self,
        method: Method,
        path: &str,
        body: Bytes,
        silence: Option<Duration>,
    ) -> Result<Bytes, AgentError> {
        let unreachable = |problem: String| AgentError::Unreachable {
            address: self.address.clone(),
            problem,
        };
        let silent = |d: Duration| unreachable(format!("nothing heard for {} s", d.as_secs()));
        let setup = silence.map_or(REQUEST_TIMEOUT, |s| s + s / 2);
        let (response, sender) = tokio::time::timeout(setup, self.request(method, path, body))
            .await
            .map_err(|_| silent(setup))??;
        let status = response.status();
        let bytes = match silence {
            None => Limited::new(response.into_body(), MAX_RESPONSE_LEN)
                .collect()
                .await
                .map_err(|e| AgentError::Protocol(format!("reading the answer: {e}")))?
                .to_bytes(),
            Some(silence) => {
                let mut body = response.into_body();
                let mut out = Vec::new();
                loop {
                    match tokio::time::timeout(silence, body.frame()).await {
                        Err(_) => return Err(silent(silence)),
                        Ok(None) => break,
                        Ok(Some(Err(e))) => return Err(self.failure(&e)),
                        Ok(Some(Ok(frame))) => {
                            if let Some(data) = frame.data_ref() {
                                if out.len() + data.len() > MAX_RESPONSE_LEN {
                                    return Err(AgentError::Protocol(
                                        "the answer is too large".into(),
                                    ));
                                }
                                out.extend_from_slice(data);
                            }
                        }
                    }
                }
                Bytes::from(out)
            }
        };
        // Read whole: the connection may carry the next request.
        self.keep(sender);
        if status.is_success() {
            Ok(bytes)
        } else {
            let body: ErrorBody = serde_json::from_slice(&bytes).map_err(|_| {
                AgentError::Protocol(format!("HTTP {status} without an error body"))
            })?;
            Err(AgentError::Refused {
                status: status.as_u16(),
                body,
            })
        }
    }

    /// Sends the request on the connection kept open, or on a new one: its response's
    /// head, and the connection (to keep once the response is read whole).
    async fn request(
        &self,
        method: Method,
        path: &str,
        body: Bytes,
    ) -> Result<
        (
            http::Response<hyper::body::Incoming>,
            SendRequest<Full<Bytes>>,
        ),
        AgentError,
    > {
        let request = Request::builder()
            .method(method)
            .uri(path)
            .header(header::HOST, self.address.as_str())
            .header(header::CONTENT_TYPE, "application/json")
            .body(Full::new(body))
            .map_err(|e| AgentError::Local(e.to_string()))?;
        let request = match self.reusable().await {
            Some(mut sender) => match sender.try_send_request(request).await {
                Ok(response) => return Ok((response, sender)),
                Err(mut e) => match e.take_message() {
                    // The connection closed before the request went out: a new one. A
                    // request that went out is never sent twice (an admission's nonce
                    // is spent by the first).
                    Some(request) => request,
                    None => return Err(self.failure(e.error())),
                },
            },
            None => request,
        };
        self.connect_and_send(request).await
    }

    /// The connection kept open, if it is still open, ready, and not idle too long.
    async fn reusable(&self) -> Option<SendRequest<Full<Bytes>>> {
        let idle = self
            .idle
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take()?;
        if idle.since.elapsed() > KEEP_IDLE || idle.sender.is_closed() {
            return None;
        }
        let mut sender = idle.sender;
        // Ready at once unless the connection is closing (an error then).
        match tokio::time::timeout(Duration::from_secs(1), sender.ready()).await {
            Ok(Ok(())) => Some(sender),
            _ => None,
        }
    }

    /// Keeps `sender`'s connection open for the next request.
    fn keep(&self, sender: SendRequest<Full<Bytes>>) {
        if !sender.is_closed() {
            *self
                .idle
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(Idle {
                sender,
                since: std::time::Instant::now(),
            });
        }
    }

    /// Connects (TCP, TLS, HTTP/1.1) and sends `request`.
    async fn connect_and_send(
        &self,
        request: Request<Full<Bytes>>,
    ) -> Result<
        (
            http::Response<hyper::body::Incoming>,
            SendRequest<Full<Bytes>>,
        ),
        AgentError,
    > {
        let unreachable = |problem: String| AgentError::Unreachable {
            address: self.address.clone(),
            problem,
        };
        let host = host_of(&self.address);
        let server_name = ServerName::try_from(host.to_owned())
            .map_err(|_| unreachable(format!("{host:?} is not a valid server name")))?;
        let tcp = tokio::net::TcpStream::connect(&self.address)
            .await
            .map_err(|e| unreachable(e.to_string()))?;
        // A request leaves in more than one write (the admission's did, after the
        // nonce's on the same connection): with Nagle's algorithm its last segment
        // waited for the gateway's delayed acknowledgement, 40 ms an admission.
        let _ = tcp.set_nodelay(true);
        let tls = tokio_rustls::TlsConnector::from(self.config.clone())
            .connect(server_name, tcp)
            .await
            .map_err(|e| self.io_failure(&e))?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .map_err(|e| self.failure(&e))?;
        // The connection's task ends when the connection closes: by the gateway, or once
        // this client (and its clones) no longer hold it.
        let driver = tokio::spawn(conn);
        let response = match sender.send_request(request).await {
            Ok(r) => r,
            Err(e) => {
                // In TLS 1.3 the server refuses a client certificate after the client's
                // handshake has finished: the alert reaches the connection task, and the
                // request only sees a cancellation. Prefer the connection's own error.
                let from_connection =
                    match tokio::time::timeout(Duration::from_secs(2), driver).await {
                        Ok(Ok(Err(conn_err))) => Some(self.failure(&conn_err)),
                        _ => None,
                    };
                return Err(match from_connection {
                    Some(tls @ AgentError::Tls { .. }) => tls,
                    _ => self.failure(&e),
                });
            }
        };
        Ok((response, sender))
    }

    fn failure(&self, e: &(dyn std::error::Error + 'static)) -> AgentError {
        match find_tls_error(e) {
            Some(error) => AgentError::Tls {
                address: self.address.clone(),
                error: error.clone(),
            },
            None => AgentError::Unreachable {
                address: self.address.clone(),
                problem: e.to_string(),
            },
        }
    }

    fn io_failure(&self, e: &std::io::Error) -> AgentError {
        self.failure(e)
    }
}

fn parse<A: DeserializeOwned>(bytes: &[u8]) -> Result<A, AgentError> {
    serde_json::from_slice(bytes).map_err(|e| AgentError::Protocol(e.to_string()))
}

/// The rustls error somewhere in `e`'s chain of sources, if any.
fn find_tls_error<'a>(e: &'a (dyn std::error::Error + 'static)) -> Option<&'a rustls::Error> {
    let mut current = Some(e);
    while let Some(err) = current {
        if let Some(tls) = err.downcast_ref::<rustls::Error>() {
            return Some(tls);
        }
        if let Some(tls) = err
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
            .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        {
            return Some(tls);
        }
        current = err.source();
    }
    None
}

/// The host part of `host:port` (brackets of an IPv6 literal removed).
pub fn host_of(address: &str) -> &str {
    let host = address.rsplit_once(':').map_or(address, |(h, _)| h);
    host.strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts() {
        assert_eq!(host_of("gw.example:8443"), "gw.example");
        assert_eq!(host_of("127.0.0.1:8443"), "127.0.0.1");
        assert_eq!(host_of("[::1]:8443"), "::1");
    }
}

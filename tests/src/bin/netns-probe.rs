//! Traffic for end-to-end tests in network namespaces: servers that count what reaches
//! them, clients that say whether they got through, a steady stream, and a flood of
//! handshake initiations. Every loop is bounded by a count or a duration.
//!
//! ```text
//! netns-probe serve --tcp 5432,22 --udp 53,9999 [--addrs IP,IP]  (stdin "stats" -> JSON counts)
//! netns-probe tcp HOST:PORT [--timeout-ms N]        (exit 0 if the echo came back)
//! netns-probe udp HOST:PORT [--bind IP] [--timeout-ms N]
//! netns-probe udp-send HOST:PORT [--bind IP] --count N
//! netns-probe udp-stream HOST:PORT --interval-ms N --duration-ms N
//! netns-probe handshakes HOST:PORT --gateway-key B64 --keys FILE --psk B64 [--window N]
//!     (one handshake per key in FILE; prints completed, rate and latency percentiles)
//! netns-probe flood HOST:PORT --gateway-key B64 --duration-ms N [--distinct N] [--rate N]
//! netns-probe admit-burst STATE_DIR --posture-root DIR --count N --grants FILE
//!     (N admissions of the enrolled device at once, through the agent's protocol: each
//!     fetches its nonce and posture first, then all post together; prints one line
//!     each, `granted SESSION` or `refused: CODE: WHY`; the grants go to FILE, 0600)
//! netns-probe configure STATE_DIR --iface IF --grants FILE --session ID
//!     (configures IF as the agent would with the grant of session ID)
//! netns-probe idle HOST:PORT --count N --duration-ms N
//!     (keeps up to N TCP connections open that send nothing, reopening closed ones)
//! netns-probe h2-bodies HOST:PORT --conns N --duration-ms N
//!     (N HTTP/2 connections without a certificate, each with 8 requests whose bodies
//!     never end, renewed as the server answers or drops them)
//! netns-probe enrol-flood HOST:PORT --rate N --duration-ms N
//!     (N bogus enrolment requests a second, each on a new TLS connection)
//! The three attacks print what they did as one JSON line.
//! ```

use std::collections::HashMap;
use std::io::{BufRead as _, Read as _, Write as _};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context as _, anyhow, bail};
use base64::Engine as _;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (cmd, rest) = args.split_first().ok_or_else(|| anyhow!("no command"))?;
    let target = rest.first().map(String::as_str).unwrap_or_default();
    let opts: HashMap<&str, &str> = rest
        .iter()
        .skip(usize::from(cmd != "serve"))
        .collect::<Vec<_>>()
        .chunks(2)
        .filter_map(|c| Some((c[0].strip_prefix("--")?, c.get(1)?.as_str())))
        .collect();
    let num = |k: &str, d: u64| -> anyhow::Result<u64> {
        opts.get(k)
            .map_or(Ok(d), |v| v.parse().context(k.to_owned()))
    };
    let timeout = Duration::from_millis(num("timeout-ms", 1_000)?);
    match cmd.as_str() {
        "serve" => serve(&opts),
        "tcp" => {
            let addr: SocketAddr = target.parse()?;
            let mut s = TcpStream::connect_timeout(&addr, timeout)?;
            s.set_read_timeout(Some(timeout))?;
            s.write_all(b"ping")?;
            let mut buf = [0u8; 4];
            s.read_exact(&mut buf)?;
            if &buf != b"ping" {
                bail!("wrong echo");
            }
            Ok(())
        }
        "udp" => {
            let sock = bind(&opts, target)?;
            sock.set_read_timeout(Some(timeout))?;
            sock.send_to(b"ping", target)?;
            let mut buf = [0u8; 16];
            let (n, _) = sock.recv_from(&mut buf)?;
            if &buf[..n] != b"ping" {
                bail!("wrong echo");
            }
            Ok(())
        }
        // `dns SERVER:53 --name NAME [--type a|aaaa]`: prints the addresses answered.
        "dns" => {
            let name = opt(&opts, "name")?;
            let aaaa = opts.get("type") == Some(&"aaaa");
            let sock = bind(&opts, target)?;
            sock.set_read_timeout(Some(timeout))?;
            sock.send_to(&dns_query(name, aaaa), target)?;
            let mut buf = [0u8; 1500];
            let (n, _) = sock.recv_from(&mut buf)?;
            let addrs = dns_answers(&buf[..n], aaaa)?;
            if addrs.is_empty() {
                bail!("no address for {name}");
            }
            for a in addrs {
                println!("{a}");
            }
            Ok(())
        }
        "udp-send" => {
            let sock = bind(&opts, target)?;
            for _ in 0..num("count", 1)? {
                // Sends that fail locally (no route) are the test's concern, not ours.
                let _ = sock.send_to(b"data", target);
                std::thread::sleep(Duration::from_millis(1));
            }
            Ok(())
        }
        "udp-stream" => {
            let sock = bind(&opts, target)?;
            let interval = Duration::from_millis(num("interval-ms", 5)?);
            let end = Instant::now() + Duration::from_millis(num("duration-ms", 1_000)?);
            while Instant::now() < end {
                let _ = sock.send_to(b"data", target);
                std::thread::sleep(interval);
            }
            Ok(())
        }
        "flood" => flood(
            target,
            &opts,
            Duration::from_millis(num("duration-ms", 1_000)?),
            num("distinct", 256)?,
            num("rate", 20_000)?,
        ),
        "handshakes" => handshakes(target, &opts),
        "admit-burst" => admit_burst(target, &opts),
        "idle" => attack::idle(
            target,
            num("count", 5_000)?,
            Duration::from_millis(num("duration-ms", 1_000)?),
        ),
        "h2-bodies" => attack::h2_bodies(
            target,
            num("conns", 40)?,
            Duration::from_millis(num("duration-ms", 1_000)?),
        ),
        "enrol-flood" => attack::enrol_flood(
            target,
            num("rate", 50)?,
            Duration::from_millis(num("duration-ms", 1_000)?),
        ),
        "configure" => configure(target, &opts),
        _ => bail!("unknown command {cmd}"),
    }
}

/// A UDP socket from `--bind ADDR` (any address of the target's family by default).
fn bind(opts: &HashMap<&str, &str>, target: &str) -> anyhow::Result<UdpSocket> {
    let any = if target.starts_with('[') {
        "::"
    } else {
        "0.0.0.0"
    };
    let ip = opts.get("bind").copied().unwrap_or(any);
    Ok(UdpSocket::bind((ip, 0))?)
}

type Counts = Arc<Mutex<HashMap<String, (u64, u64)>>>;

fn serve(opts: &HashMap<&str, &str>) -> anyhow::Result<()> {
    let counts: Counts = Arc::default();
    let ports = |k: &str| -> Vec<u16> {
        opts.get(k)
            .map(|v| v.split(',').filter_map(|p| p.parse().ok()).collect())
            .unwrap_or_default()
    };
    // `--tcp-bind ::` for IPv6.
    let tcp_bind = opts.get("tcp-bind").copied().unwrap_or("0.0.0.0");
    for port in ports("tcp") {
        let l = TcpListener::bind((tcp_bind, port))?;
        let counts = counts.clone();
        std::thread::spawn(move || {
            for s in l.incoming().flatten() {
                note(&counts, format!("tcp/{port}"));
                std::thread::spawn(move || echo_tcp(s));
            }
        });
    }
    // One UDP socket per address, so that a reply leaves from the address the request
    // was sent to.
    let addrs: Vec<&str> = opts
        .get("addrs")
        .map_or_else(|| vec!["0.0.0.0"], |a| a.split(',').collect());
    for (port, addr) in ports("udp")
        .into_iter()
        .flat_map(|p| addrs.iter().map(move |a| (p, *a)))
    {
        let sock = UdpSocket::bind((addr, port))?;
        let counts = counts.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 2048];
            while let Ok((n, from)) = sock.recv_from(&mut buf) {
                note(&counts, format!("udp/{port}"));
                if &buf[..n] == b"ping" {
                    let _ = sock.send_to(&buf[..n], from);
                }
            }
        });
    }
    println!("ready");
    for line in std::io::stdin().lock().lines() {
        if line?.trim() == "stats" {
            let c = counts.lock().map_err(|_| anyhow!("poisoned"))?;
            let v: serde_json::Map<String, serde_json::Value> = c
                .iter()
                .map(|(k, (n, last))| (k.clone(), serde_json::json!({"count": n, "last_ms": last})))
                .collect();
            println!("{}", serde_json::Value::Object(v));
        }
    }
    Ok(())
}

fn note(counts: &Counts, key: String) {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    if let Ok(mut c) = counts.lock() {
        let e = c.entry(key).or_default();
        e.0 += 1;
        e.1 = now;
    }
}

fn echo_tcp(mut s: TcpStream) {
    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
    let mut buf = [0u8; 1024];
    while let Ok(n) = s.read(&mut buf) {
        if n == 0 || s.write_all(&buf[..n]).is_err() {
            break;
        }
    }
}

/// Sends valid-looking handshake initiations (right mac1, random static keys), `rate` per
/// second for `duration`: `distinct` of them made up front, then replayed.
fn flood(
    target: &str,
    opts: &HashMap<&str, &str>,
    duration: Duration,
    distinct: u64,
    rate: u64,
) -> anyhow::Result<()> {
    let key = opts
        .get("gateway-key")
        .ok_or_else(|| anyhow!("--gateway-key is required"))?;
    let key: [u8; 32] = base64::engine::general_purpose::STANDARD
        .decode(key)?
        .try_into()
        .map_err(|_| anyhow!("a key is 32 bytes"))?;
    let gateway = boringtun::x25519::PublicKey::from(key);
    let mut packets = Vec::new();
    for i in 0..distinct {
        let me = boringtun::x25519::StaticSecret::from(ztgw_tests::rand_bytes::<32>());
        let mut t = boringtun::noise::Tunn::new(me, gateway, None, None, i as u32, None);
        let mut buf = [0u8; 256];
        if let boringtun::noise::TunnResult::WriteToNetwork(p) =
            t.format_handshake_initiation(&mut buf, true)
        {
            packets.push(p.to_vec());
        }
    }
    let sock = UdpSocket::bind("0.0.0.0:0")?;
    let sent = AtomicU64::new(0);
    let start = Instant::now();
    let end = start + duration;
    // Paced in 1 ms steps: `rate` per second.
    let mut next = packets.iter().cycle();
    while Instant::now() < end {
        let due = start.elapsed().as_millis() as u64 * rate / 1000;
        while sent.load(Ordering::Relaxed) < due {
            if let Some(p) = next.next() {
                let _ = sock.send_to(p, target);
            }
            sent.fetch_add(1, Ordering::Relaxed);
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    println!("{}", sent.load(Ordering::Relaxed));
    Ok(())
}

/// Completes one handshake per private key in `--keys` (their peers installed at the
/// gateway), at most `--window` outstanding, and reports the rate and latencies. The
/// initiations are made before the clock starts: only the gateway's work is timed.
fn handshakes(target: &str, opts: &HashMap<&str, &str>) -> anyhow::Result<()> {
    let b64 = |k: &str| -> anyhow::Result<[u8; 32]> {
        let v = opts.get(k).ok_or_else(|| anyhow!("--{k} is required"))?;
        base64::engine::general_purpose::STANDARD
            .decode(v)?
            .try_into()
            .map_err(|_| anyhow!("--{k}: 32 bytes"))
    };
    let gateway = boringtun::x25519::PublicKey::from(b64("gateway-key")?);
    let psk = b64("psk")?;
    let window: usize = opts.get("window").map_or(Ok(64), |w| w.parse())?;
    let keys = std::fs::read_to_string(opts.get("keys").ok_or_else(|| anyhow!("--keys"))?)?;
    let mut inits = Vec::new();
    for (i, line) in keys.lines().enumerate() {
        let k: [u8; 32] = base64::engine::general_purpose::STANDARD
            .decode(line.trim())?
            .try_into()
            .map_err(|_| anyhow!("key: 32 bytes"))?;
        let me = boringtun::x25519::StaticSecret::from(k);
        let mut t = boringtun::noise::Tunn::new(me, gateway, Some(psk), None, i as u32, None);
        let mut buf = [0u8; 256];
        if let boringtun::noise::TunnResult::WriteToNetwork(p) =
            t.format_handshake_initiation(&mut buf, true)
        {
            inits.push(p.to_vec());
        }
    }
    let sock = UdpSocket::bind("0.0.0.0:0")?;
    sock.set_read_timeout(Some(Duration::from_millis(100)))?;
    let mut sent_at: Vec<Option<Instant>> = vec![None; inits.len()];
    let mut latencies = Vec::with_capacity(inits.len());
    let (mut sent, mut done) = (0usize, 0usize);
    let start = Instant::now();
    let mut last_progress = Instant::now();
    let mut buf = [0u8; 256];
    while done < inits.len() && last_progress.elapsed() < Duration::from_secs(3) {
        while sent < inits.len() && sent - done < window {
            sock.send_to(&inits[sent], target)?;
            sent_at[sent] = Some(Instant::now());
            sent += 1;
        }
        let Ok((n, _)) = sock.recv_from(&mut buf) else {
            continue;
        };
        if n == 92 && buf[0] == 2 {
            let receiver = u32::from_le_bytes([buf[8], buf[9], buf[10], buf[11]]);
            if let Some(Some(t)) = sent_at.get_mut((receiver >> 8) as usize).map(Option::take) {
                latencies.push(t.elapsed());
                done += 1;
                last_progress = Instant::now();
            }
        }
    }
    let secs = start.elapsed().as_secs_f64();
    latencies.sort_unstable();
    let pct = |p: f64| {
        latencies
            .get(((latencies.len() as f64 * p) as usize).min(latencies.len().saturating_sub(1)))
            .map_or(0, |d| d.as_micros() as u64)
    };
    println!(
        "{}",
        serde_json::json!({
            "completed": done,
            "sent": sent,
            "seconds": secs,
            "rate": done as f64 / secs,
            "p50_us": pct(0.5),
            "p99_us": pct(0.99),
        })
    );
    Ok(())
}

fn opt<'a>(opts: &HashMap<&str, &'a str>, k: &str) -> anyhow::Result<&'a str> {
    opts.get(k)
        .copied()
        .ok_or_else(|| anyhow!("--{k} is required"))
}

/// N admissions of one device fired together: the race a laptop's keys allow.
fn admit_burst(state_dir: &str, opts: &HashMap<&str, &str>) -> anyhow::Result<()> {
    use ztgw_agent::{posture, renew};
    use ztgw_api::control::{AdmissionRequest, NonceView, SessionGrant, path};
    let count: usize = opt(opts, "count")?.parse().context("--count")?;
    let root = std::path::PathBuf::from(opt(opts, "posture-root")?);
    let grants_file = opt(opts, "grants")?;
    let state = ztgw_agent::state::AgentState::new(state_dir);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let results: Vec<Result<SessionGrant, String>> = rt.block_on(async {
        let record = state.record().map_err(|e| anyhow!("{e}"))?;
        let (_, profile) = posture::profile_for(&state)
            .await
            .map_err(|e| anyhow!("{e}"))?;
        let barrier = Arc::new(tokio::sync::Barrier::new(count));
        let mut tasks = Vec::with_capacity(count);
        for _ in 0..count {
            let (state, profile, root, barrier) = (
                state.clone(),
                profile.clone(),
                root.clone(),
                barrier.clone(),
            );
            let key = record.wireguard_public_key.to_base64();
            tasks.push(tokio::spawn(async move {
                let client = renew::device_client(&state).map_err(|e| e.to_string());
                let nonce = match &client {
                    Ok(c) => c
                        .post::<_, NonceView>(path::SESSION_NONCE, &serde_json::json!({}))
                        .await
                        .map_err(|e| coded(&e)),
                    Err(e) => Err(e.clone()),
                };
                // Every task waits here, whatever happened, so the posts go together.
                barrier.wait().await;
                let (client, nonce) = (client?, nonce?);
                let report = posture::collect_for(&profile, root, nonce.nonce);
                let posture = serde_json::to_string(&report).map_err(|e| e.to_string())?;
                client
                    .post::<_, SessionGrant>(
                        path::SESSION,
                        &AdmissionRequest {
                            wg_public_key: key,
                            posture,
                            second_factor: None,
                        },
                    )
                    .await
                    .map_err(|e| coded(&e))
            }));
        }
        let mut out = Vec::with_capacity(count);
        for t in tasks {
            out.push(t.await.map_err(|e| e.to_string()).and_then(|r| r));
        }
        anyhow::Ok(out)
    })?;
    let mut grants = Vec::new();
    for r in results {
        match r {
            Ok(g) => {
                println!("granted {}", g.session);
                grants.push(g);
            }
            Err(e) => println!("refused: {e}"),
        }
    }
    state
        .write_secret(
            std::path::Path::new(grants_file),
            serde_json::to_string(&grants)?.as_bytes(),
            ztgw_pki::Existing::Replace,
        )
        .map_err(|e| anyhow!("{e}"))?;
    Ok(())
}

/// A refusal as `CODE: sentence` (`-` when the gateway gave no reason code).
fn coded(e: &ztgw_agent::AgentError) -> String {
    let said = e.to_string().replace('\n', " | ");
    format!("{}: {said}", e.code().unwrap_or("-"))
}

/// Configures an interface with one of the grants `admit-burst` wrote.
fn configure(state_dir: &str, opts: &HashMap<&str, &str>) -> anyhow::Result<()> {
    use ztgw_api::control::SessionGrant;
    let grants: Vec<SessionGrant> =
        serde_json::from_str(&std::fs::read_to_string(opt(opts, "grants")?)?)?;
    let id = opt(opts, "session")?;
    let grant = grants
        .iter()
        .find(|g| g.session == id)
        .ok_or_else(|| anyhow!("no grant of session {id}"))?;
    let state = ztgw_agent::state::AgentState::new(state_dir);
    ztgw_agent::connect::configure(
        &state,
        &ztgw_agent::connect::Target::Interface(opt(opts, "iface")?.to_owned()),
        grant,
    )
    .map(drop)
    .map_err(|e| anyhow!("{e}"))
}

/// Attacks on the control plane by a caller without credentials (`bench-attack.sh`).
mod attack {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::time::{Duration, Instant};

    use bytes::Bytes;
    use http_body_util::{BodyExt as _, Full};
    use hyper_util::rt::{TokioExecutor, TokioIo};

    fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
        Ok(tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()?)
    }

    /// An attacker trusts whatever certificate the gateway shows.
    #[derive(Debug)]
    struct TrustAll(Arc<rustls::crypto::CryptoProvider>);

    impl rustls::client::danger::ServerCertVerifier for TrustAll {
        fn verify_server_cert(
            &self,
            _: &rustls_pki_types::CertificateDer<'_>,
            _: &[rustls_pki_types::CertificateDer<'_>],
            _: &rustls_pki_types::ServerName<'_>,
            _: &[u8],
            _: rustls_pki_types::UnixTime,
        ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
            Ok(rustls::client::danger::ServerCertVerified::assertion())
        }
        fn verify_tls12_signature(
            &self,
            m: &[u8],
            c: &rustls_pki_types::CertificateDer<'_>,
            d: &rustls::DigitallySignedStruct,
        ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
            rustls::crypto::verify_tls12_signature(
                m,
                c,
                d,
                &self.0.signature_verification_algorithms,
            )
        }
        fn verify_tls13_signature(
            &self,
            m: &[u8],
            c: &rustls_pki_types::CertificateDer<'_>,
            d: &rustls::DigitallySignedStruct,
        ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
            rustls::crypto::verify_tls13_signature(
                m,
                c,
                d,
                &self.0.signature_verification_algorithms,
            )
        }
        fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
            self.0.signature_verification_algorithms.supported_schemes()
        }
    }

    fn connector(alpn: &[u8]) -> tokio_rustls::TlsConnector {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .expect("TLS 1.3")
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(TrustAll(provider)))
            .with_no_client_auth();
        config.alpn_protocols = vec![alpn.to_vec()];
        tokio_rustls::TlsConnector::from(Arc::new(config))
    }

    async fn tls(
        target: &str,
        alpn: &[u8],
    ) -> Option<tokio_rustls::client::TlsStream<tokio::net::TcpStream>> {
        let tcp = tokio::net::TcpStream::connect(target).await.ok()?;
        let name = rustls_pki_types::ServerName::try_from("gateway").ok()?;
        tokio::time::timeout(Duration::from_secs(10), connector(alpn).connect(name, tcp))
            .await
            .ok()?
            .ok()
    }

    pub fn idle(target: &str, count: u64, duration: Duration) -> anyhow::Result<()> {
        let (opened, closed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
        runtime()?.block_on(async {
            let end = Instant::now() + duration;
            let mut tasks = tokio::task::JoinSet::new();
            for _ in 0..count {
                let (target, opened, closed) = (target.to_owned(), opened.clone(), closed.clone());
                tasks.spawn(async move {
                    while Instant::now() < end {
                        match tokio::net::TcpStream::connect(&target).await {
                            Ok(mut s) => {
                                opened.fetch_add(1, Ordering::Relaxed);
                                let mut buf = [0u8; 64];
                                let left = end.saturating_duration_since(Instant::now());
                                if let Ok(Ok(_)) = tokio::time::timeout(
                                    left,
                                    tokio::io::AsyncReadExt::read(&mut s, &mut buf),
                                )
                                .await
                                {
                                    closed.fetch_add(1, Ordering::Relaxed);
                                }
                            }
                            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
                        }
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                });
            }
            while tasks.join_next().await.is_some() {}
        });
        println!(
            "{{\"opened\": {}, \"closed_by_gateway\": {}}}",
            opened.load(Ordering::Relaxed),
            closed.load(Ordering::Relaxed)
        );
        Ok(())
    }

    struct Unfinished(Option<Bytes>);

    impl hyper::body::Body for Unfinished {
        type Data = Bytes;
        type Error = std::convert::Infallible;
        fn poll_frame(
            mut self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Option<Result<hyper::body::Frame<Bytes>, Self::Error>>> {
            match self.0.take() {
                Some(b) => std::task::Poll::Ready(Some(Ok(hyper::body::Frame::data(b)))),
                None => std::task::Poll::Pending,
            }
        }
    }

    pub fn h2_bodies(target: &str, conns: u64, duration: Duration) -> anyhow::Result<()> {
        let (requests, answered) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
        runtime()?.block_on(async {
            let end = Instant::now() + duration;
            let mut tasks = tokio::task::JoinSet::new();
            for _ in 0..conns {
                let (target, requests, answered) =
                    (target.to_owned(), requests.clone(), answered.clone());
                tasks.spawn(async move {
                    while Instant::now() < end {
                        let Some(stream) = tls(&target, b"h2").await else {
                            tokio::time::sleep(Duration::from_millis(200)).await;
                            continue;
                        };
                        let Ok((sender, conn)) = hyper::client::conn::http2::handshake(
                            TokioExecutor::new(),
                            TokioIo::new(stream),
                        )
                        .await
                        else {
                            continue;
                        };
                        let driver = tokio::spawn(conn);
                        let mut streams = tokio::task::JoinSet::new();
                        for _ in 0..8 {
                            let (mut sender, requests, answered) =
                                (sender.clone(), requests.clone(), answered.clone());
                            streams.spawn(async move {
                                while Instant::now() < end {
                                    let req = http::Request::post("https://gateway/v1/session")
                                        .header("content-type", "application/json")
                                        .body(Unfinished(Some(Bytes::from(vec![b' '; 16 * 1024]))))
                                        .expect("request");
                                    requests.fetch_add(1, Ordering::Relaxed);
                                    let left = end.saturating_duration_since(Instant::now());
                                    match tokio::time::timeout(left, sender.send_request(req)).await
                                    {
                                        Ok(Ok(_)) => {
                                            answered.fetch_add(1, Ordering::Relaxed);
                                        }
                                        Ok(Err(_)) => break,
                                        Err(_) => break,
                                    }
                                }
                            });
                        }
                        while streams.join_next().await.is_some() {}
                        driver.abort();
                    }
                });
            }
            while tasks.join_next().await.is_some() {}
        });
        println!(
            "{{\"requests\": {}, \"answered\": {}}}",
            requests.load(Ordering::Relaxed),
            answered.load(Ordering::Relaxed)
        );
        Ok(())
    }

    pub fn enrol_flood(target: &str, rate: u64, duration: Duration) -> anyhow::Result<()> {
        let (sent, refused) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
        runtime()?.block_on(async {
            let end = Instant::now() + duration;
            let mut tick = tokio::time::interval(Duration::from_micros(1_000_000 / rate.max(1)));
            let mut tasks = tokio::task::JoinSet::new();
            while Instant::now() < end {
                tick.tick().await;
                let (target, sent, refused) = (target.to_owned(), sent.clone(), refused.clone());
                tasks.spawn(async move {
                    sent.fetch_add(1, Ordering::Relaxed);
                    let Some(stream) = tls(&target, b"http/1.1").await else {
                        return;
                    };
                    let Ok((mut sender, conn)) =
                        hyper::client::conn::http1::handshake(TokioIo::new(stream)).await
                    else {
                        return;
                    };
                    tokio::spawn(conn);
                    let body = r#"{"invitation_id": "inv-0000000000000000bogus", "secret": "x", "csr_pem": "x", "wg_public_key": "x"}"#;
                    let req = http::Request::post("/v1/enroll")
                        .header("host", "gateway")
                        .body(Full::new(Bytes::from_static(body.as_bytes())))
                        .expect("request");
                    if let Ok(Ok(r)) =
                        tokio::time::timeout(Duration::from_secs(10), sender.send_request(req)).await
                    {
                        if r.status().is_client_error() {
                            refused.fetch_add(1, Ordering::Relaxed);
                        }
                        let _ = r.into_body().collect().await;
                    }
                });
                while tasks.try_join_next().is_some() {}
            }
            while tasks.join_next().await.is_some() {}
        });
        println!(
            "{{\"sent\": {}, \"refused\": {}}}",
            sent.load(Ordering::Relaxed),
            refused.load(Ordering::Relaxed)
        );
        Ok(())
    }
}

/// A DNS query (id 0x5a7e, recursion desired) for `name`, type A or AAAA.
fn dns_query(name: &str, aaaa: bool) -> Vec<u8> {
    let mut q = vec![0x5a, 0x7e, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
    for label in name.trim_end_matches('.').split('.') {
        q.push(label.len() as u8);
        q.extend_from_slice(label.as_bytes());
    }
    q.push(0);
    q.extend_from_slice(&[0, if aaaa { 28 } else { 1 }, 0, 1]);
    q
}

/// The addresses of an answer to [`dns_query`].
fn dns_answers(m: &[u8], aaaa: bool) -> anyhow::Result<Vec<std::net::IpAddr>> {
    let u16_at = |i: usize| -> anyhow::Result<u16> {
        Ok(u16::from_be_bytes([
            *m.get(i).context("short")?,
            *m.get(i + 1).context("short")?,
        ]))
    };
    if u16_at(0)? != 0x5a7e {
        bail!("not our answer");
    }
    let rcode = u16_at(2)? & 0xf;
    if rcode != 0 {
        bail!("the resolver answered rcode {rcode}");
    }
    let answers = u16_at(6)?;
    // Skip the question: its name, type and class.
    let skip_name = |mut i: usize| -> anyhow::Result<usize> {
        loop {
            let len = *m.get(i).context("short")?;
            if len & 0xc0 == 0xc0 {
                return Ok(i + 2);
            }
            if len == 0 {
                return Ok(i + 1);
            }
            i += 1 + usize::from(len);
        }
    };
    let mut i = skip_name(12)? + 4;
    let mut out = Vec::new();
    for _ in 0..answers {
        i = skip_name(i)?;
        let kind = u16_at(i)?;
        let len = usize::from(u16_at(i + 8)?);
        let data = m.get(i + 10..i + 10 + len).context("short")?;
        match (kind, aaaa, data.len()) {
            (1, false, 4) => out.push(std::net::IpAddr::from([data[0], data[1], data[2], data[3]])),
            (28, true, 16) => {
                let mut a = [0u8; 16];
                a.copy_from_slice(data);
                out.push(std::net::IpAddr::from(a));
            }
            _ => {}
        }
        i += 10 + len;
    }
    Ok(out)
}

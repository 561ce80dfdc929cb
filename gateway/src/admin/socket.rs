//! The admin socket: how `ztgw` commands reach a running gateway.
//!
//! A Unix stream socket, mode 0660, group `[admin] group` when that group exists (else
//! root only). One JSON line in ([`AdminEnvelope`]), one JSON line out
//! ([`SocketReply`]). The file's mode is not the only check: the kernel's peer
//! credentials must be root's, the gateway's own user's, or a member of `[admin] group`;
//! they are added to the operator name, so the record says both who the operator claimed
//! to be and which OS user asked. At most [`MAX_CLIENTS`] connections are served at once
//! (others wait their turn, [`MAX_CONNECTIONS`] in all), and a client has
//! [`REQUEST_TIMEOUT`] to send its request.

use std::io::{self, BufRead as _, Write as _};
use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::net::{UnixListener, UnixStream};

use super::{AdminEnvelope, AdminError, AdminErrorCode, AdminResponse, handle};
use crate::context::Context;
use crate::sessions::SessionService;

/// Largest request line accepted on the admin socket.
pub const MAX_REQUEST_LEN: u64 = 64 * 1024;
/// Largest reply line the client accepts (a long device list).
pub const MAX_REPLY_LEN: u64 = 64 * 1024 * 1024;
/// How long the client waits for the gateway.
pub const CLIENT_TIMEOUT: Duration = Duration::from_secs(30);
/// Admin connections served at once; more wait their turn.
pub const MAX_CLIENTS: usize = 16;
/// Admin connections open at once, served or waiting; more are refused.
pub const MAX_CONNECTIONS: usize = 64;
/// How long a client has to send its request line.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// One reply line.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SocketReply {
    Ok(AdminResponse),
    Error(AdminError),
}

/// Binds the admin socket at `path`, replacing a stale socket but never a live one.
pub fn bind(path: &Path, group: &str) -> io::Result<UnixListener> {
    if path.exists() {
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            return Err(io::Error::new(
                io::ErrorKind::AddrInUse,
                format!("{} is in use: is another gateway running?", path.display()),
            ));
        }
        std::fs::remove_file(path)?;
    }
    let listener = UnixListener::bind(path)?;
    let gid = crate::accounts::group_id(group);
    std::fs::set_permissions(
        path,
        std::fs::Permissions::from_mode(if gid.is_some() { 0o660 } else { 0o600 }),
    )?;
    if let Some(gid) = gid {
        std::os::unix::fs::chown(path, None, Some(gid))?;
    }
    Ok(listener)
}

/// Serves admin requests until the task is dropped.
pub async fn serve(
    listener: UnixListener,
    ctx: Arc<Context>,
    sessions: Arc<crate::sessions::SessionService>,
) {
    let open = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    let serving = Arc::new(tokio::sync::Semaphore::new(MAX_CLIENTS));
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                let Ok(place) = open.clone().try_acquire_owned() else {
                    tokio::spawn(refuse_busy(stream));
                    continue;
                };
                let (ctx, sessions, serving) = (ctx.clone(), sessions.clone(), serving.clone());
                tokio::spawn(async move {
                    let _place = place;
                    // Waits its turn for as long as a client may take to send a request.
                    let Ok(Ok(_turn)) =
                        tokio::time::timeout(REQUEST_TIMEOUT, serving.acquire_owned()).await
                    else {
                        return refuse_busy(stream).await;
                    };
                    if let Err(e) = serve_one(stream, ctx, sessions).await {
                        tracing::warn!(error = %e, "admin connection failed");
                    }
                });
            }
            Err(e) => {
                tracing::error!(error = %e, "admin socket accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

async fn serve_one(
    stream: UnixStream,
    ctx: Arc<Context>,
    sessions: Arc<crate::sessions::SessionService>,
) -> io::Result<()> {
    let cred = stream.peer_cred()?;
    let (uid, gid) = (cred.uid(), cred.gid());
    if !may_administer(uid, gid, &ctx.settings.admin.group) {
        tracing::warn!(
            uid,
            gid,
            "admin socket: refused a caller that is neither root nor in the admin group"
        );
        let refused = SocketReply::Error(AdminError {
            code: AdminErrorCode::Forbidden,
            message: format!(
                "uid {uid} may not administer this gateway: run as root or as a member of group {}",
                ctx.settings.admin.group
            ),
        });
        refuse(stream, &refused).await;
        return Ok(());
    }
    let (read, mut write) = stream.into_split();
    let mut line = String::new();
    let read = tokio::time::timeout(
        REQUEST_TIMEOUT,
        BufReader::new(read.take(MAX_REQUEST_LEN)).read_line(&mut line),
    )
    .await;
    match read {
        Ok(r) => {
            r?;
        }
        Err(_) => {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("no request within {REQUEST_TIMEOUT:?}"),
            ));
        }
    }
    let reply = match serde_json::from_str::<AdminEnvelope>(&line) {
        // The directory sync reads the directory (network I/O): run here, not blocking.
        Ok(AdminEnvelope {
            operator,
            request: crate::admin::AdminRequest::DirectorySync { force },
        }) => {
            let operator = format!("{operator} (uid {uid})");
            match crate::directory::sync::sync_once(&ctx, Some(&sessions), force, &operator).await {
                Ok(report) => SocketReply::Ok(crate::admin::AdminResponse::DirectorySync(report)),
                Err(e) => SocketReply::Error(AdminError {
                    code: AdminErrorCode::Internal,
                    message: e.to_string(),
                }),
            }
        }
        Ok(envelope) => {
            let operator = format!("{} (uid {uid})", envelope.operator);
            match carry_out(ctx.clone(), sessions, operator, envelope.request).await {
                Ok(response) => SocketReply::Ok(response),
                Err(e) => SocketReply::Error(e),
            }
        }
        Err(e) => SocketReply::Error(AdminError {
            code: AdminErrorCode::Invalid,
            message: format!("malformed admin request: {e}"),
        }),
    };
    // A backup's bytes follow its announcement, raw.
    let archive = match &reply {
        SocketReply::Ok(AdminResponse::Backup { archive, .. }) => Some(archive.0.clone()),
        _ => None,
    };
    match archive {
        Some(bytes) => {
            let mut line = serde_json::to_vec(&reply).map_err(io::Error::other)?;
            line.push(b'\n');
            write.write_all(&line).await?;
            write.write_all(&bytes).await?;
            write.shutdown().await
        }
        None => self::reply(&mut write, &reply).await,
    }
}

/// Carries out one action on the running gateway for `operator`, as the admin socket and
/// the web console both do: the directory's check of an invitation first, then the
/// action (journal first, the operator recorded), then its changes of access applied to
/// the live sessions before it answers.
pub async fn carry_out(
    ctx: Arc<Context>,
    sessions: Arc<SessionService>,
    operator: String,
    request: crate::admin::AdminRequest,
) -> Result<AdminResponse, AdminError> {
    // An invitation the directory must confirm is checked there first.
    let request = crate::directory::vet(&ctx.settings, request).await?;
    tokio::task::spawn_blocking(move || {
        crate::admin::sessions::handle(&ctx, &sessions, &operator, &request).unwrap_or_else(|| {
            let _changing = ctx.changing();
            let outcome = handle(&ctx, &operator, &request);
            // Sessions end before the action answers.
            sessions.apply_all(&outcome.access);
            outcome.result
        })
    })
    .await
    .unwrap_or_else(|e| {
        Err(AdminError {
            code: AdminErrorCode::Internal,
            message: format!("the action failed: {e}"),
        })
    })
}

/// Whether the caller `uid` (primary group `gid`) may use the admin socket: root, the
/// gateway's own user, or a member of `group`.
fn may_administer(uid: u32, gid: u32, group: &str) -> bool {
    uid == 0
        || crate::accounts::current_uid() == Some(uid)
        || crate::accounts::in_group(uid, gid, group)
}

/// Tells a client the gateway has too many admin connections.
async fn refuse_busy(stream: UnixStream) {
    let busy = SocketReply::Error(AdminError {
        code: AdminErrorCode::Forbidden,
        message: format!("the gateway already has {MAX_CONNECTIONS} admin connections; try again"),
    });
    refuse(stream, &busy).await;
}

/// Answers a client with a refusal: its request is read (and dropped, within bounds)
/// first, so that the answer reaches it instead of a broken pipe.
async fn refuse(stream: UnixStream, why: &SocketReply) {
    let (read, mut write) = stream.into_split();
    let mut line = String::new();
    let _ = tokio::time::timeout(
        Duration::from_secs(2),
        BufReader::new(read.take(MAX_REQUEST_LEN)).read_line(&mut line),
    )
    .await;
    let _ = tokio::time::timeout(REQUEST_TIMEOUT, reply(&mut write, why)).await;
}

/// Writes one reply line and closes the connection.
async fn reply<W: tokio::io::AsyncWrite + Unpin>(
    out: &mut W,
    reply: &SocketReply,
) -> io::Result<()> {
    let mut line = serde_json::to_vec(reply).map_err(io::Error::other)?;
    line.push(b'\n');
    out.write_all(&line).await?;
    out.shutdown().await
}

/// Why the client could not get an answer.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// No gateway listens on the socket: the command may act on the state itself.
    #[error("no gateway is running")]
    NotRunning,
    #[error("the admin socket {path}: {source}")]
    Io { path: String, source: io::Error },
    #[error("the gateway's answer is not understood: {0}")]
    Protocol(String),
}

/// Sends one request to the gateway listening at `path`.
pub fn call(
    path: &Path,
    envelope: &AdminEnvelope,
) -> Result<Result<AdminResponse, AdminError>, CallError> {
    let io_err = |source| CallError::Io {
        path: path.display().to_string(),
        source,
    };
    let mut stream = match std::os::unix::net::UnixStream::connect(path) {
        Ok(s) => s,
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::NotFound | io::ErrorKind::ConnectionRefused
            ) =>
        {
            return Err(CallError::NotRunning);
        }
        Err(e) => return Err(io_err(e)),
    };
    stream
        .set_read_timeout(Some(CLIENT_TIMEOUT))
        .map_err(io_err)?;
    stream
        .set_write_timeout(Some(CLIENT_TIMEOUT))
        .map_err(io_err)?;
    let mut line = serde_json::to_vec(envelope).map_err(|e| CallError::Protocol(e.to_string()))?;
    line.push(b'\n');
    stream.write_all(&line).map_err(io_err)?;
    let mut reply = String::new();
    let mut reader = io::BufReader::new(&mut stream);
    io::Read::take(&mut reader, MAX_REPLY_LEN)
        .read_line(&mut reply)
        .map_err(io_err)?;
    match serde_json::from_str::<SocketReply>(&reply) {
        Ok(SocketReply::Ok(AdminResponse::Backup { files, bytes, .. })) => {
            if bytes > crate::backup::MAX_BACKUP_BYTES as u64 + 4096 {
                return Err(CallError::Protocol(format!(
                    "a backup of {bytes} bytes announced"
                )));
            }
            let mut archive = Vec::with_capacity(bytes as usize);
            io::Read::read_to_end(&mut io::Read::take(&mut reader, bytes), &mut archive)
                .map_err(io_err)?;
            if archive.len() as u64 != bytes {
                return Err(CallError::Protocol(format!(
                    "the backup stopped after {} of {bytes} bytes",
                    archive.len()
                )));
            }
            Ok(Ok(AdminResponse::Backup {
                files,
                bytes,
                archive: super::Archive(archive),
            }))
        }
        Ok(SocketReply::Ok(r)) => Ok(Ok(r)),
        Ok(SocketReply::Error(e)) => Ok(Err(e)),
        Err(e) => Err(CallError::Protocol(e.to_string())),
    }
}

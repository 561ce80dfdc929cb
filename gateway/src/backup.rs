//! Backup and restore of a gateway's state (G16): CA and keys, settings and policy, the
//! registry (a consistent SQLite snapshot), the journal key and the journal up to its
//! last acknowledged write — in one archive encrypted with a passphrase.
//!
//! Format: `ZTGWBAK1`, salt (16 bytes), PBKDF2-HMAC-SHA256 iterations (u32 LE), nonce
//! (12 bytes), then ChaCha20-Poly1305 of the archive with the header as associated data.
//! The archive is `manifest length (u32 LE) | manifest (JSON) | the files' bytes`.

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use ztgw_pki::{Existing, Secret, write_private_file};

use crate::context::Context;
use crate::journal::segment;
use crate::layout::{Layout, LayoutError};

use crate::sealed::HEADER_LEN;
pub use crate::sealed::{ITERATIONS, MIN_PASSPHRASE};

const MAGIC: &[u8; 8] = b"ZTGWBAK1";
/// Largest backup handled (the archive is built in memory).
pub const MAX_BACKUP_BYTES: usize = 1 << 30;

#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error("the passphrase must be at least {MIN_PASSPHRASE} characters")]
    WeakPassphrase,
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("the backup is larger than {MAX_BACKUP_BYTES} bytes")]
    TooLarge,
    #[error("not a ztgw backup")]
    NotABackup,
    #[error("wrong passphrase, or the backup is damaged")]
    Decrypt,
    #[error("the backup's contents are not valid: {0}")]
    Contents(String),
    #[error("{0}")]
    Layout(#[from] LayoutError),
    #[error("{0}")]
    Other(String),
}

impl From<crate::sealed::SealError> for BackupError {
    fn from(e: crate::sealed::SealError) -> Self {
        use crate::sealed::SealError;
        match e {
            SealError::WeakPassphrase => Self::WeakPassphrase,
            SealError::NotOurs => Self::NotABackup,
            SealError::Decrypt => Self::Decrypt,
            SealError::Other(m) => Self::Other(m),
        }
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct Manifest {
    created_at: String,
    gateway: String,
    files: Vec<Entry>,
}

#[derive(Debug, Serialize, Deserialize)]
struct Entry {
    /// `config/gateway.toml`, `config/policy.toml`, `state/NAME` or `journal/NAME`; never
    /// `..` nor absolute. (Backups before the configuration had an area of its own keep
    /// both under `state/`.)
    path: String,
    mode: u32,
    len: u64,
}

/// What a backup or a restore covered.
#[derive(Debug, Clone)]
pub struct Summary {
    pub files: usize,
    pub bytes: u64,
}

/// Writes an encrypted backup of the gateway's state to `to` (a new file, 0600).
pub fn create(
    ctx: &Context,
    passphrase: &Secret<String>,
    to: &Path,
) -> Result<Summary, BackupError> {
    let (archive, summary) = seal(ctx, passphrase)?;
    write_private_file(to, &archive, Existing::Refuse).map_err(|source| BackupError::Io {
        path: to.display().to_string(),
        source,
    })?;
    Ok(summary)
}

/// An encrypted backup of the gateway's state, in memory: what [`create`] writes, or what
/// a running gateway streams to the `ztgw backup` that asked (which writes it as the
/// operator: the gateway never writes a backup where a client says).
pub fn seal(ctx: &Context, passphrase: &Secret<String>) -> Result<(Vec<u8>, Summary), BackupError> {
    if passphrase.expose().chars().count() < MIN_PASSPHRASE {
        return Err(BackupError::WeakPassphrase);
    }
    let io = |path: &Path| {
        let path = path.display().to_string();
        move |source| BackupError::Io { path, source }
    };
    let paths = ctx.settings.state();
    let mut files: Vec<(String, u32, Vec<u8>)> = Vec::new();
    for (name, p) in [
        ("gateway.toml", &ctx.settings.file),
        ("policy.toml", &ctx.settings.policy.file),
    ] {
        let bytes = std::fs::read(p).map_err(io(p))?;
        files.push((format!("config/{name}"), 0o644, bytes));
    }
    for p in [
        paths.ca_cert(),
        paths.ca_key(),
        paths.server_cert(),
        paths.server_key(),
        paths.wireguard_key(),
        paths.wireguard_public(),
        paths.journal_key(),
        paths.journal_public(),
        paths.crl(),
    ] {
        let bytes = std::fs::read(&p).map_err(io(&p))?;
        let mode = std::fs::metadata(&p).map_err(io(&p))?.permissions().mode() & 0o777;
        let name = p
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        files.push((format!("state/{name}"), mode, bytes));
    }
    // The registry: a consistent snapshot, whatever is being written meanwhile. A
    // PostgreSQL registry is PostgreSQL's to back up (pg_dump), with every gateway's.
    if ctx.settings.registry.is_some() {
        return Err(BackupError::Other(
            "the registry is in PostgreSQL ([registry] url): back it up with pg_dump; `ztgw backup` covers a gateway whose registry is SQLite".into(),
        ));
    }
    let snap_dir = tempfile::tempdir().map_err(io(Path::new("temporary directory")))?;
    let snap = snap_dir.path().join("registry.db");
    crate::registry::sqlite::SqliteRegistry::snapshot(&paths.registry(), &snap)
        .map_err(|e| BackupError::Other(e.to_string()))?;
    files.push((
        "state/registry.db".into(),
        0o600,
        std::fs::read(&snap).map_err(io(&snap))?,
    ));
    // The journal up to its last acknowledged write.
    let dir = &ctx.settings.journal.dir;
    let limit = ctx.journal.durable_end();
    for seg in segment::list(dir).map_err(io(dir))? {
        if let Some(bytes) = segment::read_limited(&seg, limit).map_err(io(&seg.path))? {
            files.push((format!("journal/{}", seg.name()), 0o640, bytes));
        }
    }
    let purged = dir.join(segment::PURGE_FILE);
    if purged.exists() {
        files.push((
            format!("journal/{}", segment::PURGE_FILE),
            0o640,
            std::fs::read(&purged).map_err(io(&purged))?,
        ));
    }
    let manifest = Manifest {
        created_at: crate::enrolment::rfc3339(ctx.clock.now()),
        gateway: ztgw_pki::fingerprint_hex(ctx.ca.fingerprint()),
        files: files
            .iter()
            .map(|(p, m, b)| Entry {
                path: p.clone(),
                mode: *m,
                len: b.len() as u64,
            })
            .collect(),
    };
    let manifest = serde_json::to_vec(&manifest).map_err(|e| BackupError::Other(e.to_string()))?;
    let total = 4 + manifest.len() + files.iter().map(|f| f.2.len()).sum::<usize>();
    if total > MAX_BACKUP_BYTES {
        return Err(BackupError::TooLarge);
    }
    let mut plain = Vec::with_capacity(total + 16);
    plain.extend_from_slice(&(manifest.len() as u32).to_le_bytes());
    plain.extend_from_slice(&manifest);
    for (_, _, bytes) in &files {
        plain.extend_from_slice(bytes);
    }
    let out = crate::sealed::seal(MAGIC, plain, passphrase, ctx.entropy.as_ref())?;
    let summary = Summary {
        files: files.len(),
        bytes: out.len() as u64,
    };
    Ok((out, summary))
}

/// Restores the backup at `from` where `layout` says (directories new or empty, prepared
/// as `ztgw init` prepares them, then handed to the layout's owner). The restored settings
/// name the layout's state and journal directories and `policy.toml` beside them;
/// everything else in them is as it was backed up.
pub fn restore(
    from: &Path,
    passphrase: &Secret<String>,
    layout: &Layout,
) -> Result<Summary, BackupError> {
    let io = |path: &Path| {
        let path = path.display().to_string();
        move |source| BackupError::Io { path, source }
    };
    let bytes = std::fs::read(from).map_err(io(from))?;
    if bytes.len() > MAX_BACKUP_BYTES + HEADER_LEN + 16 {
        return Err(BackupError::TooLarge);
    }
    let plain = crate::sealed::open(MAGIC, &bytes, passphrase)?;
    let bad = |m: &str| BackupError::Contents(m.to_owned());
    let mlen = u32::from_le_bytes(
        plain
            .get(..4)
            .ok_or_else(|| bad("too short"))?
            .try_into()
            .map_err(|_| bad("too short"))?,
    ) as usize;
    let manifest: Manifest = serde_json::from_slice(
        plain
            .get(4..4 + mlen)
            .ok_or_else(|| bad("manifest cut short"))?,
    )
    .map_err(|e| BackupError::Contents(e.to_string()))?;
    // Every file is checked, and found in the archive, before anything is written.
    let mut at = 4 + mlen;
    let mut restored: Vec<(PathBuf, u32, &[u8])> = Vec::with_capacity(manifest.files.len());
    let mut settings: Option<usize> = None;
    let mut total = 0u64;
    for e in &manifest.files {
        let (area, name) = e
            .path
            .split_once('/')
            .ok_or_else(|| bad("a file path without its area"))?;
        let safe = !name.is_empty() && !name.contains('/') && name != ".." && name != ".";
        let target = match (area, name) {
            _ if !safe => None,
            ("config" | "state", "gateway.toml") => {
                settings = Some(restored.len());
                Some(layout.settings())
            }
            ("config", "policy.toml") => Some(layout.policy()),
            ("state", _) => Some(layout.state_dir.join(name)),
            ("journal", _) => Some(layout.journal_dir.join(name)),
            _ => None,
        }
        .ok_or_else(|| BackupError::Contents(format!("refusing the path {:?}", e.path)))?;
        let len = usize::try_from(e.len).map_err(|_| bad("a file too large"))?;
        let data = plain
            .get(at..at.saturating_add(len))
            .ok_or_else(|| bad("a file cut short"))?;
        at += len;
        restored.push((target, e.mode & 0o777, data));
        total += e.len;
    }
    let settings = settings.ok_or_else(|| bad("no gateway.toml"))?;
    let settings_text =
        std::str::from_utf8(restored[settings].2).map_err(|_| bad("gateway.toml is not UTF-8"))?;
    // A backup from before the configuration's area kept the policy under `state/`, by
    // the name the settings give it: it goes beside the settings as policy.toml.
    if !manifest
        .files
        .iter()
        .any(|e| e.path == "config/policy.toml")
    {
        let old_policy = layout.state_dir.join(policy_name(settings_text)?);
        for (target, _, _) in &mut restored {
            if *target == old_policy {
                *target = layout.policy();
            }
        }
    }
    let settings_text = point_at(settings_text, layout)?;
    restored[settings].2 = settings_text.as_bytes();

    layout.prepare()?;
    if !layout.journal_dir.exists() {
        std::fs::create_dir_all(&layout.journal_dir).map_err(io(&layout.journal_dir))?;
        std::fs::set_permissions(&layout.journal_dir, std::fs::Permissions::from_mode(0o700))
            .map_err(io(&layout.journal_dir))?;
    }
    for (target, mode, data) in &restored {
        write_private_file(target, data, Existing::Refuse).map_err(io(target))?;
        std::fs::set_permissions(target, std::fs::Permissions::from_mode(*mode))
            .map_err(io(target))?;
    }
    layout.hand_over()?;
    Ok(Summary {
        files: manifest.files.len(),
        bytes: total,
    })
}

/// The file name of `[policy] file` in `settings` (`policy.toml` by default).
fn policy_name(settings: &str) -> Result<String, BackupError> {
    let doc: toml_edit::DocumentMut = settings
        .parse()
        .map_err(|e| BackupError::Contents(format!("gateway.toml: {e}")))?;
    let file = doc
        .get("policy")
        .and_then(|p| p.get("file"))
        .and_then(|f| f.as_str())
        .unwrap_or("policy.toml");
    Ok(Path::new(file)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "policy.toml".into()))
}

/// The restored settings name the layout's directories and the policy beside them;
/// their comments and every other value are kept.
fn point_at(settings: &str, layout: &Layout) -> Result<String, BackupError> {
    let mut doc: toml_edit::DocumentMut = settings
        .parse()
        .map_err(|e| BackupError::Contents(format!("gateway.toml: {e}")))?;
    for (table, key, value) in [
        ("gateway", "state_dir", layout.state_dir_setting()),
        ("policy", "file", "policy.toml".to_owned()),
        ("journal", "dir", layout.journal_dir_setting()),
    ] {
        let section = doc
            .entry(table)
            .or_insert_with(toml_edit::table)
            .as_table_like_mut()
            .ok_or_else(|| {
                BackupError::Contents(format!("gateway.toml: [{table}] is not a table"))
            })?;
        match section.get_mut(key) {
            // The value changes; its comments stay.
            Some(item) if item.is_value() => {
                let decor = item.as_value().map(|v| v.decor().clone());
                *item = toml_edit::value(value);
                if let (Some(decor), Some(v)) = (decor, item.as_value_mut()) {
                    *v.decor_mut() = decor;
                }
            }
            _ => {
                section.insert(key, toml_edit::value(value));
            }
        }
    }
    Ok(doc.to_string())
}

//! Secrets in memory and on disk.
//!
//! [`Secret`] keeps a value out of `Debug` output and zeroes it when dropped;
//! [`write_private_file`] is the one place ztgw writes a secret to disk: mode 0600 on
//! Unix; on Windows the file takes its directory's access list, which the agent's
//! installer restricts to SYSTEM and Administrators.

use std::fmt;
use std::fs::{self, OpenOptions};
use std::io::{self, Write as _};
#[cfg(unix)]
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::Path;

use zeroize::{Zeroize, ZeroizeOnDrop};

/// A secret value (private key, token, pre-shared key). Its `Debug` prints
/// `Secret(<redacted>)` and its memory is zeroed on drop.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct Secret<T: Zeroize>(T);

impl<T: Zeroize> Secret<T> {
    pub fn new(value: T) -> Self {
        Self(value)
    }

    /// The secret itself. Call sites are where secrets flow: keep them few.
    pub fn expose(&self) -> &T {
        &self.0
    }
}

impl<T: Zeroize> fmt::Debug for Secret<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// What [`write_private_file`] does when the file exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Existing {
    /// Fail with `AlreadyExists`: the file is never touched.
    Refuse,
    /// Replace it atomically (write a temporary file beside it, fsync, rename).
    Replace,
}

/// Writes `contents` to `path` with mode 0600 from the moment the file exists (on Unix).
pub fn write_private_file(path: &Path, contents: &[u8], existing: Existing) -> io::Result<()> {
    match existing {
        Existing::Refuse => write_new(path, contents),
        Existing::Replace => {
            let file_name = path.file_name().ok_or_else(|| {
                io::Error::new(io::ErrorKind::InvalidInput, "path has no file name")
            })?;
            // A temporary of this writer's own: two writers of the same file never
            // share one (the last rename wins, and neither sees the other's half).
            static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
            let mut tmp_name = std::ffi::OsString::from(".");
            tmp_name.push(file_name);
            tmp_name.push(format!(
                ".{}.{}.tmp",
                std::process::id(),
                NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            ));
            let tmp = path.with_file_name(tmp_name);
            write_new(&tmp, contents)?;
            if let Err(e) = fs::rename(&tmp, path) {
                let _ = fs::remove_file(&tmp);
                return Err(e);
            }
            // A directory is opened and synced on Unix only (Windows opens no directory
            // as a file, and its renames are durable once the call returns).
            #[cfg(unix)]
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                fs::File::open(dir)?.sync_all()?;
            }
            Ok(())
        }
    }
}

/// Reads a one-line secret an operator put in a file (a password, a token): readable by
/// its owner only (on Unix), at most `max_bytes`, not empty; the line ending is dropped.
/// `Err` says what is wrong, for the operator.
pub fn read_private_file(path: &Path, max_bytes: u64) -> Result<Secret<String>, String> {
    let meta = fs::metadata(path).map_err(|e| e.to_string())?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        if meta.permissions().mode() & 0o077 != 0 {
            return Err("the file must be readable by its owner only (chmod 0600)".into());
        }
    }
    if meta.len() > max_bytes {
        return Err(format!(
            "larger than {max_bytes} bytes: not a one-line secret"
        ));
    }
    let text = zeroize::Zeroizing::new(fs::read_to_string(path).map_err(|e| e.to_string())?);
    let value = text.trim_end_matches(['\n', '\r']).to_owned();
    if value.is_empty() {
        return Err("the file is empty".into());
    }
    Ok(Secret::new(value))
}

fn write_new(path: &Path, contents: &[u8]) -> io::Result<()> {
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    options.mode(0o600);
    let mut file = options.open(path)?;
    file.write_all(contents)?;
    file.sync_all()
}

#[cfg(all(test, unix))]
mod tests {
    use std::os::unix::fs::PermissionsExt as _;

    use super::*;

    #[test]
    fn debug_is_redacted() {
        let s = Secret::new(String::from("hunter2"));
        let shown = format!("{s:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert_eq!(shown, "Secret(<redacted>)");
    }

    #[test]
    fn operator_secrets_are_read_only_from_owner_only_files() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("token");
        write_private_file(&path, b"s3cret\n", Existing::Refuse).expect("write");
        assert_eq!(
            read_private_file(&path, 64).expect("read").expose(),
            "s3cret"
        );
        assert!(read_private_file(&path, 3).is_err(), "too large");
        fs::set_permissions(&path, fs::Permissions::from_mode(0o640)).expect("chmod");
        let e = read_private_file(&path, 64).expect_err("group-readable");
        assert!(e.contains("chmod 0600"), "{e}");
        let empty = dir.path().join("empty");
        write_private_file(&empty, b"\n", Existing::Refuse).expect("write");
        assert_eq!(
            read_private_file(&empty, 64).err().as_deref(),
            Some("the file is empty")
        );
    }

    #[test]
    fn private_files_are_0600_and_refuse_or_replace() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("key.pem");
        write_private_file(&path, b"one", Existing::Refuse).expect("first write");
        let mode = fs::metadata(&path).expect("meta").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let err = write_private_file(&path, b"two", Existing::Refuse).expect_err("must refuse");
        assert_eq!(err.kind(), io::ErrorKind::AlreadyExists);
        assert_eq!(fs::read(&path).expect("read"), b"one");
        write_private_file(&path, b"three", Existing::Replace).expect("replace");
        assert_eq!(fs::read(&path).expect("read"), b"three");
        let mode = fs::metadata(&path).expect("meta").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
}

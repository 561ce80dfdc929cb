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

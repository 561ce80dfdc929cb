//! The journal's files: segments created with the auditors' group and mode, whole new
//! files written and synced, and the directory synced after a rename or removal.

use std::fs::{File, OpenOptions};
use std::io::{self, Write as _};
use std::os::unix::fs::{MetadataExt as _, OpenOptionsExt as _, PermissionsExt as _};
use std::path::Path;

/// A new segment, readable by the auditors' group when there is one: its mode is set
/// after creation, so the service's umask (`UMask=0077` in the shipped unit) cannot take
/// the group's read access away.
pub(super) fn create_segment(path: &Path, group: Option<u32>) -> io::Result<File> {
    let file = OpenOptions::new()
        .create_new(true)
        .append(true)
        .mode(0o600)
        .open(path)?;
    segment_access(&file, group)?;
    Ok(file)
}

/// Gives a segment to the auditors' group (0640), or keeps it to the owner (0600).
pub(super) fn segment_access(file: &File, group: Option<u32>) -> io::Result<()> {
    if let Some(gid) = group
        && file.metadata()?.gid() != gid
    {
        std::os::unix::fs::fchown(file, None, Some(gid))?;
    }
    file.set_permissions(std::fs::Permissions::from_mode(if group.is_some() {
        0o640
    } else {
        0o600
    }))
}

pub(super) fn write_new(path: &Path, bytes: &[u8], mode: u32) -> io::Result<()> {
    let mut f = OpenOptions::new()
        .create_new(true)
        .write(true)
        .mode(mode)
        .open(path)?;
    f.write_all(bytes)?;
    f.sync_all()
}

pub(super) fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

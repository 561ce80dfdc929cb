//! Where a gateway's files go, for `ztgw init` and `ztgw restore`.
//!
//! Three places, each with its own owner:
//! - the **configuration** (`gateway.toml`, `policy.toml`): written by the operator, only
//!   read by the service (`/etc/ztgw`, root's, in the packaged layout);
//! - the **state** (CA, keys, registry, revocation list, overrides, admin socket): the
//!   service's own (`/var/lib/ztgw`, systemd's `StateDirectory`);
//! - the **journal**: written by the service, read by the auditors' group
//!   (`/var/log/ztgw/journal`).
//!
//! A single directory holding all three (`ztgw init --dir DIR` alone) is the layout of
//! the demo and of a gateway run by hand.

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};

/// The service account the state and the journal are given to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
}

impl Owner {
    /// The account `name` from `/etc/passwd`.
    pub fn lookup(name: &str) -> Result<Self, LayoutError> {
        let (uid, gid) = crate::accounts::user(name).ok_or_else(|| {
            LayoutError::Invalid(format!(
                "--owner {name}: no such user (the ztgw package creates the `ztgw` user)"
            ))
        })?;
        Ok(Self {
            name: name.to_owned(),
            uid,
            gid,
        })
    }
}

/// The directories of one gateway.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    /// `gateway.toml` and the policy.
    pub config_dir: PathBuf,
    /// Everything the service writes but the journal.
    pub state_dir: PathBuf,
    /// The journal's segments.
    pub journal_dir: PathBuf,
    /// Who the state and the journal belong to when it is not the caller.
    pub owner: Option<Owner>,
}

/// Why a layout cannot be prepared.
#[derive(Debug, thiserror::Error)]
pub enum LayoutError {
    #[error("{0} is not empty: ztgw never overwrites an existing state")]
    NotEmpty(String),
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("{0}")]
    Invalid(String),
}

impl Layout {
    /// Configuration, state and journal (`DIR/journal`) in one directory.
    pub fn single(dir: &Path) -> Self {
        Self {
            config_dir: dir.to_owned(),
            state_dir: dir.to_owned(),
            journal_dir: dir.join("journal"),
            owner: None,
        }
    }

    /// From the command line: `config_dir`, and the state and the journal where given
    /// (by default the state beside the configuration, the journal in the state).
    /// Relative paths are made absolute, since the settings name them.
    pub fn new(
        config_dir: &Path,
        state_dir: Option<&Path>,
        journal_dir: Option<&Path>,
        owner: Option<&str>,
    ) -> Result<Self, LayoutError> {
        let absolute = |p: &Path| {
            std::path::absolute(p).map_err(|source| LayoutError::Io {
                path: p.display().to_string(),
                source,
            })
        };
        let config_dir = absolute(config_dir)?;
        let state_dir = match state_dir {
            Some(p) => absolute(p)?,
            None => config_dir.clone(),
        };
        let journal_dir = match journal_dir {
            Some(p) => absolute(p)?,
            None => state_dir.join("journal"),
        };
        let layout = Self {
            config_dir,
            state_dir,
            journal_dir,
            owner: owner.map(Owner::lookup).transpose()?,
        };
        layout.check()?;
        Ok(layout)
    }

    fn check(&self) -> Result<(), LayoutError> {
        if self.journal_dir == self.state_dir || self.journal_dir == self.config_dir {
            return Err(LayoutError::Invalid(format!(
                "the journal needs a directory of its own, not {}",
                self.journal_dir.display()
            )));
        }
        if self.is_split()
            && (self.state_dir.starts_with(&self.config_dir)
                || self.config_dir.starts_with(&self.state_dir))
        {
            return Err(LayoutError::Invalid(format!(
                "the state directory {} and the configuration directory {} must not contain \
                 one another (the service may write the state, never the configuration)",
                self.state_dir.display(),
                self.config_dir.display()
            )));
        }
        Ok(())
    }

    /// Whether the configuration has a directory of its own.
    pub fn is_split(&self) -> bool {
        self.config_dir != self.state_dir
    }

    pub fn settings(&self) -> PathBuf {
        self.config_dir.join("gateway.toml")
    }

    pub fn policy(&self) -> PathBuf {
        self.config_dir.join("policy.toml")
    }

    /// `[gateway] state_dir` as the settings write it.
    pub fn state_dir_setting(&self) -> String {
        if self.is_split() {
            self.state_dir.display().to_string()
        } else {
            ".".into()
        }
    }

    /// `[journal] dir` as the settings write it.
    pub fn journal_dir_setting(&self) -> String {
        if self.journal_dir == self.state_dir.join("journal") {
            "journal".into()
        } else {
            self.journal_dir.display().to_string()
        }
    }

    /// Makes the directories, which must be new or empty. A configuration directory of
    /// its own that exists keeps its owner and mode (the package made it root's and
    /// readable by the service's group); one made here is 0750, given to the owner's
    /// group. The state directory is 0700, or 0750 when it is the service's (the admin
    /// socket's group reaches the socket through it). The journal sets its own modes.
    pub fn prepare(&self) -> Result<(), LayoutError> {
        let config_existed = empty_or_new(&self.config_dir)?;
        if self.is_split() {
            empty_or_new(&self.state_dir)?;
            if !config_existed {
                set_mode(&self.config_dir, 0o750)?;
                if let Some(owner) = &self.owner {
                    chown(&self.config_dir, None, Some(owner.gid))?;
                }
            }
            let state_mode = if self.owner.is_some() { 0o750 } else { 0o700 };
            set_mode(&self.state_dir, state_mode)?;
        } else {
            set_mode(&self.config_dir, 0o700)?;
        }
        if !self.journal_dir.starts_with(&self.state_dir) {
            empty_or_new(&self.journal_dir)?;
        }
        Ok(())
    }

    /// Gives the state and the journal to the owner, once they are written: the state
    /// to the owner and its group, the journal to the owner, keeping the group the
    /// journal gave its files (the auditors'). Symbolic links are never followed. In the
    /// single layout the configuration is in the state, and goes with it.
    pub fn hand_over(&self) -> Result<(), LayoutError> {
        let Some(owner) = &self.owner else {
            return Ok(());
        };
        give(&self.state_dir, owner, &self.journal_dir)?;
        give_journal(&self.journal_dir, owner.uid)
    }
}

/// Whether `dir` existed (it must then be empty); creates it otherwise.
fn empty_or_new(dir: &Path) -> Result<bool, LayoutError> {
    let io = |source| LayoutError::Io {
        path: dir.display().to_string(),
        source,
    };
    match std::fs::symlink_metadata(dir) {
        Ok(meta) if meta.file_type().is_symlink() => Err(LayoutError::Invalid(format!(
            "{} is a symbolic link: name the directory itself",
            dir.display()
        ))),
        Ok(meta) if !meta.is_dir() => Err(LayoutError::Invalid(format!(
            "{} is not a directory",
            dir.display()
        ))),
        Ok(_) => {
            if std::fs::read_dir(dir).map_err(io)?.next().is_some() {
                return Err(LayoutError::NotEmpty(dir.display().to_string()));
            }
            Ok(true)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::create_dir_all(dir).map_err(io)?;
            Ok(false)
        }
        Err(e) => Err(io(e)),
    }
}

fn set_mode(path: &Path, mode: u32) -> Result<(), LayoutError> {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).map_err(|source| {
        LayoutError::Io {
            path: path.display().to_string(),
            source,
        }
    })
}

fn chown(path: &Path, uid: Option<u32>, gid: Option<u32>) -> Result<(), LayoutError> {
    std::os::unix::fs::lchown(path, uid, gid).map_err(|source| LayoutError::Io {
        path: format!("{} (giving it to its owner needs root)", path.display()),
        source,
    })
}

/// `dir` and what it holds to `owner`, but `journal` (handed over by itself).
fn give(dir: &Path, owner: &Owner, journal: &Path) -> Result<(), LayoutError> {
    chown(dir, Some(owner.uid), Some(owner.gid))?;
    for entry in read_dir(dir)? {
        if entry == journal {
            continue;
        }
        let meta = std::fs::symlink_metadata(&entry).map_err(|source| LayoutError::Io {
            path: entry.display().to_string(),
            source,
        })?;
        if meta.is_dir() {
            give(&entry, owner, journal)?;
        } else {
            chown(&entry, Some(owner.uid), Some(owner.gid))?;
        }
    }
    Ok(())
}

fn give_journal(dir: &Path, uid: u32) -> Result<(), LayoutError> {
    chown(dir, Some(uid), None)?;
    for entry in read_dir(dir)? {
        chown(&entry, Some(uid), None)?;
    }
    Ok(())
}

fn read_dir(dir: &Path) -> Result<Vec<PathBuf>, LayoutError> {
    let io = |source| LayoutError::Io {
        path: dir.display().to_string(),
        source,
    };
    std::fs::read_dir(dir)
        .map_err(io)?
        .map(|e| e.map(|e| e.path()).map_err(io))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_single_layout_keeps_everything_together() {
        let l = Layout::new(Path::new("/srv/gw"), None, None, None).expect("layout");
        assert!(!l.is_split());
        assert_eq!(l.state_dir_setting(), ".");
        assert_eq!(l.journal_dir_setting(), "journal");
        assert_eq!(l.journal_dir, Path::new("/srv/gw/journal"));
    }

    #[test]
    fn the_packaged_layout_names_its_directories() {
        let l = Layout::new(
            Path::new("/etc/ztgw"),
            Some(Path::new("/var/lib/ztgw")),
            Some(Path::new("/var/log/ztgw/journal")),
            None,
        )
        .expect("layout");
        assert!(l.is_split());
        assert_eq!(l.state_dir_setting(), "/var/lib/ztgw");
        assert_eq!(l.journal_dir_setting(), "/var/log/ztgw/journal");
        assert_eq!(l.settings(), Path::new("/etc/ztgw/gateway.toml"));
    }

    #[test]
    fn nested_or_shared_directories_are_refused() {
        for (config, state, journal) in [
            ("/etc/ztgw", Some("/etc/ztgw/state"), None),
            ("/var/lib/ztgw/etc", Some("/var/lib/ztgw"), None),
            ("/etc/ztgw", Some("/var/lib/ztgw"), Some("/var/lib/ztgw")),
            ("/etc/ztgw", None, Some("/etc/ztgw")),
        ] {
            let e = Layout::new(
                Path::new(config),
                state.map(Path::new),
                journal.map(Path::new),
                None,
            )
            .expect_err("refused");
            assert!(matches!(e, LayoutError::Invalid(_)), "{e}");
        }
    }

    #[test]
    fn an_unknown_owner_is_refused_by_name() {
        let e = Layout::new(Path::new("/etc/x"), None, None, Some("no-such-user-ztgw"))
            .expect_err("refused");
        assert!(e.to_string().contains("no-such-user-ztgw"), "{e}");
    }

    #[test]
    fn prepare_refuses_a_directory_that_is_not_empty_or_is_a_link() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let config = tmp.path().join("etc");
        std::fs::create_dir(&config).expect("mkdir");
        std::fs::write(config.join("gateway.toml"), "").expect("write");
        let l = Layout::new(&config, Some(&tmp.path().join("state")), None, None).expect("l");
        assert!(matches!(l.prepare(), Err(LayoutError::NotEmpty(_))));

        let target = tmp.path().join("target");
        std::fs::create_dir(&target).expect("mkdir");
        let link = tmp.path().join("link");
        std::os::unix::fs::symlink(&target, &link).expect("symlink");
        let l = Layout::new(&link, None, None, None).expect("l");
        assert!(matches!(l.prepare(), Err(LayoutError::Invalid(_))));
    }

    #[test]
    fn an_existing_configuration_directory_keeps_its_mode() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let config = tmp.path().join("etc");
        std::fs::create_dir(&config).expect("mkdir");
        set_mode(&config, 0o751).expect("chmod");
        let state = tmp.path().join("state");
        let l = Layout::new(&config, Some(&state), None, None).expect("l");
        l.prepare().expect("prepare");
        let mode = |p: &Path| std::fs::metadata(p).expect("meta").permissions().mode() & 0o777;
        assert_eq!(mode(&config), 0o751);
        assert_eq!(mode(&state), 0o700);
    }
}

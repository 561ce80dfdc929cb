//! The screen lock as the people using the laptop have it: for each logged-in user (from
//! systemd-logind's `/run/systemd/sessions/*`; every account with a home under `/home`
//! when nobody is logged in), GNOME's settings as dconf resolves them — a value the
//! system locks (`/etc/dconf/db/*.d/locks`), else the user's own (`~/.config/dconf/user`),
//! else the system's, else the schema's default — and KDE's `~/.config/kscreenlockerrc`
//! (with KDE's defaults). The weakest user counts.

use std::path::{Path, PathBuf};

use super::gvdb;
use crate::report::{Fact, ScreenLock};

const LOCK_ENABLED: &str = "/org/gnome/desktop/screensaver/lock-enabled";
const IDLE_DELAY: &str = "/org/gnome/desktop/session/idle-delay";
const SCHEMAS: &str = "usr/share/glib-2.0/schemas";
/// Most accounts looked at.
const MAX_USERS: usize = 256;

/// One user's lock, and where it was read.
#[derive(Debug, Clone, PartialEq, Eq)]
struct UserLock {
    user: String,
    lock: ScreenLock,
    source: String,
}

pub fn screen_lock(root: &Path) -> Fact<ScreenLock> {
    let users = users(root);
    if users.is_empty() {
        return Fact::unknown("no user account with a home directory was found");
    }
    let gnome = root
        .join(SCHEMAS)
        .join("org.gnome.desktop.screensaver.gschema.xml");
    let gnome = gnome.exists().then(|| gnome_system(root));
    let kde = [
        "usr/bin/plasmashell",
        "usr/bin/startplasma-wayland",
        "usr/bin/startplasma-x11",
    ]
    .iter()
    .any(|p| root.join(p).exists());
    let mut found: Vec<UserLock> = Vec::new();
    for (user, home) in &users {
        if let Some(system) = &gnome {
            match gnome_user(root, home, system) {
                Ok(lock) => found.push(UserLock {
                    user: user.clone(),
                    lock,
                    source: "GNOME settings (dconf)".into(),
                }),
                Err(why) => return Fact::unknown(format!("{user}'s GNOME settings: {why}")),
            }
        }
        let kde_file = home.join(".config/kscreenlockerrc");
        if kde || kde_file.exists() {
            found.push(UserLock {
                user: user.clone(),
                lock: kde_user(&kde_file),
                source: "KDE settings (kscreenlockerrc)".into(),
            });
        }
    }
    // The weakest: a lock off, else the longest delay.
    let weakest = found.into_iter().min_by_key(|u| {
        (
            u.lock.enabled,
            std::cmp::Reverse(u.lock.idle_delay_secs.unwrap_or(u32::MAX)),
        )
    });
    match weakest {
        Some(u) => Fact::known(u.lock, format!("{} of {}", u.source, u.user)),
        None => {
            Fact::unknown("no desktop whose screen lock can be read (GNOME or KDE) is installed")
        }
    }
}

/// The logged-in users, or every account with a home under /home.
fn users(root: &Path) -> Vec<(String, PathBuf)> {
    let passwd = super::text(&root.join("etc/passwd")).unwrap_or_default();
    let accounts: Vec<(String, u32, PathBuf)> = passwd
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            let uid = f.get(2)?.parse().ok()?;
            let home = f.get(5)?.trim_start_matches('/');
            Some((f[0].to_owned(), uid, root.join(home)))
        })
        .take(10_000)
        .collect();
    let mut logged_in: Vec<u32> = std::fs::read_dir(root.join("run/systemd/sessions"))
        .map(|d| {
            d.filter_map(|e| e.ok())
                .take(MAX_USERS)
                .filter_map(|e| super::text(&e.path()))
                .filter(|t| t.lines().any(|l| l == "CLASS=user"))
                .filter_map(|t| {
                    t.lines()
                        .find_map(|l| l.strip_prefix("UID="))
                        .and_then(|u| u.parse().ok())
                })
                .collect()
        })
        .unwrap_or_default();
    logged_in.sort_unstable();
    logged_in.dedup();
    let chosen: Vec<(String, PathBuf)> = if logged_in.is_empty() {
        accounts
            .into_iter()
            .filter(|(_, uid, home)| {
                (1000..60_000).contains(uid) && home.starts_with(root.join("home")) && home.is_dir()
            })
            .map(|(n, _, h)| (n, h))
            .collect()
    } else {
        accounts
            .into_iter()
            .filter(|(_, uid, _)| logged_in.contains(uid))
            .map(|(n, _, h)| (n, h))
            .collect()
    };
    chosen.into_iter().take(MAX_USERS).collect()
}

/// What the system sets, and which of it users cannot change.
#[derive(Debug, Default)]
struct GnomeSystem {
    lock_enabled: Option<bool>,
    idle_delay: Option<u32>,
    locked: Vec<String>,
    default_enabled: Option<bool>,
    default_delay: Option<u32>,
}

fn gnome_system(root: &Path) -> GnomeSystem {
    let mut s = GnomeSystem {
        default_enabled: schema_default(root, "org.gnome.desktop.screensaver", "lock-enabled")
            .map(|d| d == "true"),
        default_delay: schema_default(root, "org.gnome.desktop.session", "idle-delay")
            .and_then(|d| d.trim_start_matches("uint32 ").parse().ok()),
        ..GnomeSystem::default()
    };
    let Ok(dbs) = std::fs::read_dir(root.join("etc/dconf/db")) else {
        return s;
    };
    for db in dbs
        .filter_map(|e| e.ok())
        .take(64)
        .filter(|e| e.path().is_dir())
    {
        for file in files(&db.path()) {
            keyfile(&file, &mut |key, value| match key.as_str() {
                LOCK_ENABLED => s.lock_enabled = Some(value == "true"),
                IDLE_DELAY => {
                    s.idle_delay = value.split_whitespace().last().and_then(|n| n.parse().ok())
                }
                _ => {}
            });
        }
        for lock in files(&db.path().join("locks")) {
            if let Some(text) = super::text(&lock) {
                s.locked.extend(
                    text.lines()
                        .map(str::trim)
                        .filter(|l| l.starts_with('/'))
                        .map(str::to_owned),
                );
            }
        }
    }
    s
}

fn gnome_user(root: &Path, home: &Path, system: &GnomeSystem) -> Result<ScreenLock, String> {
    let _ = root;
    let db = home.join(".config/dconf/user");
    let user = match std::fs::metadata(&db) {
        Ok(m) if m.len() > gvdb::MAX_BYTES as u64 => {
            return Err(format!(
                "{} is larger than a dconf database can be",
                db.display()
            ));
        }
        Ok(_) => gvdb::parse(&std::fs::read(&db).map_err(|e| e.to_string())?)
            .map_err(|e| e.to_string())?,
        Err(_) => Default::default(),
    };
    let locked = |k: &str| system.locked.iter().any(|l| l == k);
    let enabled = match user.get(LOCK_ENABLED) {
        Some(gvdb::Value::Bool(b)) if !locked(LOCK_ENABLED) => Some(*b),
        _ => system.lock_enabled.or(system.default_enabled),
    };
    let delay = match user.get(IDLE_DELAY) {
        Some(gvdb::Value::U32(n)) if !locked(IDLE_DELAY) => Some(*n),
        _ => system.idle_delay.or(system.default_delay),
    };
    let enabled =
        enabled.ok_or("neither the user, the system nor GNOME's schema sets lock-enabled")?;
    // An idle delay of 0 means the session never goes idle, so the lock never starts.
    Ok(ScreenLock {
        enabled: enabled && delay != Some(0),
        idle_delay_secs: delay.filter(|d| *d > 0),
    })
}

/// `<key name="NAME" …><default>VALUE</default>` in the schema's XML.
fn schema_default(root: &Path, schema: &str, key: &str) -> Option<String> {
    let text = super::text(&root.join(SCHEMAS).join(format!("{schema}.gschema.xml")))?;
    let at = text.find(&format!("<key name=\"{key}\""))?;
    let rest = &text[at..];
    let start = rest.find("<default>")? + "<default>".len();
    let end = rest[start..].find("</default>")? + start;
    Some(rest[start..end].trim().to_owned())
}

/// KDE's screen locker: `[Daemon] Autolock` (true) and `Timeout` in minutes (5).
fn kde_user(file: &Path) -> ScreenLock {
    let (mut autolock, mut minutes) = (true, 5u32);
    if let Some(text) = super::text(file) {
        let mut section = String::new();
        for line in text.lines().map(str::trim) {
            if line.starts_with('[') {
                section = line.to_owned();
            } else if section == "[Daemon]"
                && let Some((k, v)) = line.split_once('=')
            {
                match k.trim() {
                    "Autolock" => autolock = v.trim() != "false",
                    "Timeout" => minutes = v.trim().parse().unwrap_or(minutes),
                    _ => {}
                }
            }
        }
    }
    ScreenLock {
        enabled: autolock && minutes > 0,
        idle_delay_secs: (minutes > 0).then(|| minutes.saturating_mul(60)),
    }
}

fn files(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .map(|d| {
            let mut f: Vec<PathBuf> = d
                .filter_map(|e| e.ok())
                .map(|e| e.path())
                .filter(|p| p.is_file())
                .take(1024)
                .collect();
            f.sort();
            f
        })
        .unwrap_or_default()
}

/// A dconf keyfile's `[dir] key=value` lines, as full keys.
fn keyfile(file: &Path, each: &mut dyn FnMut(String, &str)) {
    let Some(text) = super::text(file) else {
        return;
    };
    let mut section = String::new();
    for line in text.lines().map(str::trim) {
        if line.starts_with('[') {
            section = line.trim_matches(['[', ']']).trim_matches('/').to_owned();
        } else if let Some((k, v)) = line.split_once('=') {
            each(format!("/{section}/{}", k.trim()), v.trim());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOCK_300: &[u8] = include_bytes!("../../tests/fixtures/dconf/user-lock-300");
    const LOCK_OFF: &[u8] = include_bytes!("../../tests/fixtures/dconf/user-lock-off");

    fn write(root: &Path, rel: &str, bytes: &[u8]) {
        let p = root.join(rel);
        std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        std::fs::write(p, bytes).expect("write");
    }

    fn gnome(root: &Path) {
        write(
            root,
            "usr/share/glib-2.0/schemas/org.gnome.desktop.screensaver.gschema.xml",
            b"<schemalist><schema id=\"org.gnome.desktop.screensaver\"><key name=\"lock-enabled\" type=\"b\">\n  <default>true</default></key></schema></schemalist>",
        );
        write(
            root,
            "usr/share/glib-2.0/schemas/org.gnome.desktop.session.gschema.xml",
            b"<schemalist><schema id=\"org.gnome.desktop.session\"><key name=\"idle-delay\" type=\"u\">\n  <default>300</default></key></schema></schemalist>",
        );
        write(
            root,
            "etc/passwd",
            b"root:x:0:0:root:/root:/bin/bash\namina:x:1000:1000:Amina:/home/amina:/bin/bash\nkarim:x:1001:1001::/home/karim:/bin/bash\n",
        );
        std::fs::create_dir_all(root.join("home/amina")).expect("home");
        std::fs::create_dir_all(root.join("home/karim")).expect("home");
        write(
            root,
            "run/systemd/sessions/2",
            b"UID=1000\nUSER=amina\nACTIVE=1\nTYPE=wayland\nCLASS=user\n",
        );
    }

    #[test]
    fn the_logged_in_users_own_gnome_settings() {
        let t = tempfile::tempdir().expect("tempdir");
        let r = t.path();
        gnome(r);
        // Nothing set anywhere: GNOME's own defaults.
        let f = screen_lock(r);
        assert_eq!(
            f.value(),
            Some(&ScreenLock {
                enabled: true,
                idle_delay_secs: Some(300)
            }),
            "{f:?}"
        );
        // The user turned the lock off; karim, not logged in, does not count.
        write(r, "home/amina/.config/dconf/user", LOCK_OFF);
        write(r, "home/karim/.config/dconf/user", LOCK_300);
        let f = screen_lock(r);
        assert_eq!(f.value().map(|l| l.enabled), Some(false), "{f:?}");
        let Fact::Known { source, .. } = &f else {
            panic!()
        };
        assert!(source.contains("amina"), "{source}");
        // The system locks the key: the user's choice no longer counts.
        write(
            r,
            "etc/dconf/db/local.d/00-lock",
            b"[org/gnome/desktop/screensaver]\nlock-enabled=true\n",
        );
        write(
            r,
            "etc/dconf/db/local.d/locks/lock",
            b"/org/gnome/desktop/screensaver/lock-enabled\n",
        );
        assert_eq!(screen_lock(r).value().map(|l| l.enabled), Some(true));
        // A damaged user database is unknown, with its reason.
        write(r, "home/amina/.config/dconf/user", b"GVariant\0\0");
        let f = screen_lock(r);
        assert!(
            matches!(&f, Fact::Unknown { reason } if reason.contains("amina")),
            "{f:?}"
        );
    }

    #[test]
    fn nobody_logged_in_means_every_account_and_the_weakest_counts() {
        let t = tempfile::tempdir().expect("tempdir");
        let r = t.path();
        gnome(r);
        std::fs::remove_dir_all(r.join("run")).expect("rm");
        write(r, "home/amina/.config/dconf/user", LOCK_300);
        write(r, "home/karim/.config/dconf/user", LOCK_OFF);
        assert_eq!(screen_lock(r).value().map(|l| l.enabled), Some(false));
    }

    #[test]
    fn kde_settings_and_defaults() {
        let t = tempfile::tempdir().expect("tempdir");
        let r = t.path();
        write(
            r,
            "etc/passwd",
            b"amina:x:1000:1000::/home/amina:/bin/bash\n",
        );
        write(r, "usr/bin/plasmashell", b"");
        std::fs::create_dir_all(r.join("home/amina")).expect("home");
        assert_eq!(
            screen_lock(r).value(),
            Some(&ScreenLock {
                enabled: true,
                idle_delay_secs: Some(300)
            })
        );
        write(
            r,
            "home/amina/.config/kscreenlockerrc",
            b"[Daemon]\nAutolock=true\nTimeout=20\n",
        );
        assert_eq!(
            screen_lock(r).value().and_then(|l| l.idle_delay_secs),
            Some(1200)
        );
        write(
            r,
            "home/amina/.config/kscreenlockerrc",
            b"[Daemon]\nAutolock=false\n",
        );
        assert_eq!(screen_lock(r).value().map(|l| l.enabled), Some(false));
    }

    #[test]
    fn no_desktop_is_unknown() {
        let t = tempfile::tempdir().expect("tempdir");
        let r = t.path();
        assert!(screen_lock(r).value().is_none());
        write(
            r,
            "etc/passwd",
            b"amina:x:1000:1000::/home/amina:/bin/bash\n",
        );
        std::fs::create_dir_all(r.join("home/amina")).expect("home");
        let f = screen_lock(r);
        assert!(
            matches!(&f, Fact::Unknown { reason } if reason.contains("GNOME or KDE")),
            "{f:?}"
        );
    }
}

//! The operating system's users and groups, as far as ztgw needs them.

/// The id of group `name` from `/etc/group`, if it exists.
pub fn group_id(name: &str) -> Option<u32> {
    let text = std::fs::read_to_string("/etc/group").ok()?;
    text.lines().find_map(|line| {
        let mut fields = line.split(':');
        (fields.next()? == name).then_some(())?;
        fields.nth(1)?.parse().ok()
    })
}

/// Whether the user `uid`, whose primary group is `gid`, belongs to group `name`: as its
/// primary group, or listed as a member in `/etc/group`.
pub fn in_group(uid: u32, gid: u32, name: &str) -> bool {
    let Ok(text) = std::fs::read_to_string("/etc/group") else {
        return false;
    };
    let user = user_name(uid);
    text.lines().any(|line| {
        let fields: Vec<&str> = line.split(':').collect();
        fields.len() >= 4
            && fields[0] == name
            && (fields[2].parse::<u32>().ok() == Some(gid)
                || user
                    .as_deref()
                    .is_some_and(|u| fields[3].split(',').any(|m| m == u)))
    })
}

/// The name of user `uid` from `/etc/passwd`, if it has one.
pub fn user_name(uid: u32) -> Option<String> {
    let text = std::fs::read_to_string("/etc/passwd").ok()?;
    text.lines().find_map(|line| {
        let mut fields = line.split(':');
        let name = fields.next()?;
        (fields.nth(1)?.parse::<u32>().ok()? == uid).then(|| name.to_owned())
    })
}

/// The user `name` from `/etc/passwd`: its id and its primary group's.
pub fn user(name: &str) -> Option<(u32, u32)> {
    let text = std::fs::read_to_string("/etc/passwd").ok()?;
    text.lines().find_map(|line| {
        let mut fields = line.split(':');
        (fields.next()? == name).then_some(())?;
        let uid = fields.nth(1)?.parse().ok()?;
        let gid = fields.next()?.parse().ok()?;
        Some((uid, gid))
    })
}

/// The real user id of this process.
pub fn current_uid() -> Option<u32> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_group_and_this_process() {
        assert_eq!(group_id("root"), Some(0));
        assert_eq!(group_id("no-such-group-ztgw"), None);
        assert_eq!(user_name(0).as_deref(), Some("root"));
        assert_eq!(user("root"), Some((0, 0)));
        assert_eq!(user("no-such-user-ztgw"), None);
        assert!(current_uid().is_some());
        assert!(in_group(0, 0, "root"), "by primary group");
        assert!(!in_group(65534, 65534, "root"));
    }
}

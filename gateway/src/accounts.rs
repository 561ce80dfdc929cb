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

/// The name of user `uid` from `/etc/passwd`, if it has one.
pub fn user_name(uid: u32) -> Option<String> {
    let text = std::fs::read_to_string("/etc/passwd").ok()?;
    text.lines().find_map(|line| {
        let mut fields = line.split(':');
        let name = fields.next()?;
        (fields.nth(1)?.parse::<u32>().ok()? == uid).then(|| name.to_owned())
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
        assert!(current_uid().is_some());
    }
}

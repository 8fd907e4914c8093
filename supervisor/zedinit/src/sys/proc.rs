//! Reading /proc: who our children are (for the final sweep when not PID 1) and which
//! session a process belongs to (to check notify senders).

/// The fields of /proc/<pid>/stat we use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stat {
    pub state: char,
    pub ppid: i32,
    pub pgrp: i32,
    pub session: i32,
}

/// Pids whose parent is `parent`, from /proc/<pid>/stat.
pub fn children_of(parent: i32) -> Vec<i32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| parent_of(*pid) == Some(parent))
        .collect()
}

/// Pids whose session is `sid`.
pub fn in_session(sid: i32) -> Vec<i32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| stat(*pid).is_some_and(|s| s.session == sid))
        .collect()
}

/// State, parent, process group and session of `pid`, if it still exists.
pub fn stat(pid: i32) -> Option<Stat> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is in parentheses and may itself hold spaces or ')'.
    let rest = &text[text.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    let state = fields.next()?.chars().next()?;
    let mut number = || fields.next()?.parse::<i32>().ok();
    Some(Stat {
        state,
        ppid: number()?,
        pgrp: number()?,
        session: number()?,
    })
}

/// The state letter and parent pid of `pid`.
pub fn stat_of(pid: i32) -> Option<(char, i32)> {
    stat(pid).map(|s| (s.state, s.ppid))
}

pub fn parent_of(pid: i32) -> Option<i32> {
    stat(pid).map(|s| s.ppid)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_our_own_stat() {
        let me = std::process::id() as i32;
        let s = stat(me).expect("own stat");
        assert_eq!(s.ppid, nix::unistd::getppid().as_raw());
        assert_eq!(s.pgrp, nix::unistd::getpgrp().as_raw());
        assert_eq!(s.session, nix::unistd::getsid(None).expect("sid").as_raw());
    }
}

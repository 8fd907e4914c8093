//! What to follow, decided from what was saved and what the directories hold now: plain
//! functions, no files touched (the tailer does what they say).
//!
//! A file is known by its identity (device, inode), not its name: rename rotation
//! (`a.log` → `a.log.1`, a new `a.log`) keeps the old file's identity under the new
//! name, so its unread end is still read, under the name it was followed as, before the
//! new `a.log` is read from its start.

use crate::state::{Identity, State};
use std::path::PathBuf;

/// A file seen in a watched directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    pub path: PathBuf,
    pub id: Identity,
    pub size: u64,
    /// Its name matches a pattern (otherwise it may only be a rotated file's new name).
    pub followed: bool,
}

/// Where reading a file starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    /// At this byte: where the last run left it, or 0 for a file new since.
    At(u64),
    /// At the start of its last N lines: the first start, like `tail -f`.
    LastLines(usize),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Follow {
    /// The name its lines are printed with.
    pub label: PathBuf,
    /// Where to open it now.
    pub path: PathBuf,
    pub start: Start,
    /// Rotated away from `label`: read to its end, then let go.
    pub rotated: bool,
}

#[derive(Debug, Default, PartialEq, Eq)]
pub struct Plan {
    pub follows: Vec<Follow>,
    /// What the user should know (printed on stderr): lost or truncated files.
    pub notes: Vec<String>,
}

/// The start: every file the last run followed, where it is now, from where it was left;
/// every other matching file from its start (new since the last run) or, on the first
/// start, from its last `first_lines` lines.
pub fn on_start(saved: Option<&State>, seen: &[Seen], first_lines: usize) -> Plan {
    let mut plan = Plan::default();
    let mut claimed = vec![false; seen.len()];
    for file in saved.map(|s| s.files.as_slice()).unwrap_or_default() {
        let found = seen
            .iter()
            .enumerate()
            .find(|(i, s)| s.id == file.id && !claimed[*i]);
        let Some((i, now)) = found else {
            plan.notes.push(format!(
                "{}: gone while logtail was stopped (removed, or rotated out of its \
                 directory); what it had after byte {} was not printed",
                file.path.display(),
                file.offset
            ));
            continue;
        };
        claimed[i] = true;
        let start = if now.size < file.offset {
            plan.notes.push(format!(
                "{}: shorter ({} bytes) than where it was left ({}): truncated while \
                 logtail was stopped; reading it from its start",
                now.path.display(),
                now.size,
                file.offset
            ));
            Start::At(0)
        } else {
            Start::At(file.offset)
        };
        plan.follows.push(if now.followed {
            // Where it was, or renamed to another name that is followed too.
            Follow {
                label: now.path.clone(),
                path: now.path.clone(),
                start,
                rotated: false,
            }
        } else {
            Follow {
                label: file.path.clone(),
                path: now.path.clone(),
                start,
                rotated: true,
            }
        });
    }
    for (i, now) in seen.iter().enumerate() {
        // A second name of a file already followed (a hard link) is not read twice.
        let same_file = plan
            .follows
            .iter()
            .any(|f| seen.iter().any(|s| s.path == f.path && s.id == now.id));
        if now.followed && !claimed[i] && !same_file {
            plan.follows.push(Follow {
                label: now.path.clone(),
                path: now.path.clone(),
                start: match saved {
                    Some(_) => Start::At(0),
                    None => Start::LastLines(first_lines),
                },
                rotated: false,
            });
        }
    }
    plan
}

/// A file being followed, as the rescan sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Held {
    pub label: PathBuf,
    pub id: Identity,
    pub rotated: bool,
}

/// What a rescan changes, in the order to apply it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// The held file `id` is no longer at its label (the name is missing or another
    /// file's): read it to its end, then let it go. (Identities, not labels, name held
    /// files: a rotated file and its successor share a label.)
    RotatedAway { id: Identity },
    /// The held file `id` now has another followed name: follow it as `to` from where
    /// it is.
    Renamed { id: Identity, to: PathBuf },
    /// A file not held: follow it from its start (it appeared while logtail runs).
    Open { path: PathBuf },
}

/// Compares the held files with the directories' followed files.
pub fn on_rescan(held: &[Held], seen: &[Seen]) -> Vec<Change> {
    let followed: Vec<&Seen> = seen.iter().filter(|s| s.followed).collect();
    let mut renamed = Vec::new();
    let mut opens = Vec::new();
    // Held files still at their name first, so that a second name of the same file (a
    // hard link) neither renames it nor opens it again.
    let mut kept: Vec<bool> = held
        .iter()
        .map(|h| !h.rotated && followed.iter().any(|s| s.id == h.id && s.path == h.label))
        .collect();
    let mut opened: Vec<Identity> = Vec::new();
    for now in &followed {
        match held.iter().position(|h| h.id == now.id) {
            Some(i) if kept[i] => {}
            Some(i) => {
                kept[i] = true;
                renamed.push(Change::Renamed {
                    id: now.id,
                    to: now.path.clone(),
                });
            }
            None if opened.contains(&now.id) => {}
            None => {
                opened.push(now.id);
                opens.push(Change::Open {
                    path: now.path.clone(),
                });
            }
        }
    }
    let mut changes: Vec<Change> = held
        .iter()
        .zip(&kept)
        .filter(|(h, kept)| !h.rotated && !**kept)
        .map(|(h, _)| Change::RotatedAway { id: h.id })
        .collect();
    changes.extend(renamed);
    changes.extend(opens);
    changes
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::{Saved, VERSION};

    fn id(ino: u64) -> Identity {
        Identity {
            dev: 1,
            ino,
            born: 0,
        }
    }

    fn seen(path: &str, ino: u64, size: u64) -> Seen {
        Seen {
            path: path.into(),
            id: id(ino),
            size,
            followed: path.ends_with(".log"),
        }
    }

    fn state(files: &[(&str, u64, u64, bool)]) -> State {
        State {
            version: VERSION,
            clean: true,
            files: files
                .iter()
                .map(|(path, ino, offset, rotated)| Saved {
                    path: (*path).into(),
                    id: id(*ino),
                    offset: *offset,
                    rotated: *rotated,
                })
                .collect(),
        }
    }

    fn follow(label: &str, path: &str, start: Start, rotated: bool) -> Follow {
        Follow {
            label: label.into(),
            path: path.into(),
            start,
            rotated,
        }
    }

    #[test]
    fn the_first_start_shows_each_files_last_lines() {
        let plan = on_start(
            None,
            &[seen("/l/a.log", 1, 10), seen("/l/a.log.1", 2, 5)],
            10,
        );
        assert_eq!(
            plan.follows,
            vec![follow("/l/a.log", "/l/a.log", Start::LastLines(10), false)]
        );
        assert!(plan.notes.is_empty());
    }

    #[test]
    fn a_restart_goes_on_where_it_left_and_reads_new_files_whole() {
        let saved = state(&[("/l/a.log", 1, 7, false)]);
        let plan = on_start(
            Some(&saved),
            &[seen("/l/a.log", 1, 10), seen("/l/b.log", 3, 4)],
            10,
        );
        assert_eq!(
            plan.follows,
            vec![
                follow("/l/a.log", "/l/a.log", Start::At(7), false),
                follow("/l/b.log", "/l/b.log", Start::At(0), false),
            ]
        );
    }

    #[test]
    fn a_file_rotated_while_stopped_is_finished_under_its_old_name_then_the_new_one_read() {
        let saved = state(&[("/l/a.log", 1, 7, false)]);
        let plan = on_start(
            Some(&saved),
            &[seen("/l/a.log", 9, 3), seen("/l/a.log.1", 1, 10)],
            10,
        );
        assert_eq!(
            plan.follows,
            vec![
                follow("/l/a.log", "/l/a.log.1", Start::At(7), true),
                follow("/l/a.log", "/l/a.log", Start::At(0), false),
            ]
        );
    }

    #[test]
    fn gone_and_truncated_files_are_reported() {
        let saved = state(&[("/l/gone.log", 5, 7, false), ("/l/a.log", 1, 70, false)]);
        let plan = on_start(Some(&saved), &[seen("/l/a.log", 1, 10)], 10);
        assert_eq!(
            plan.follows,
            vec![follow("/l/a.log", "/l/a.log", Start::At(0), false)]
        );
        assert_eq!(plan.notes.len(), 2);
        assert!(
            plan.notes[0].contains("/l/gone.log: gone"),
            "{:?}",
            plan.notes
        );
        assert!(plan.notes[1].contains("truncated"), "{:?}", plan.notes);
    }

    #[test]
    fn a_new_file_on_a_reused_inode_is_not_taken_for_the_removed_one() {
        let saved = state(&[("/l/old.log", 1, 7, false)]);
        let mut reborn = seen("/l/new.log", 1, 10);
        reborn.id.born = 42;
        let plan = on_start(Some(&saved), &[reborn], 10);
        assert_eq!(
            plan.follows,
            vec![follow("/l/new.log", "/l/new.log", Start::At(0), false)]
        );
        assert!(
            plan.notes[0].contains("/l/old.log: gone"),
            "{:?}",
            plan.notes
        );
    }

    #[test]
    fn a_hard_link_is_followed_once() {
        let plan = on_start(
            None,
            &[seen("/l/a.log", 1, 10), seen("/l/b.log", 1, 10)],
            10,
        );
        assert_eq!(
            plan.follows,
            vec![follow("/l/a.log", "/l/a.log", Start::LastLines(10), false)]
        );
    }

    #[test]
    fn a_rename_to_another_followed_name_keeps_the_offset() {
        let saved = state(&[("/l/a.log", 1, 7, false)]);
        let plan = on_start(Some(&saved), &[seen("/l/b.log", 1, 10)], 10);
        assert_eq!(
            plan.follows,
            vec![follow("/l/b.log", "/l/b.log", Start::At(7), false)]
        );
    }

    fn held(label: &str, ino: u64, rotated: bool) -> Held {
        Held {
            label: label.into(),
            id: id(ino),
            rotated,
        }
    }

    #[test]
    fn rescan_sees_a_rename_rotation() {
        let changes = on_rescan(
            &[held("/l/a.log", 1, false)],
            &[seen("/l/a.log", 2, 0), seen("/l/a.log.1", 1, 10)],
        );
        assert_eq!(
            changes,
            vec![
                Change::RotatedAway { id: id(1) },
                Change::Open {
                    path: "/l/a.log".into()
                },
            ]
        );
        // Moved away, nothing new yet.
        assert_eq!(
            on_rescan(&[held("/l/a.log", 1, false)], &[seen("/l/a.log.1", 1, 10)]),
            vec![Change::RotatedAway { id: id(1) }]
        );
    }

    #[test]
    fn rescan_follows_a_hard_linked_file_once() {
        let held = [held("/l/a.log", 1, false)];
        assert_eq!(
            on_rescan(&held, &[seen("/l/a.log", 1, 10), seen("/l/b.log", 1, 10)]),
            vec![]
        );
        assert_eq!(
            on_rescan(&[], &[seen("/l/a.log", 1, 10), seen("/l/b.log", 1, 10)]),
            vec![Change::Open {
                path: "/l/a.log".into()
            }]
        );
    }

    #[test]
    fn rescan_changes_nothing_when_nothing_moved() {
        let held = [held("/l/a.log", 1, false), held("/l/a.log", 5, true)];
        assert_eq!(
            on_rescan(&held, &[seen("/l/a.log", 1, 10), seen("/l/a.log.1", 5, 1)]),
            vec![]
        );
    }

    #[test]
    fn rescan_follows_a_renamed_file_and_a_rotated_one_that_came_back() {
        assert_eq!(
            on_rescan(&[held("/l/a.log", 1, false)], &[seen("/l/b.log", 1, 10)]),
            vec![Change::Renamed {
                id: id(1),
                to: "/l/b.log".into()
            }]
        );
        assert_eq!(
            on_rescan(&[held("/l/a.log", 1, true)], &[seen("/l/a.log", 1, 10)]),
            vec![Change::Renamed {
                id: id(1),
                to: "/l/a.log".into()
            }]
        );
    }
}

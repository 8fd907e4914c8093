//! What to do when the network instances changed: the files the last pass wrote (and
//! what it still owed) against what the instances render to now, as one ordered
//! sequence of steps per bridge. Plain data in, plain steps out; `apply` carries them
//! out.
//!
//! The cheapest step that makes dnsmasq see the change:
//! - DNS names (`hosts`) and added DHCP reservations: rewrite their file; dnsmasq
//!   rereads `hostsdir` and picks up new `dhcp-hostsdir` entries by itself. No restart.
//! - A reservation's name changed: dnsmasq keeps the old entry until SIGHUP: rewrite,
//!   then SIGHUP (through zedinit's `signal`).
//! - A reservation removed or moved to another address, or an added one whose address
//!   is leased to another MAC: dnsmasq would keep the lease. Stop, prune those leases
//!   (by MAC and by address), write, start.
//! - Anything else in the configuration: rewrite and restart that bridge's dnsmasq.
//! - A new instance, a removed one, or a changed definition: zedinit rescans (it starts,
//!   stops or replaces the service itself).
//!
//! What a sequence owes zedinit (rescan, restart, start, hup) is written to a marker
//! file (`<out>/.pending/<bridge>`) before its first step and removed after its last: a
//! pass that failed half-way, or a crash, leaves the marker, and the next pass does what
//! is still owed even though the files already match.
//!
//! An instance file that exists but was rejected (a typo mid-edit) keeps what runs for
//! it: its bridge is neither removed nor changed.

use crate::render::{Files, Layout, Rendered, service_name};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// What the last pass wrote for one bridge (read back from the files).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct OnDisk {
    pub bridge: String,
    /// From the configuration's header.
    pub instance_file: PathBuf,
    pub conf: String,
    pub hosts: String,
    pub dhcp_hosts: String,
    pub definition: String,
}

/// What a bridge's sequence owes zedinit; kept in its marker file until done.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Owed {
    pub rescan: bool,
    pub start: bool,
    pub restart: bool,
    pub hup: bool,
}

impl Owed {
    pub fn parse(text: &str) -> Owed {
        let has = |word: &str| text.split_whitespace().any(|w| w == word);
        Owed {
            rescan: has("rescan"),
            start: has("start"),
            restart: has("restart"),
            hup: has("hup"),
        }
    }

    pub fn text(self) -> String {
        let words = [
            (self.rescan, "rescan"),
            (self.start, "start"),
            (self.restart, "restart"),
            (self.hup, "hup"),
        ];
        let mut text: Vec<&str> = words
            .iter()
            .filter(|(on, _)| *on)
            .map(|(_, w)| *w)
            .collect();
        text.push("");
        text.join("\n")
    }

    fn any(self) -> bool {
        self.rescan || self.start || self.restart || self.hup
    }

    fn with(self, other: Owed) -> Owed {
        Owed {
            rescan: self.rescan || other.rescan,
            start: self.start || other.start,
            restart: self.restart || other.restart,
            hup: self.hup || other.hup,
        }
    }
}

/// A reservation: a MAC and its address (the name does not matter for leases).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Reservation {
    pub mac: String,
    pub ip: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Replace the file atomically (its directory made if missing).
    Write {
        path: PathBuf,
        text: String,
    },
    Remove {
        path: PathBuf,
    },
    /// Make sure the file exists (an empty lease file, so it can be bound).
    Touch {
        path: PathBuf,
    },
    /// Ask zedinit to reread its definitions; `definition`, when given, must not be among
    /// the ones it rejects.
    Rescan {
        definition: Option<PathBuf>,
    },
    Stop {
        service: String,
    },
    Start {
        service: String,
    },
    Restart {
        service: String,
    },
    /// SIGHUP through zedinit: dnsmasq rereads its hosts and reservations.
    Hup {
        service: String,
    },
    /// Drop the leases of these MACs and addresses from the lease file.
    PruneLeases {
        lease_file: PathBuf,
        removed: Vec<Reservation>,
    },
}

/// The reservations in a `dhcp-hostsdir` file (`mac,ip[,name]` lines).
pub fn reservations(text: &str) -> BTreeSet<Reservation> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let mut fields = l.split(',');
            Some(Reservation {
                mac: fields.next()?.trim().to_ascii_lowercase(),
                ip: fields.next()?.trim().to_string(),
            })
        })
        .collect()
}

/// A definition's settings, without its comments: what zedinit compares (a changed
/// comment replaces nothing, so it must not stand in for a restart).
fn settings(definition: &str) -> Vec<&str> {
    definition
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect()
}

/// Everything one pass compares.
pub struct Inputs<'a> {
    pub previous: &'a [OnDisk],
    /// Markers left by an earlier pass: (bridge, what it still owes).
    pub owed: &'a [(String, Owed)],
    pub now: &'a [Rendered],
    /// Instance files that exist but were rejected this pass.
    pub rejected: &'a [PathBuf],
    pub layout: &'a Layout,
    /// The text of a lease file ("" when missing).
    pub leases: &'a dyn Fn(&Path) -> String,
}

/// One sequence of steps per bridge that needs any, in bridge order.
pub fn decide(inputs: &Inputs) -> Vec<Vec<Step>> {
    let layout = inputs.layout;
    let mut bridges: BTreeSet<&str> = inputs.now.iter().map(|r| r.bridge.as_str()).collect();
    bridges.extend(inputs.previous.iter().map(|p| p.bridge.as_str()));
    bridges.extend(inputs.owed.iter().map(|(b, _)| b.as_str()));
    let mut sequences = Vec::new();
    for bridge in bridges {
        let old = inputs.previous.iter().find(|p| p.bridge == bridge);
        let owed = inputs
            .owed
            .iter()
            .find(|(b, _)| b == bridge)
            .map(|(_, o)| *o)
            .unwrap_or_default();
        let files = layout.files(bridge);
        let marker = layout.marker(bridge);
        let steps = match inputs.now.iter().find(|r| r.bridge == bridge) {
            Some(rendered) => changed(rendered, old, owed, &files, &marker, inputs.leases),
            None => {
                let kept = old.is_some_and(|o| inputs.rejected.contains(&o.instance_file));
                if kept {
                    // A rejected file changes nothing, but what an earlier pass owes for
                    // the files on disk is still done (a dnsmasq we stopped is started).
                    kept_owed(bridge, owed, &files, &marker)
                } else {
                    removed(old, &files, &marker)
                }
            }
        };
        if !steps.is_empty() {
            sequences.push(steps);
        }
    }
    sequences
}

/// A bridge that is (still) an instance.
fn changed(
    rendered: &Rendered,
    old: Option<&OnDisk>,
    owed_before: Owed,
    files: &Files,
    marker: &Path,
    leases: &dyn Fn(&Path) -> String,
) -> Vec<Step> {
    let service = service_name(&rendered.bridge);
    let mut needs = Owed::default();
    let mut prune = Vec::new();
    match old {
        None => needs.rescan = true,
        Some(old) => {
            let before = reservations(&old.dhcp_hosts);
            let after = reservations(&rendered.dhcp_hosts);
            prune.extend(before.difference(&after).cloned());
            // An added reservation whose address another MAC holds a lease for (the lease
            // file is read, by netinst's parser, only when something was added).
            let added: Vec<&Reservation> = after.difference(&before).collect();
            if !added.is_empty() {
                let held =
                    netinst::parse_leases(&rendered.lease_file, &leases(&rendered.lease_file));
                for added in added {
                    let taken = held.leases.iter().any(|l| {
                        l.ip.to_string() == added.ip && !l.mac.eq_ignore_ascii_case(&added.mac)
                    });
                    if taken {
                        prune.push(added.clone());
                    }
                }
            }
            needs.start = !prune.is_empty();
            if settings(&old.definition) != settings(&rendered.definition) {
                needs.rescan = true;
            } else if old.conf != rendered.conf {
                needs.restart = true;
            }
            // A line gone that is no removal (a name changed): dnsmasq keeps the old entry
            // until SIGHUP.
            let lines = |t: &str| {
                t.lines()
                    .filter(|l| !l.starts_with('#'))
                    .map(str::to_string)
                    .collect::<BTreeSet<_>>()
            };
            let dropped = lines(&old.dhcp_hosts)
                .difference(&lines(&rendered.dhcp_hosts))
                .next()
                .is_some();
            needs.hup = !needs.start && dropped;
        }
    }
    let writes = write_all(files, rendered, old);
    let owed = owed_before.with(needs);
    if writes.is_empty() && !owed.any() {
        return Vec::new();
    }
    let mut steps = Vec::new();
    if owed.any() {
        steps.push(Step::Write {
            path: marker.to_path_buf(),
            text: owed.text(),
        });
    }
    if needs.start {
        steps.push(Step::Stop {
            service: service.clone(),
        });
        steps.push(Step::PruneLeases {
            lease_file: rendered.lease_file.clone(),
            removed: prune,
        });
    }
    steps.extend(writes);
    if owed.rescan || owed.start {
        // The lease file is bound into dnsmasq's root: it must exist before it starts.
        steps.push(Step::Touch {
            path: rendered.lease_file.clone(),
        });
    }
    steps.extend(owed_control(owed, &service, &files.definition));
    if owed.any() {
        steps.push(Step::Remove {
            path: marker.to_path_buf(),
        });
    }
    steps
}

/// What is owed to zedinit, in the order that makes it true:
/// - a rescan first (a new or changed definition);
/// - then a restart if one is owed (it also starts a stopped service: zedinit's restart
///   wants it up), else a start;
/// - a SIGHUP only when nothing restarts it anyway; owed together with a rescan it
///   becomes a restart (the rescan may have replaced nothing, and a SIGHUP right after a
///   replacement could hit a dnsmasq still starting).
fn owed_control(owed: Owed, service: &str, definition: &Path) -> Vec<Step> {
    let mut steps = Vec::new();
    let service = service.to_string();
    if owed.rescan {
        steps.push(Step::Rescan {
            definition: Some(definition.to_path_buf()),
        });
    }
    if owed.restart || (owed.hup && owed.rescan) {
        steps.push(Step::Restart { service });
    } else if owed.start {
        steps.push(Step::Start { service });
    } else if owed.hup {
        steps.push(Step::Hup { service });
    }
    steps
}

/// A bridge whose instance file was rejected: only what is owed.
fn kept_owed(bridge: &str, owed: Owed, files: &Files, marker: &Path) -> Vec<Step> {
    if !owed.any() {
        return Vec::new();
    }
    let mut steps = owed_control(owed, &service_name(bridge), &files.definition);
    steps.push(Step::Remove {
        path: marker.to_path_buf(),
    });
    steps
}

/// A bridge that is no longer an instance: its definition goes first, so the rescan
/// stops the service; then its files and any marker.
fn removed(old: Option<&OnDisk>, files: &Files, marker: &Path) -> Vec<Step> {
    let mut steps = Vec::new();
    if old.is_some() {
        steps.push(Step::Remove {
            path: files.definition.clone(),
        });
        steps.push(Step::Rescan { definition: None });
        for path in [&files.conf, &files.hosts, &files.dhcp_hosts] {
            steps.push(Step::Remove { path: path.clone() });
        }
    }
    steps.push(Step::Remove {
        path: marker.to_path_buf(),
    });
    steps
}

/// The writes that make the files what `rendered` says (only the ones that differ).
fn write_all(files: &Files, rendered: &Rendered, old: Option<&OnDisk>) -> Vec<Step> {
    let pairs = [
        (&files.hosts, &rendered.hosts, old.map(|o| &o.hosts)),
        (
            &files.dhcp_hosts,
            &rendered.dhcp_hosts,
            old.map(|o| &o.dhcp_hosts),
        ),
        (&files.conf, &rendered.conf, old.map(|o| &o.conf)),
        // Last: zedinit may read it at any moment (a rescan by someone else), and the
        // files it points at are in place by then.
        (
            &files.definition,
            &rendered.definition,
            old.map(|o| &o.definition),
        ),
    ];
    pairs
        .into_iter()
        .filter(|(_, new, old)| Some(*new) != *old)
        .map(|(path, text, _)| Step::Write {
            path: path.clone(),
            text: text.clone(),
        })
        .collect()
}

/// The lease file without the leases of the removed reservations (by MAC or address).
/// Other lines, the `duid` line included, stay as they are.
pub fn prune_leases(text: &str, removed: &[Reservation]) -> String {
    text.lines()
        .filter(|line| {
            let mut fields = line.split_whitespace();
            let (_, mac, ip) = (fields.next(), fields.next(), fields.next());
            let hit = |r: &Reservation| {
                mac.is_some_and(|m| m.eq_ignore_ascii_case(&r.mac)) || ip == Some(r.ip.as_str())
            };
            !removed.iter().any(hit)
        })
        .map(|line| format!("{line}\n"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout() -> Layout {
        Layout {
            out_dir: "/o".into(),
            services_dir: "/s".into(),
            dnsmasq: "/usr/sbin/dnsmasq".into(),
        }
    }

    fn rendered(bridge: &str, conf: &str, hosts: &str, dhcp: &str, def: &str) -> Rendered {
        Rendered {
            bridge: bridge.into(),
            instance_file: format!("/ni/{bridge}.toml").into(),
            lease_file: format!("/l/{bridge}.leases").into(),
            conf: conf.into(),
            hosts: hosts.into(),
            dhcp_hosts: dhcp.into(),
            definition: def.into(),
        }
    }

    fn on_disk(r: &Rendered) -> OnDisk {
        OnDisk {
            bridge: r.bridge.clone(),
            instance_file: r.instance_file.clone(),
            conf: r.conf.clone(),
            hosts: r.hosts.clone(),
            dhcp_hosts: r.dhcp_hosts.clone(),
            definition: r.definition.clone(),
        }
    }

    fn decide_with(
        previous: &[OnDisk],
        owed: &[(String, Owed)],
        now: &[Rendered],
        leases: &str,
    ) -> Vec<Vec<Step>> {
        let leases = leases.to_string();
        decide(&Inputs {
            previous,
            owed,
            now,
            rejected: &[],
            layout: &layout(),
            leases: &move |_| leases.clone(),
        })
    }

    fn write(path: &str, text: &str) -> Step {
        Step::Write {
            path: path.into(),
            text: text.into(),
        }
    }

    fn mark(text: &str) -> Step {
        write("/o/.pending/b1", text)
    }

    fn unmark() -> Step {
        Step::Remove {
            path: "/o/.pending/b1".into(),
        }
    }

    fn svc() -> String {
        "dnsmasq@b1".into()
    }

    fn touch() -> Step {
        Step::Touch {
            path: "/l/b1.leases".into(),
        }
    }

    #[test]
    fn a_new_instance_marks_writes_everything_rescans_and_unmarks() {
        let r = rendered("b1", "c", "h", "d", "def");
        assert_eq!(
            decide_with(&[], &[], &[r], ""),
            vec![vec![
                mark("rescan\n"),
                write("/o/b1.hosts/hosts", "h"),
                write("/o/b1.dhcp-hosts/hosts", "d"),
                write("/o/b1.conf", "c"),
                write("/s/dnsmasq@b1.toml", "def"),
                touch(),
                Step::Rescan {
                    definition: Some("/s/dnsmasq@b1.toml".into())
                },
                unmark(),
            ]]
        );
    }

    #[test]
    fn nothing_changed_nothing_done_but_what_is_owed_is_redone() {
        let r = rendered("b1", "c", "h", "d", "def");
        assert_eq!(
            decide_with(&[on_disk(&r)], &[], std::slice::from_ref(&r), ""),
            Vec::<Vec<Step>>::new()
        );
        // A pass that wrote the files but died before its restart: the marker says so.
        let owed = [(
            "b1".to_string(),
            Owed {
                restart: true,
                ..Owed::default()
            },
        )];
        assert_eq!(
            decide_with(&[on_disk(&r)], &owed, &[r], ""),
            vec![vec![
                mark("restart\n"),
                Step::Restart { service: svc() },
                unmark()
            ]]
        );
    }

    #[test]
    fn names_and_added_reservations_need_no_restart_and_a_renamed_one_a_sighup() {
        let old = rendered("b1", "c", "h", "02:00:00:00:00:01,10.0.0.5\n", "def");
        let added = rendered(
            "b1",
            "c",
            "h2",
            "02:00:00:00:00:01,10.0.0.5\n02:00:00:00:00:02,10.0.0.6\n",
            "def",
        );
        assert_eq!(
            decide_with(&[on_disk(&old)], &[], std::slice::from_ref(&added), ""),
            vec![vec![
                write("/o/b1.hosts/hosts", "h2"),
                write(
                    "/o/b1.dhcp-hosts/hosts",
                    "02:00:00:00:00:01,10.0.0.5\n02:00:00:00:00:02,10.0.0.6\n"
                ),
            ]]
        );
        let renamed = rendered("b1", "c", "h", "02:00:00:00:00:01,10.0.0.5,named\n", "def");
        assert_eq!(
            decide_with(&[on_disk(&old)], &[], &[renamed], ""),
            vec![vec![
                mark("hup\n"),
                write(
                    "/o/b1.dhcp-hosts/hosts",
                    "02:00:00:00:00:01,10.0.0.5,named\n"
                ),
                Step::Hup { service: svc() },
                unmark(),
            ]]
        );
    }

    #[test]
    fn a_removed_or_moved_reservation_stops_prunes_writes_and_starts() {
        let old = rendered(
            "b1",
            "c",
            "h",
            "02:00:00:00:00:01,10.0.0.5\n02:00:00:00:00:02,10.0.0.6\n",
            "def",
        );
        let new = rendered("b1", "c", "h", "02:00:00:00:00:02,10.0.0.7\n", "def");
        assert_eq!(
            decide_with(&[on_disk(&old)], &[], &[new], ""),
            vec![vec![
                mark("start\n"),
                Step::Stop { service: svc() },
                Step::PruneLeases {
                    lease_file: "/l/b1.leases".into(),
                    removed: vec![
                        Reservation {
                            mac: "02:00:00:00:00:01".into(),
                            ip: "10.0.0.5".into()
                        },
                        Reservation {
                            mac: "02:00:00:00:00:02".into(),
                            ip: "10.0.0.6".into()
                        },
                    ],
                },
                write("/o/b1.dhcp-hosts/hosts", "02:00:00:00:00:02,10.0.0.7\n"),
                touch(),
                Step::Start { service: svc() },
                unmark(),
            ]]
        );
    }

    #[test]
    fn an_added_reservation_on_an_address_leased_to_another_mac_prunes_that_lease() {
        let old = rendered("b1", "c", "h", "", "def");
        let new = rendered("b1", "c", "h", "02:00:00:00:00:01,10.0.0.150\n", "def");
        let leases = "1700000000 02:00:00:00:00:99 10.0.0.150 other *\n";
        let steps = decide_with(&[on_disk(&old)], &[], std::slice::from_ref(&new), leases);
        assert!(
            steps[0].contains(&Step::Stop { service: svc() }),
            "{steps:?}"
        );
        // Leased to the same MAC already: nothing to prune, no restart.
        let mine = "1700000000 02:00:00:00:00:01 10.0.0.150 me *\n";
        let steps = decide_with(&[on_disk(&old)], &[], &[new], mine);
        assert_eq!(
            steps,
            vec![vec![write(
                "/o/b1.dhcp-hosts/hosts",
                "02:00:00:00:00:01,10.0.0.150\n"
            )]]
        );
    }

    #[test]
    fn a_changed_configuration_restarts_and_a_changed_definition_rescans() {
        let old = rendered("b1", "c", "h", "d", "# x\nkey = 1\n");
        assert_eq!(
            decide_with(
                &[on_disk(&old)],
                &[],
                &[rendered("b1", "c2", "h", "d", "# x\nkey = 1\n")],
                ""
            ),
            vec![vec![
                mark("restart\n"),
                write("/o/b1.conf", "c2"),
                Step::Restart { service: svc() },
                unmark()
            ]]
        );
        // Only a comment of the definition changed: zedinit replaces nothing, so the
        // configuration's change still restarts it.
        assert_eq!(
            decide_with(
                &[on_disk(&old)],
                &[],
                &[rendered("b1", "c2", "h", "d", "# y\nkey = 1\n")],
                ""
            ),
            vec![vec![
                mark("restart\n"),
                write("/o/b1.conf", "c2"),
                write("/s/dnsmasq@b1.toml", "# y\nkey = 1\n"),
                Step::Restart { service: svc() },
                unmark(),
            ]]
        );
        assert_eq!(
            decide_with(
                &[on_disk(&old)],
                &[],
                &[rendered("b1", "c2", "h", "d", "key = 2\n")],
                ""
            ),
            vec![vec![
                mark("rescan\n"),
                write("/o/b1.conf", "c2"),
                write("/s/dnsmasq@b1.toml", "key = 2\n"),
                touch(),
                Step::Rescan {
                    definition: Some("/s/dnsmasq@b1.toml".into())
                },
                unmark(),
            ]]
        );
    }

    #[test]
    fn a_removed_instance_goes_and_a_rejected_one_stays() {
        let old = on_disk(&rendered("b1", "c", "h", "d", "def"));
        assert_eq!(
            decide_with(std::slice::from_ref(&old), &[], &[], ""),
            vec![vec![
                Step::Remove {
                    path: "/s/dnsmasq@b1.toml".into()
                },
                Step::Rescan { definition: None },
                Step::Remove {
                    path: "/o/b1.conf".into()
                },
                Step::Remove {
                    path: "/o/b1.hosts/hosts".into()
                },
                Step::Remove {
                    path: "/o/b1.dhcp-hosts/hosts".into()
                },
                unmark(),
            ]]
        );
        let rejected = decide(&Inputs {
            previous: &[old],
            owed: &[],
            now: &[],
            rejected: &["/ni/b1.toml".into()],
            layout: &layout(),
            leases: &|_| String::new(),
        });
        assert_eq!(rejected, Vec::<Vec<Step>>::new());
    }

    #[test]
    fn bridges_get_sequences_of_their_own() {
        let a = rendered("a", "c", "h", "d", "def");
        let b = rendered("b", "c", "h", "d", "def");
        let steps = decide_with(&[on_disk(&a)], &[], &[a, b], "");
        assert_eq!(steps.len(), 1, "only b changed: {steps:?}");
        assert!(steps[0].contains(&Step::Rescan {
            definition: Some("/s/dnsmasq@b.toml".into())
        }));
    }

    #[test]
    fn a_rejected_file_still_gets_what_is_owed_done() {
        let old = on_disk(&rendered("b1", "c", "h", "d", "def"));
        let owed = [(
            "b1".to_string(),
            Owed {
                start: true,
                ..Owed::default()
            },
        )];
        let steps = decide(&Inputs {
            previous: &[old],
            owed: &owed,
            now: &[],
            rejected: &["/ni/b1.toml".into()],
            layout: &layout(),
            leases: &|_| String::new(),
        });
        assert_eq!(steps, vec![vec![Step::Start { service: svc() }, unmark()]]);
    }

    #[test]
    fn owed_restart_wins_over_start_and_hup_with_rescan_becomes_a_restart() {
        let r = rendered("b1", "c", "h", "d", "def");
        let owed = [(
            "b1".to_string(),
            Owed {
                start: true,
                restart: true,
                ..Owed::default()
            },
        )];
        let steps = decide_with(&[on_disk(&r)], &owed, std::slice::from_ref(&r), "");
        assert!(
            steps[0].contains(&Step::Restart { service: svc() }),
            "{steps:?}"
        );
        assert!(
            !steps[0].contains(&Step::Start { service: svc() }),
            "{steps:?}"
        );
        let owed = [(
            "b1".to_string(),
            Owed {
                rescan: true,
                hup: true,
                ..Owed::default()
            },
        )];
        let steps = decide_with(&[on_disk(&r)], &owed, &[r], "");
        assert!(
            steps[0].contains(&Step::Restart { service: svc() }),
            "{steps:?}"
        );
        assert!(
            !steps[0].iter().any(|s| matches!(s, Step::Hup { .. })),
            "{steps:?}"
        );
    }

    #[test]
    fn a_rename_together_with_an_addition_still_sighups() {
        let old = rendered("b1", "c", "h", "02:00:00:00:00:01,10.0.0.5,old\n", "def");
        let new = rendered(
            "b1",
            "c",
            "h",
            "02:00:00:00:00:01,10.0.0.5,new\n02:00:00:00:00:02,10.0.0.6\n",
            "def",
        );
        let steps = decide_with(&[on_disk(&old)], &[], &[new], "");
        assert!(
            steps[0].contains(&Step::Hup { service: svc() }),
            "{steps:?}"
        );
    }

    #[test]
    fn owed_words_round_trip() {
        let all = Owed {
            rescan: true,
            start: true,
            restart: true,
            hup: true,
        };
        assert_eq!(Owed::parse(&all.text()), all);
        assert_eq!(Owed::parse(""), Owed::default());
    }

    #[test]
    fn pruning_drops_the_leases_of_the_mac_and_of_the_address() {
        let leases = "duid 00:01:00:01\n\
                      1700000000 02:00:00:00:00:01 10.0.0.5 app1 *\n\
                      1700000000 02:00:00:00:00:09 10.0.0.6 other *\n\
                      0 02:00:00:00:00:03 10.0.0.150 * *\n";
        let removed = [
            Reservation {
                mac: "02:00:00:00:00:01".into(),
                ip: "10.0.0.5".into(),
            },
            Reservation {
                mac: "02:00:00:00:00:02".into(),
                ip: "10.0.0.6".into(),
            },
        ];
        assert_eq!(
            prune_leases(leases, &removed),
            "duid 00:01:00:01\n0 02:00:00:00:00:03 10.0.0.150 * *\n"
        );
    }
}

//! What to do when the network instances changed: the files the last run wrote against
//! what the instances render to now, as an ordered list of steps. Plain data in, plain
//! steps out; `apply` carries them out.
//!
//! The cheapest step that makes dnsmasq see the change:
//! - DNS names (`hosts`) and new or changed DHCP reservations: rewrite their file;
//!   dnsmasq rereads `hostsdir` and `dhcp-hostsdir` by itself. No restart.
//! - A removed reservation (or one whose address changed): dnsmasq does not forget it
//!   on its own, and its lease would keep the address. Stop, prune the leases of the
//!   MAC and of the address, write, start.
//! - Anything else in the configuration: rewrite and restart that bridge's dnsmasq.
//! - A new instance, a removed one, or a changed definition: zedinit rescans (it starts,
//!   stops or replaces the service itself).
//!
//! An instance file that exists but was rejected (a typo mid-edit) keeps what runs for
//! it: its bridge is neither removed nor changed.

use crate::render::{Files, Layout, Rendered, service_name};
use std::collections::BTreeSet;
use std::path::PathBuf;

/// What the last run wrote for one bridge (read back from the files).
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
    /// Ask zedinit to reread its definitions.
    Rescan,
    Stop {
        service: String,
    },
    Start {
        service: String,
    },
    Restart {
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

pub fn decide(
    previous: &[OnDisk],
    now: &[Rendered],
    rejected: &[PathBuf],
    layout: &Layout,
) -> Vec<Step> {
    let mut before_rescan = Vec::new();
    let mut rescan = false;
    let mut after_rescan = Vec::new();
    for rendered in now {
        let files = layout.files(&rendered.bridge);
        let service = service_name(&rendered.bridge);
        let Some(old) = previous.iter().find(|p| p.bridge == rendered.bridge) else {
            before_rescan.extend(write_all(&files, rendered, None));
            rescan = true;
            continue;
        };
        let removed: Vec<Reservation> = reservations(&old.dhcp_hosts)
            .difference(&reservations(&rendered.dhcp_hosts))
            .cloned()
            .collect();
        let definition_changed = old.definition != rendered.definition;
        let conf_changed = old.conf != rendered.conf;
        let writes = write_all(&files, rendered, Some(old));
        if !removed.is_empty() {
            before_rescan.push(Step::Stop {
                service: service.clone(),
            });
            before_rescan.push(Step::PruneLeases {
                lease_file: rendered.lease_file.clone(),
                removed,
            });
            before_rescan.extend(writes);
            rescan |= definition_changed;
            after_rescan.push(Step::Start { service });
        } else {
            before_rescan.extend(writes);
            if definition_changed {
                // zedinit replaces (restarts) a service whose definition changed.
                rescan = true;
            } else if conf_changed {
                after_rescan.push(Step::Restart { service });
            }
        }
    }
    for old in previous {
        let kept =
            now.iter().any(|r| r.bridge == old.bridge) || rejected.contains(&old.instance_file);
        if kept {
            continue;
        }
        let files = layout.files(&old.bridge);
        // The definition goes first, so the rescan stops the service; then its files.
        before_rescan.push(Step::Remove {
            path: files.definition.clone(),
        });
        rescan = true;
        for path in [files.conf, files.hosts, files.dhcp_hosts] {
            after_rescan.push(Step::Remove { path });
        }
    }
    let mut steps = before_rescan;
    if rescan {
        steps.push(Step::Rescan);
    }
    steps.extend(after_rescan);
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
            lease_file: format!("/o/{bridge}.leases").into(),
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

    fn write(path: &str, text: &str) -> Step {
        Step::Write {
            path: path.into(),
            text: text.into(),
        }
    }

    fn service(verb: fn(String) -> Step) -> Step {
        verb("dnsmasq@b1".into())
    }

    #[test]
    fn a_new_instance_writes_everything_then_rescans() {
        let r = rendered("b1", "c", "h", "d", "def");
        assert_eq!(
            decide(&[], &[r], &[], &layout()),
            vec![
                write("/o/b1.hosts/hosts", "h"),
                write("/o/b1.dhcp-hosts/hosts", "d"),
                write("/o/b1.conf", "c"),
                write("/s/dnsmasq@b1.toml", "def"),
                Step::Rescan,
            ]
        );
    }

    #[test]
    fn nothing_changed_nothing_done() {
        let r = rendered("b1", "c", "h", "d", "def");
        assert_eq!(decide(&[on_disk(&r)], &[r], &[], &layout()), vec![]);
    }

    #[test]
    fn names_and_new_reservations_are_reread_without_a_restart() {
        let old = rendered("b1", "c", "h", "02:00:00:00:00:01,10.0.0.5\n", "def");
        let new = rendered(
            "b1",
            "c",
            "h2",
            "02:00:00:00:00:01,10.0.0.5,named\n02:00:00:00:00:02,10.0.0.6\n",
            "def",
        );
        assert_eq!(
            decide(&[on_disk(&old)], &[new], &[], &layout()),
            vec![
                write("/o/b1.hosts/hosts", "h2"),
                write(
                    "/o/b1.dhcp-hosts/hosts",
                    "02:00:00:00:00:01,10.0.0.5,named\n02:00:00:00:00:02,10.0.0.6\n"
                ),
            ]
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
            decide(&[on_disk(&old)], &[new], &[], &layout()),
            vec![
                service(|service| Step::Stop { service }),
                Step::PruneLeases {
                    lease_file: "/o/b1.leases".into(),
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
                service(|service| Step::Start { service }),
            ]
        );
    }

    #[test]
    fn a_changed_configuration_restarts_and_a_changed_definition_rescans() {
        let old = rendered("b1", "c", "h", "d", "def");
        assert_eq!(
            decide(
                &[on_disk(&old)],
                &[rendered("b1", "c2", "h", "d", "def")],
                &[],
                &layout()
            ),
            vec![
                write("/o/b1.conf", "c2"),
                service(|service| Step::Restart { service })
            ]
        );
        // A new definition: zedinit replaces the service itself on the rescan.
        assert_eq!(
            decide(
                &[on_disk(&old)],
                &[rendered("b1", "c2", "h", "d", "def2")],
                &[],
                &layout()
            ),
            vec![
                write("/o/b1.conf", "c2"),
                write("/s/dnsmasq@b1.toml", "def2"),
                Step::Rescan
            ]
        );
    }

    #[test]
    fn a_removed_instance_goes_and_a_rejected_one_stays() {
        let old = on_disk(&rendered("b1", "c", "h", "d", "def"));
        assert_eq!(
            decide(std::slice::from_ref(&old), &[], &[], &layout()),
            vec![
                Step::Remove {
                    path: "/s/dnsmasq@b1.toml".into()
                },
                Step::Rescan,
                Step::Remove {
                    path: "/o/b1.conf".into()
                },
                Step::Remove {
                    path: "/o/b1.hosts/hosts".into()
                },
                Step::Remove {
                    path: "/o/b1.dhcp-hosts/hosts".into()
                },
            ]
        );
        assert_eq!(
            decide(&[old], &[], &["/ni/b1.toml".into()], &layout()),
            vec![]
        );
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

//! One network instance → the files its dnsmasq runs from: a configuration, a hosts
//! directory (DNS names, which dnsmasq rereads by itself when they change), a DHCP
//! reservations directory (additions and changes are reread by itself too; removals are
//! not: see `changes`), and the zedinit definition `dnsmasq@<bridge>`. Plain text out of
//! plain data: nothing here touches a file.

use netinst::NetworkInstance;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// Where the rendered files go and what runs them.
#[derive(Debug, Clone)]
pub struct Layout {
    /// `/run/zedctr/dnsmasq`: `<bridge>.conf`, `<bridge>.hosts/`, `<bridge>.dhcp-hosts/`.
    pub out_dir: PathBuf,
    /// `/run/zedctr/services`: `dnsmasq@<bridge>.toml`.
    pub services_dir: PathBuf,
    /// The dnsmasq binary.
    pub dnsmasq: PathBuf,
}

/// The first line of every file written: what made it, from which instance. A
/// configuration without it is not ours and is left alone.
pub const HEADER: &str = "# dnsmasq-render: generated from ";

/// What one instance renders to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    pub bridge: String,
    pub instance_file: PathBuf,
    pub lease_file: PathBuf,
    pub conf: String,
    /// `<ip> <name>` lines (an /etc/hosts file in `hostsdir`).
    pub hosts: String,
    /// `<mac>,<ip>[,<name>]` lines (a file in `dhcp-hostsdir`).
    pub dhcp_hosts: String,
    pub definition: String,
}

/// The files of one bridge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Files {
    pub conf: PathBuf,
    pub hosts: PathBuf,
    pub dhcp_hosts: PathBuf,
    pub definition: PathBuf,
}

impl Layout {
    /// What an unfinished pass still owes zedinit for `bridge` (see `changes`).
    pub fn marker(&self, bridge: &str) -> PathBuf {
        self.out_dir.join(".pending").join(bridge)
    }

    pub fn files(&self, bridge: &str) -> Files {
        Files {
            conf: self.out_dir.join(format!("{bridge}.conf")),
            hosts: self.out_dir.join(format!("{bridge}.hosts")).join("hosts"),
            dhcp_hosts: self
                .out_dir
                .join(format!("{bridge}.dhcp-hosts"))
                .join("hosts"),
            definition: self
                .services_dir
                .join(format!("{}.toml", service_name(bridge))),
        }
    }
}

/// The zedinit service that runs a bridge's dnsmasq.
pub fn service_name(bridge: &str) -> String {
    format!("dnsmasq@{bridge}")
}

pub fn render(instance: &NetworkInstance, layout: &Layout) -> Rendered {
    let files = layout.files(&instance.bridge);
    let lease_file = instance.lease_path();
    let header = format!("{HEADER}{}\n", instance.file.display());
    Rendered {
        bridge: instance.bridge.clone(),
        instance_file: instance.file.clone(),
        conf: format!("{header}{}", conf(instance, &files, &lease_file)),
        hosts: format!("{header}{}", hosts(instance)),
        dhcp_hosts: format!("{header}{}", dhcp_hosts(instance)),
        definition: format!(
            "{header}{}",
            definition(instance, layout, &files, &lease_file)
        ),
        lease_file,
    }
}

fn conf(instance: &NetworkInstance, files: &Files, lease_file: &Path) -> String {
    let net = &instance.ipv4;
    let address = net.addr;
    let mut c = String::new();
    let dir = |p: &Path| p.parent().unwrap_or(p).display().to_string();
    // Only this bridge, only its address: one dnsmasq per bridge, never the host's
    // other interfaces (and never loopback, where the host may run its own resolver).
    let _ = writeln!(c, "interface={}", instance.bridge);
    let _ = writeln!(c, "listen-address={address}");
    c.push_str("bind-interfaces\nexcept-interface=lo\n");
    // Upstreams only as the instance says; the host's resolv.conf and /etc/hosts are not
    // this network's.
    c.push_str("no-resolv\nno-hosts\n");
    for server in &instance.servers {
        let _ = writeln!(c, "server={server}");
    }
    let _ = writeln!(c, "hostsdir={}", dir(&files.hosts));
    match instance.dhcp_range {
        Some((first, last)) => {
            let _ = writeln!(c, "dhcp-range={first},{last},{},12h", net.netmask());
        }
        // Reservations alone: DHCP for them only.
        None if !instance.dhcp_hosts.is_empty() => {
            let _ = writeln!(
                c,
                "dhcp-range={},static,{},12h",
                net.network(),
                net.netmask()
            );
        }
        None => {}
    }
    if instance.dhcp_range.is_some() || !instance.dhcp_hosts.is_empty() {
        let _ = writeln!(c, "dhcp-hostsdir={}", dir(&files.dhcp_hosts));
        let _ = writeln!(c, "dhcp-leasefile={}", lease_file.display());
        // The only DHCP server on its bridge: answer clients that ask for an address it
        // did not hand out (after a restart) instead of ignoring them.
        c.push_str("dhcp-authoritative\n");
        let _ = writeln!(c, "dhcp-option=option:router,{address}");
        let _ = writeln!(c, "dhcp-option=option:dns-server,{address}");
    }
    // Logs to stderr, which zedinit captures; no pid file (zedinit knows the pid).
    c.push_str("log-facility=-\npid-file=\n");
    c
}

fn hosts(instance: &NetworkInstance) -> String {
    instance
        .hosts
        .iter()
        .map(|h| format!("{} {}\n", h.ip, h.name))
        .collect()
}

fn dhcp_hosts(instance: &NetworkInstance) -> String {
    instance
        .dhcp_hosts
        .iter()
        .map(|h| {
            let mut line = format!("{},{}", netinst::format_mac(&h.mac), h.ip);
            if let Some(name) = &h.name {
                line.push(',');
                line.push_str(name);
            }
            line.push('\n');
            line
        })
        .collect()
}

/// `text` as a TOML basic string (TOML 1.0, "String"): `"` and `\` escaped, the
/// control characters TOML forbids in one (U+0000–U+001F but tab, U+007F) as `\uXXXX`,
/// everything else as it is. Not Rust's `{:?}`, whose `\u{ad}` is no TOML escape: a
/// definition zedinit can't parse leaves the bridge without dnsmasq.
fn quoted(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\t' => out.push(c),
            c if c.is_ascii_control() => {
                let _ = write!(out, "\\u{:04X}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn definition(
    instance: &NetworkInstance,
    layout: &Layout,
    files: &Files,
    lease_file: &Path,
) -> String {
    let out = layout.out_dir.display().to_string();
    let lease = lease_file.display().to_string();
    // The lease file alone is writable (dnsmasq rewrites it in place), not its directory:
    // that may hold anything (zedinit's control socket, if someone named /run/zedctr).
    let binds = [
        quoted(&format!("{out}:{out}:ro")),
        quoted(&format!("{lease}:{lease}")),
    ];
    format!(
        r#"# The dnsmasq of bridge {bridge}, network instance {name}. Rewritten whenever the instance
# changes: edit the instance, not this file.
command = [{dnsmasq}, "--keep-in-foreground", {conf}]
# Not critical: a dnsmasq that can't run (a bad network instance) costs its bridge its
# addresses and names, and a watchdog reboot would not fix the instance; it would loop.
critical = false

[restart]
policy = "always"
backoff-base = "1s"
backoff-max = "30s"

[stop]
signal = "SIGTERM"
timeout = "5s"

[run]
# dnsmasq starts as root and drops to its own user (`dnsmasq`) itself, keeping only what
# it needs: it binds ports 53 and 67 (NET_BIND_SERVICE), sends DHCP replies to clients
# without an address yet (NET_RAW, NET_ADMIN for the ARP cache), and changes user
# (SETUID, SETGID: without them it dies "failed to change group-id").
capabilities = ["CAP_NET_BIND_SERVICE", "CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_SETUID", "CAP_SETGID"]
# The bridge lives in the host's network namespace.
net = "host"
# Its own pid namespace: dnsmasq needs no other process (it reaps its own helpers).
pid = "new"
readonly = true
binds = [
    # Its configuration, hosts and reservations (reread as they change).
    {binds},
]
"#,
        bridge = instance.bridge,
        name = instance.name,
        dnsmasq = quoted(&layout.dnsmasq.display().to_string()),
        conf = quoted(&format!("--conf-file={}", files.conf.display())),
        binds =
            binds.join(",\n    # Its lease file, which it rewrites (made before it starts).\n    "),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn instance(text: &str) -> NetworkInstance {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("blue.toml");
        std::fs::write(&path, text).expect("write");
        let mut loaded = netinst::load_dir(dir.path());
        assert!(loaded.errors.is_empty(), "{:?}", loaded.errors);
        let mut instance = loaded.instances.remove(0);
        instance.file = "/run/zedctr/network-instances/blue.toml".into();
        instance
    }

    fn layout() -> Layout {
        Layout {
            out_dir: "/run/zedctr/dnsmasq".into(),
            services_dir: "/run/zedctr/services".into(),
            dnsmasq: "/usr/sbin/dnsmasq".into(),
        }
    }

    const FULL: &str = r#"
bridge = "bn1"
ipv4 = "10.1.0.1/24"
dhcp-range = "10.1.0.100,10.1.0.200"
servers = ["1.1.1.1", "2606:4700:4700::1111"]
hosts = [{ name = "app1", ip = "10.1.0.5" }, { name = "db.example", ip = "fd00::5" }]
dhcp-hosts = [
  { mac = "02:00:00:00:00:01", ip = "10.1.0.5", name = "app1" },
  { mac = "02:00:00:00:00:02", ip = "10.1.0.6" },
]
"#;

    #[test]
    fn a_full_instance_renders_every_field() {
        let r = render(&instance(FULL), &layout());
        let header = "# dnsmasq-render: generated from /run/zedctr/network-instances/blue.toml\n";
        assert_eq!(
            r.conf,
            format!(
                "{header}interface=bn1\nlisten-address=10.1.0.1\nbind-interfaces\nexcept-interface=lo\n\
                 no-resolv\nno-hosts\nserver=1.1.1.1\nserver=2606:4700:4700::1111\n\
                 hostsdir=/run/zedctr/dnsmasq/bn1.hosts\n\
                 dhcp-range=10.1.0.100,10.1.0.200,255.255.255.0,12h\n\
                 dhcp-hostsdir=/run/zedctr/dnsmasq/bn1.dhcp-hosts\n\
                 dhcp-leasefile=/run/zedctr/dnsmasq/bn1.leases\ndhcp-authoritative\n\
                 dhcp-option=option:router,10.1.0.1\ndhcp-option=option:dns-server,10.1.0.1\n\
                 log-facility=-\npid-file=\n"
            )
        );
        assert_eq!(
            r.hosts,
            format!("{header}10.1.0.5 app1\nfd00::5 db.example\n")
        );
        assert_eq!(
            r.dhcp_hosts,
            format!("{header}02:00:00:00:00:01,10.1.0.5,app1\n02:00:00:00:00:02,10.1.0.6\n")
        );
        assert_eq!(r.lease_file, Path::new("/run/zedctr/dnsmasq/bn1.leases"));
        assert_eq!(
            layout().files("bn1").definition,
            Path::new("/run/zedctr/services/dnsmasq@bn1.toml")
        );
    }

    #[test]
    fn the_definition_is_one_zedinit_accepts() {
        let r = render(&instance(FULL), &layout());
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("dnsmasq@bn1.toml"), &r.definition).expect("write");
        let loaded = zedinit::parse::load_dirs(&[dir.path().to_path_buf()]);
        assert!(
            loaded.errors.is_empty(),
            "{:?}\n{}",
            loaded.errors,
            r.definition
        );
        assert!(r.definition.contains(r#"command = ["/usr/sbin/dnsmasq", "--keep-in-foreground", "--conf-file=/run/zedctr/dnsmasq/bn1.conf"]"#));
        assert!(
            r.definition
                .contains(r#""/run/zedctr/dnsmasq:/run/zedctr/dnsmasq:ro","#),
            "{}",
            r.definition
        );
        assert!(
            r.definition
                .contains(r#""/run/zedctr/dnsmasq/bn1.leases:/run/zedctr/dnsmasq/bn1.leases","#),
            "the lease file alone writable: {}",
            r.definition
        );
    }

    #[test]
    fn a_lease_file_elsewhere_gets_its_own_writable_bind() {
        let text = format!("{FULL}lease-file = \"/persist/leases/bn1.leases\"\n");
        let r = render(&instance(&text), &layout());
        assert!(
            r.definition
                .contains(r#""/run/zedctr/dnsmasq:/run/zedctr/dnsmasq:ro","#),
            "{}",
            r.definition
        );
        assert!(
            r.definition
                .contains(r#""/persist/leases/bn1.leases:/persist/leases/bn1.leases","#),
            "{}",
            r.definition
        );
        assert!(
            r.conf
                .contains("dhcp-leasefile=/persist/leases/bn1.leases\n")
        );
    }

    /// The definition for `instance` under `layout`, through zedinit's own parser.
    fn parsed_definition(r: &Rendered) -> zedinit::spec::ServiceSpec {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join(format!("{}.toml", service_name(&r.bridge)));
        std::fs::write(&file, &r.definition).expect("write");
        let loaded = zedinit::parse::load_dirs(&[dir.path().to_path_buf()]);
        assert!(
            loaded.errors.is_empty(),
            "{:?}\n{}",
            loaded.errors,
            r.definition
        );
        loaded
            .specs()
            .remove(&service_name(&r.bridge))
            .expect("the service")
    }

    #[test]
    fn paths_with_any_characters_are_written_as_toml_strings_zedinit_reads_back() {
        // What the command line may name (root's choice, but still any path), with what
        // Rust's `{:?}` writes in ways TOML does not read (`\u{ad}`, `\u{7f}`) and what
        // it must escape (`"`, `\`).
        let odd = "/opt/dns\u{ad}masq \u{200b}\u{85}\u{7f}\u{1}\t\"q\"\\é\u{1f600}";
        let layout = Layout {
            out_dir: format!("{odd}/out").into(),
            services_dir: "/run/zedctr/services".into(),
            dnsmasq: format!("{odd}/dnsmasq").into(),
        };
        let text = format!("{FULL}lease-file = \"/persist/dns+masq@bn1/x-y_z.leases\"\n");
        let r = render(&instance(&text), &layout);
        let spec = parsed_definition(&r);
        assert_eq!(
            spec.command,
            [
                format!("{odd}/dnsmasq"),
                "--keep-in-foreground".into(),
                format!("--conf-file={odd}/out/bn1.conf"),
            ]
        );
        let run = spec.run.expect("[run]");
        let binds: Vec<(String, String, bool)> = run
            .binds
            .iter()
            .map(|b| {
                (
                    b.src.display().to_string(),
                    b.dst.display().to_string(),
                    b.readonly,
                )
            })
            .collect();
        let lease = "/persist/dns+masq@bn1/x-y_z.leases".to_string();
        assert_eq!(
            binds,
            [
                (format!("{odd}/out"), format!("{odd}/out"), true),
                (lease.clone(), lease, false),
            ]
        );
    }

    #[test]
    fn dns_only_and_reservations_only() {
        let r = render(
            &instance("bridge = \"bn2\"\nipv4 = \"10.2.0.1/16\"\n"),
            &layout(),
        );
        assert!(!r.conf.contains("dhcp"), "no DHCP at all: {}", r.conf);
        let r = render(
            &instance(
                "bridge = \"bn2\"\nipv4 = \"10.2.0.1/16\"\ndhcp-hosts = [{ mac = \"02:00:00:00:00:09\", ip = \"10.2.0.9\" }]\n",
            ),
            &layout(),
        );
        assert!(
            r.conf
                .contains("dhcp-range=10.2.0.0,static,255.255.0.0,12h\n"),
            "{}",
            r.conf
        );
    }
}

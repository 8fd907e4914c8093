//! dnsmasq-render with the real dnsmasq under zedinit (PID 1 of its own pid namespace,
//! in a device network namespace with a bridge) and a real DHCP/DNS client (busybox
//! udhcpc and nslookup) in a namespace on that bridge: a lease for a reservation, names
//! answered, names changed without a restart, a removed reservation's lease pruned with
//! a restart, a bad instance file changing nothing, a removed instance stopping its
//! dnsmasq. Needs root; everything is removed when the test ends, even on failure.

use lab::avahi::{Lab, require_root, sh};
use lab::wait_until;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;
use zedctr_proto::client::Client;
use zedctr_proto::protocol::{Request, Verb};
use zedctr_proto::status::StatusReport;

const RENDER: &str = env!("CARGO_BIN_EXE_dnsmasq-render");
const CLIENT_MAC: &str = "02:00:00:00:00:51";

struct Device {
    // Dropped first: zedinit (and its dnsmasq) ends before the namespaces go.
    _zedinit: lab::zedinit::Lab,
    net: Lab,
    client: String,
    services: PathBuf,
    out: PathBuf,
    socket: PathBuf,
    leases: PathBuf,
}

impl Device {
    fn new() -> Device {
        let mut net = Lab::new(1);
        let dir = net.dir.path().to_path_buf();
        let mut zedinit = lab::zedinit::Lab::new().in_netns(&net.dev);
        let (services, out, socket) = (
            zedinit.services.clone(),
            dir.join("dnsmasq"),
            zedinit.socket.clone(),
        );
        // A client namespace on the bridge, with the reserved MAC and no address yet.
        let client = format!("{}c", &net.dev[..net.dev.len() - 1]);
        let veth = format!("{}w", &net.dev[..net.dev.len() - 1]);
        net.apps.push(client.clone());
        sh(&format!(
            "ip netns add {client} && ip -n {client} link set lo up && \
             ip -n {dev} link add {veth} type veth peer name eth0 netns {client} && \
             ip -n {dev} link set {veth} master {br} up && \
             ip -n {client} link set eth0 address {CLIENT_MAC} up",
            dev = net.dev,
            br = net.bridges[0],
        ));
        zedinit.start();
        let leases = dir.join(format!("{}.leases", net.bridges[0]));
        Device {
            _zedinit: zedinit,
            net,
            client,
            services,
            out,
            socket,
            leases,
        }
    }

    fn ip(&self, last: u8) -> String {
        self.net.ip(0, last)
    }

    fn status(&self) -> Option<StatusReport> {
        let mut client = Client::connect(&self.socket).ok()?;
        let answer = client
            .call(&Request::new(Verb::Status), Duration::from_secs(5))
            .ok()?;
        serde_json::from_value(answer.data?).ok()
    }

    fn service(&self) -> String {
        format!("dnsmasq@{}", self.net.bridges[0])
    }

    /// The dnsmasq's state and pid.
    fn dnsmasq(&self) -> (String, Option<i32>) {
        let report = self.status().expect("status");
        match report.service(&self.service()) {
            Some(s) => (s.state.clone(), s.pid),
            None => ("absent".into(), None),
        }
    }

    fn instance_file(&self) -> PathBuf {
        self.net.instances().join("0-net.toml")
    }

    fn write_instance(&self, hosts: &[(&str, u8)], reserve: bool) {
        let hosts: Vec<String> = hosts
            .iter()
            .map(|(name, last)| format!("{{ name = \"{name}\", ip = \"{}\" }}", self.ip(*last)))
            .collect();
        let reservation = if reserve {
            format!(
                "dhcp-hosts = [{{ mac = \"{CLIENT_MAC}\", ip = \"{}\", name = \"client\" }}]\n",
                self.ip(5)
            )
        } else {
            String::new()
        };
        let text = format!(
            "bridge = \"{}\"\nipv4 = \"{}/24\"\ndhcp-range = \"{},{}\"\nhosts = [{}]\n{reservation}lease-file = \"{}\"\n",
            self.net.bridges[0],
            self.ip(1),
            self.ip(100),
            self.ip(200),
            hosts.join(", "),
            self.leases.display()
        );
        // As a writer should: a hidden name, then a rename.
        let hidden = self.net.instances().join(".0-net.toml");
        std::fs::write(&hidden, text).expect("instance");
        std::fs::rename(&hidden, self.instance_file()).expect("rename");
    }

    /// `dnsmasq-render --once`: (exit code, stderr).
    fn render(&self) -> (i32, String) {
        self.render_via(&self.socket)
    }

    /// `dnsmasq-render --once` talking to zedinit at `socket`.
    fn render_via(&self, socket: &Path) -> (i32, String) {
        let output = Command::new(RENDER)
            .arg("--once")
            .arg("--network-instances")
            .arg(self.net.instances())
            .arg("--out-dir")
            .arg(&self.out)
            .arg("--services-dir")
            .arg(&self.services)
            .arg("--control-socket")
            .arg(socket)
            .output()
            .expect("dnsmasq-render");
        (
            output.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    }

    fn in_client(&self, command: &str) -> (bool, String) {
        let output = Command::new("ip")
            .args(["netns", "exec", &self.client, "sh", "-c", command])
            .output()
            .expect("ip netns exec");
        let text = String::from_utf8_lossy(&output.stdout).into_owned()
            + &String::from_utf8_lossy(&output.stderr);
        (output.status.success(), text)
    }

    /// The address a DHCP exchange gives the client (it does not configure it).
    fn dhcp(&self) -> Option<String> {
        let (ok, text) = self.in_client("busybox udhcpc -i eth0 -n -q -t 3 -T 1 -s /bin/true 2>&1");
        let line = text.lines().find(|l| l.contains("lease of"))?;
        ok.then(|| {
            line.split_whitespace()
                .skip_while(|w| *w != "of")
                .nth(1)
                .map(str::to_string)
        })?
    }

    /// The A record the bridge's dnsmasq gives for `name`, if any.
    fn lookup(&self, name: &str) -> Option<String> {
        let (_, text) = self.in_client(&format!(
            "busybox nslookup -type=a {name} {} 2>&1",
            self.ip(1)
        ));
        // busybox prints the server first ("Address: 10.x.1.1:53"), then the answer.
        text.lines()
            .filter_map(|l| l.trim().strip_prefix("Address:"))
            .map(str::trim)
            .find(|a| !a.contains(':') && !a.contains('#'))
            .map(str::to_string)
    }
}

#[test]
fn dnsmasq_follows_the_network_instance_with_the_least_disruption() {
    if !require_root("dnsmasq_follows_the_network_instance_with_the_least_disruption") {
        return;
    }
    let device = Device::new();
    device.write_instance(&[("datastore", 77)], true);
    let (code, stderr) = device.render();
    assert_eq!(code, 0, "render: {stderr}");
    wait_until("dnsmasq running", || device.dnsmasq().0 == "running");

    // The reservation: the client gets its address, and the lease is on file.
    let mut got = None;
    wait_until("a DHCP lease from the bridge's dnsmasq", || {
        got = device.dhcp();
        got.is_some()
    });
    assert_eq!(got, Some(device.ip(5)), "the reserved address");
    wait_until("the lease on file", || {
        std::fs::read_to_string(&device.leases).is_ok_and(|t| t.contains(CLIENT_MAC))
    });
    sh(&format!(
        "ip -n {} addr add {}/24 dev eth0",
        device.client,
        device.ip(5)
    ));
    wait_until("the instance's name answered", || {
        device.lookup("datastore") == Some(device.ip(77))
    });

    // A name added: the hosts file changes, dnsmasq rereads it; no restart.
    let (_, pid) = device.dnsmasq();
    device.write_instance(&[("datastore", 77), ("second", 78)], true);
    let (code, stderr) = device.render();
    assert_eq!(code, 0, "render: {stderr}");
    wait_until("the new name answered", || {
        device.lookup("second") == Some(device.ip(78))
    });
    assert_eq!(
        device.dnsmasq(),
        ("running".into(), pid),
        "the same dnsmasq"
    );

    // An upstream server added (a configuration change: a restart), by a pass that can't
    // reach zedinit: the files are written, the restart is owed (a marker), dnsmasq runs
    // on as it was; the next pass, with nothing new to write, still restarts it.
    device.write_instance(&[("datastore", 77), ("second", 78)], true);
    let mut text = std::fs::read_to_string(device.instance_file()).expect("instance");
    text.push_str(&format!("servers = [\"{}\"]\n", device.ip(99)));
    std::fs::write(device.instance_file(), text).expect("instance");
    let (code, stderr) = device.render_via(&device.net.dir.path().join("nobody-listens.sock"));
    assert_eq!(code, 1, "zedinit unreachable: the pass fails: {stderr}");
    assert!(
        stderr.contains("restart dnsmasq@"),
        "says what it could not do: {stderr}"
    );
    let marker = device.out.join(".pending").join(&device.net.bridges[0]);
    assert_eq!(
        std::fs::read_to_string(&marker).expect("marker"),
        "restart\n"
    );
    assert_eq!(
        device.dnsmasq(),
        ("running".into(), pid),
        "not restarted yet"
    );
    let (code, stderr) = device.render();
    assert_eq!(code, 0, "render: {stderr}");
    let (state, restarted) = device.dnsmasq();
    assert_eq!(state, "running");
    assert_ne!(restarted, pid, "the owed restart was done");
    assert!(!marker.exists(), "nothing owed any more");
    let pid = restarted;
    wait_until("names answered after the restart", || {
        device.lookup("second") == Some(device.ip(78))
    });

    // A bad instance file: reported with file and line, and nothing it runs changes.
    let conf = device.out.join(format!("{}.conf", device.net.bridges[0]));
    let conf_before = std::fs::read_to_string(&conf).expect("conf");
    std::fs::write(
        device.instance_file(),
        "bridge = \"x\"\nipv4 = \"not an address\"\n",
    )
    .expect("bad");
    let (code, stderr) = device.render();
    assert_eq!(code, 1, "a bad instance fails the pass");
    assert!(
        stderr.contains("0-net.toml:2: ipv4"),
        "names file, line and key: {stderr}"
    );
    assert_eq!(std::fs::read_to_string(&conf).expect("conf"), conf_before);
    assert_eq!(device.dnsmasq(), ("running".into(), pid), "untouched");

    // The reservation removed: dnsmasq is stopped, the client's lease pruned, and started
    // again; the client now gets an address from the dynamic range.
    device.write_instance(&[("datastore", 77), ("second", 78)], false);
    let (code, stderr) = device.render();
    assert_eq!(code, 0, "render: {stderr}");
    let (state, new_pid) = device.dnsmasq();
    assert_eq!(state, "running");
    assert_ne!(new_pid, pid, "restarted");
    let leases = std::fs::read_to_string(&device.leases).unwrap_or_default();
    assert!(
        !leases.contains(&device.ip(5)),
        "the reserved address's lease is gone: {leases}"
    );
    sh(&format!("ip -n {} addr flush dev eth0", device.client));
    let mut got = None;
    wait_until("a dynamic lease", || {
        got = device.dhcp();
        got.is_some()
    });
    let last: u8 = got
        .as_deref()
        .and_then(|a| a.rsplit('.').next()?.parse().ok())
        .expect("an address");
    assert!(
        (100..=200).contains(&last),
        "from the dynamic range: {got:?}"
    );

    // The instance removed: its dnsmasq goes, and so do its files.
    std::fs::remove_file(device.instance_file()).expect("rm");
    let (code, stderr) = device.render();
    assert_eq!(code, 0, "render: {stderr}");
    wait_until("dnsmasq removed", || device.dnsmasq().0 == "absent");
    assert!(!conf.exists(), "its configuration removed");
    assert!(
        !device
            .services
            .join(format!("{}.toml", device.service()))
            .exists()
    );
}

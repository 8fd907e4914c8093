//! dnsmasq-render with the real dnsmasq under zedinit (PID 1 of its own pid namespace,
//! in a device network namespace with a bridge) and a real DHCP/DNS client (busybox
//! udhcpc and nslookup) in a namespace on that bridge: a lease for a reservation, names
//! answered, names changed without a restart, a removed reservation's lease pruned with
//! a restart, a bad instance file changing nothing, a removed instance stopping its
//! dnsmasq. Needs root; everything is removed when the test ends, even on failure.

mod common;

use lab::avahi::{Lab, require_root, sh};
use lab::dhcp_client::DhcpClient;
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
    client: DhcpClient,
    services: PathBuf,
    out: PathBuf,
    socket: PathBuf,
    leases: PathBuf,
}

impl Device {
    fn new() -> Device {
        lab::require_programs("dnsmasq device", &["dnsmasq"]);
        let mut net = Lab::new(1);
        let dir = net.dir.path().to_path_buf();
        let mut zedinit = lab::zedinit::Lab::new().in_netns(&net.dev);
        let (services, out, socket) = (
            zedinit.services.clone(),
            dir.join("dnsmasq"),
            zedinit.socket.clone(),
        );
        // A client on the first bridge, with the reserved MAC and no address yet.
        let client = DhcpClient::on_bridge(&mut net, 0, CLIENT_MAC);
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
        common::write_instance(
            &self.net,
            hosts,
            reserve.then_some(CLIENT_MAC),
            &self.leases,
        );
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

    /// The A record the bridge's dnsmasq gives for `name`, if any.
    fn lookup(&self, name: &str) -> Option<String> {
        self.client.lookup(name, &self.ip(1))
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
    common::take_reserved_lease(&device.client, &device.ip(5), &device.leases, CLIENT_MAC);
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
    sh(&format!("ip -n {} addr flush dev eth0", device.client.ns));
    let mut got = None;
    wait_until("a dynamic lease", || {
        got = device.client.dhcp();
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

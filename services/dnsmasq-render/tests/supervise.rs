//! `dnsmasq-render --supervise` alone, as in its own container with no zedinit: in a
//! device network namespace with two bridges it runs one real dnsmasq per network
//! instance itself, and a real DHCP/DNS client (busybox udhcpc and nslookup) on the
//! first bridge gets a lease for its reservation and the instance's names; a changed
//! name is answered by the same dnsmasq (no restart); a removed reservation restarts it
//! (stop, leases pruned, start); a dnsmasq killed is started again; a removed instance
//! stops its dnsmasq and leaves the other's alone; SIGTERM stops them all and exits 0.
//! It runs with only the capabilities its exported container is to have (`CAPS`).
//! Needs root; everything is removed when the test ends, even on failure.

mod common;

use lab::avahi::{Lab, require_root};
use lab::dhcp_client::DhcpClient;
use lab::wait_until;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};

const RENDER: &str = env!("CARGO_BIN_EXE_dnsmasq-render");
const CLIENT_MAC: &str = "02:00:00:00:00:52";
/// Exactly what its container is to be given (README, "Without zedinit"): dnsmasq's own
/// five (as the generated definition grants them), and KILL, to signal a dnsmasq that
/// has dropped to its own user.
const CAPS: &str = "-all,+net_bind_service,+net_admin,+net_raw,+setuid,+setgid,+kill";

struct Device {
    render: Option<Child>,
    said: Arc<Mutex<Vec<String>>>,
    net: Lab,
    client: DhcpClient,
    out: PathBuf,
    services: PathBuf,
    leases: PathBuf,
}

impl Device {
    fn new() -> Device {
        lab::require_programs("dnsmasq device", &["dnsmasq"]);
        let mut net = Lab::new(2);
        let dir = net.dir.path().to_path_buf();
        // A client on the first bridge, with the reserved MAC and no address yet.
        let client = DhcpClient::on_bridge(&mut net, 0, CLIENT_MAC);
        let leases = dir.join(format!("{}.leases", net.bridges[0]));
        Device {
            render: None,
            said: Arc::default(),
            client,
            out: dir.join("dnsmasq"),
            services: dir.join("services"),
            leases,
            net,
        }
    }

    fn ip(&self, last: u8) -> String {
        self.net.ip(0, last)
    }

    fn instance_file(&self, b: usize) -> PathBuf {
        self.net.instances().join(format!("{b}-net.toml"))
    }

    /// The first bridge's instance: names, a reservation for the client (or none).
    fn write_instance(&self, hosts: &[(&str, u8)], reserve: bool) {
        common::write_instance(
            &self.net,
            hosts,
            reserve.then_some(CLIENT_MAC),
            &self.leases,
        );
    }

    /// `dnsmasq-render --supervise` in the device namespace, root with only [`CAPS`] and
    /// no_new_privs (as its container); what it says is kept.
    fn start_render(&mut self) {
        let mut child = self
            .net
            .in_device(std::path::Path::new("setpriv"))
            .args([
                "--no-new-privs",
                "--inh-caps",
                "-all",
                "--bounding-set",
                CAPS,
                RENDER,
            ])
            .arg("--supervise")
            .arg("--network-instances")
            .arg(self.net.instances())
            .arg("--out-dir")
            .arg(&self.out)
            .arg("--services-dir")
            .arg(&self.services)
            .env("ZEDCTR_LOG_FORMAT", "text")
            .stderr(Stdio::piped())
            .spawn()
            .expect("dnsmasq-render");
        let stderr = child.stderr.take().expect("stderr");
        let said = self.said.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                said.lock().expect("lock").push(line);
            }
        });
        self.render = Some(child);
    }

    fn render_pid(&self) -> u32 {
        self.render.as_ref().expect("render").id()
    }

    fn said(&self) -> String {
        self.said.lock().expect("lock").join("\n")
    }

    /// The live dnsmasq dnsmasq-render runs for bridge `b`, by its `--conf-file`.
    fn dnsmasq(&self, b: usize) -> Option<i32> {
        let pid = self.render_pid();
        let children = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).ok()?;
        let conf = format!(
            "--conf-file={}",
            self.out
                .join(format!("{}.conf", self.net.bridges[b]))
                .display()
        );
        children
            .split_whitespace()
            .filter_map(|p| p.parse::<i32>().ok())
            .find(|p| {
                let cmdline = std::fs::read(format!("/proc/{p}/cmdline")).unwrap_or_default();
                let live = std::fs::read_to_string(format!("/proc/{p}/stat")).is_ok_and(|s| {
                    s.rsplit_once(") ")
                        .is_some_and(|(_, r)| !r.starts_with('Z'))
                });
                live && cmdline.split(|c| *c == 0).any(|a| a == conf.as_bytes())
            })
    }

    fn wait_dnsmasq(&self, b: usize) -> i32 {
        let mut pid = None;
        wait_until(&format!("dnsmasq for bridge {b} ({})", self.said()), || {
            pid = self.dnsmasq(b);
            pid.is_some()
        });
        pid.expect("pid")
    }

    /// The A record the first bridge's dnsmasq gives for `name`, if any.
    fn lookup(&self, name: &str) -> Option<String> {
        self.client.lookup(name, &self.ip(1))
    }

    fn wait_answer(&self, name: &str, last: u8) {
        wait_until(&format!("{name} answered ({})", self.said()), || {
            self.lookup(name) == Some(self.ip(last))
        });
    }
}

impl Drop for Device {
    fn drop(&mut self) {
        // Its dnsmasq first (SIGTERM stops them), then the namespaces (the lab).
        if let Some(mut render) = self.render.take() {
            let _ = kill(Pid::from_raw(render.id() as i32), Signal::SIGTERM);
            let _ = render.wait();
        }
    }
}

fn gone(pid: i32) -> bool {
    !std::path::Path::new(&format!("/proc/{pid}")).exists()
}

#[test]
fn supervising_its_own_dnsmasq_it_serves_follows_restarts_and_stops_them() {
    if !require_root("supervising_its_own_dnsmasq_it_serves_follows_restarts_and_stops_them") {
        return;
    }
    let mut device = Device::new();
    device.write_instance(&[("datastore", 77)], true);
    device.start_render();
    let first = device.wait_dnsmasq(0);
    let second = device.wait_dnsmasq(1);

    // The reservation: the client gets its address, and the lease is on file.
    common::take_reserved_lease(&device.client, &device.ip(5), &device.leases, CLIENT_MAC);
    device.wait_answer("datastore", 77);

    // A name changed: the hosts file is rewritten, the same dnsmasq answers it.
    device.write_instance(&[("renamed", 77)], true);
    device.wait_answer("renamed", 77);
    assert_eq!(device.dnsmasq(0), Some(first), "not restarted");

    // The reservation removed: stopped, its lease pruned, started again.
    device.write_instance(&[("renamed", 77)], false);
    let mut restarted = None;
    wait_until(
        &format!("a new dnsmasq for the first bridge ({})", device.said()),
        || {
            restarted = device.dnsmasq(0).filter(|p| *p != first);
            restarted.is_some()
        },
    );
    assert!(gone(first), "the old one was stopped and reaped");
    let leases = std::fs::read_to_string(&device.leases).unwrap_or_default();
    assert!(!leases.contains(CLIENT_MAC), "its lease pruned: {leases}");
    device.wait_answer("renamed", 77);
    let first = restarted.expect("pid");

    // Killed: it comes back (after the backoff), and answers again.
    kill(Pid::from_raw(first), Signal::SIGKILL).expect("SIGKILL dnsmasq");
    let mut back = None;
    wait_until("the killed dnsmasq started again", || {
        back = device.dnsmasq(0).filter(|p| *p != first);
        back.is_some()
    });
    assert!(gone(first), "the killed one was reaped");
    assert!(
        device.said().contains("killed by SIGKILL"),
        "{}",
        device.said()
    );
    device.wait_answer("renamed", 77);
    let first = back.expect("pid");

    // The second instance removed: its dnsmasq stops; the first's runs on.
    std::fs::remove_file(device.instance_file(1)).expect("rm");
    wait_until("the second dnsmasq stopped", || gone(second));
    assert_eq!(device.dnsmasq(0), Some(first));
    let conf = device.out.join(format!("{}.conf", device.net.bridges[1]));
    wait_until("its files removed", || !conf.exists());

    // SIGTERM: every dnsmasq stopped, exit 0.
    let mut render = device.render.take().expect("render");
    kill(Pid::from_raw(render.id() as i32), Signal::SIGTERM).expect("SIGTERM");
    let status = render.wait().expect("wait");
    assert!(status.success(), "{status:?}: {}", device.said());
    assert!(gone(first), "its dnsmasq stopped with it");
}

//! A lab for `.local` datastore tests: a device network namespace
//! with bridges and network-instance files, app namespaces on them running a real
//! avahi-daemon (no D-Bus, private /run) and optionally busybox httpd. Names are unique
//! per lab; everything is removed when the lab is dropped, even after a panic.

use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::{Duration, Instant};

pub use crate::{require_root, sh};

static SEQ: AtomicU32 = AtomicU32::new(0);

/// Avahi settings of one app.
pub struct App {
    pub host: &'static str,
    pub ipv6_defaults: bool,
    pub workstation: bool,
    pub services: &'static [&'static str],
}

impl App {
    pub fn new(host: &'static str) -> Self {
        App {
            host,
            ipv6_defaults: false,
            workstation: true,
            services: &[],
        }
    }
}

pub struct Lab {
    pub dir: tempfile::TempDir,
    pub dev: String,
    pub apps: Vec<String>,
    pub bridges: Vec<String>,
    pub subnet: u8,
    daemons: Vec<Child>,
    /// Responder threads: their stop flag and handle.
    responders: Vec<(Arc<AtomicBool>, std::thread::JoinHandle<()>)>,
}

impl Lab {
    /// A device namespace with `bridges` bridges: 10.S.1.1/24, 10.S.2.1/24.
    pub fn new(bridges: usize) -> Lab {
        crate::require_programs("avahi lab", &["avahi-daemon", "busybox", "ip"]);
        let n = SEQ.fetch_add(1, Ordering::Relaxed);
        let tag = format!("{}{}", std::process::id() % 10_000, n);
        let subnet = 100 + ((std::process::id() as u8).wrapping_add(n as u8 * 7) % 100);
        let dir = tempfile::tempdir().expect("tempdir");
        let dev = format!("ld{tag}d");
        let mut lab = Lab {
            dir,
            dev: dev.clone(),
            apps: vec![],
            bridges: vec![],
            subnet,
            daemons: vec![],
            responders: vec![],
        };
        sh(&format!("ip netns add {dev} && ip -n {dev} link set lo up"));
        std::fs::create_dir_all(lab.instances()).expect("instances dir");
        for b in 0..bridges {
            let br = format!("lb{tag}{b}");
            sh(&format!(
                "ip -n {dev} link add {br} type bridge stp_state 0 && ip -n {dev} addr add 10.{subnet}.{}.1/24 dev {br} && ip -n {dev} link set {br} up",
                b + 1
            ));
            std::fs::write(
                lab.instances().join(format!("{b}-net.toml")),
                format!(
                    "bridge = \"{br}\"\nipv4 = \"10.{subnet}.{}.1/24\"\nlease-file = \"{}\"\n",
                    b + 1,
                    lab.dir.path().join(format!("{br}.leases")).display()
                ),
            )
            .expect("instance");
            lab.bridges.push(br);
        }
        lab
    }

    pub fn instances(&self) -> PathBuf {
        self.dir.path().join("instances")
    }

    /// An app namespace on bridge `b` at 10.S.b.`last`, running avahi as `app` says.
    pub fn app(&mut self, b: usize, last: u8, app: &App) -> String {
        let ns = self.bare_app(b, last);
        self.avahi(&ns, app);
        ns
    }

    /// An app namespace on bridge `b` at 10.S.b.`last`, with nothing running in it.
    pub fn bare_app(&mut self, b: usize, last: u8) -> String {
        let ns = format!("{}a{}", &self.dev[..self.dev.len() - 1], self.apps.len());
        let (dev, br, s) = (&self.dev, &self.bridges[b], self.subnet);
        let veth = format!("{}v{}", &self.dev[..self.dev.len() - 1], self.apps.len());
        sh(&format!(
            "ip netns add {ns} && ip -n {ns} link set lo up && \
             ip -n {dev} link add {veth} type veth peer name eth0 netns {ns} && \
             ip -n {dev} link set {veth} master {br} up && \
             ip -n {ns} link set eth0 multicast on up && ip -n {ns} addr add 10.{s}.{}.{last}/24 dev eth0",
            b + 1
        ));
        self.apps.push(ns.clone());
        ns
    }

    /// Starts avahi-daemon in app namespace `ns` as `app` says; returns once it is up.
    pub fn avahi(&mut self, ns: &str, app: &App) {
        let state = self.dir.path().join(ns);
        std::fs::create_dir_all(state.join("services")).expect("state");
        for ty in app.services {
            let port = if *ty == "_https._tcp" { 443 } else { 80 };
            std::fs::write(
                state.join("services").join(format!("{}.service", &ty[1..ty.len() - 5])),
                format!("<?xml version=\"1.0\" standalone=\"no\"?>\n<!DOCTYPE service-group SYSTEM \"avahi-service.dtd\">\n<service-group><name replace-wildcards=\"yes\">%h</name><service><type>{ty}</type><port>{port}</port></service></service-group>\n"),
            )
            .expect("service file");
        }
        let (ipv6, aaaa) = if app.ipv6_defaults {
            ("yes", "yes")
        } else {
            ("no", "no")
        };
        let conf = state.join("avahi-daemon.conf");
        std::fs::write(
            &conf,
            format!(
                "[server]\nhost-name={}\ndomain-name=local\nuse-ipv4=yes\nuse-ipv6={ipv6}\nallow-interfaces=eth0\nenable-dbus=no\nratelimit-interval-usec=1000000\nratelimit-burst=1000\n[wide-area]\nenable-wide-area=no\n[publish]\npublish-hinfo=no\npublish-workstation={}\npublish-aaaa-on-ipv4={aaaa}\n",
                app.host,
                if app.workstation { "yes" } else { "no" }
            ),
        )
        .expect("conf");
        let log = std::fs::File::create(state.join("avahi.log")).expect("log");
        let child = Command::new("ip")
            .args(["netns", "exec", ns, "unshare", "--mount", "--propagation", "private", "sh", "-ec"])
            .arg(format!(
                "mount -t tmpfs -o mode=0755 lab-run /run; mount --bind {} /etc/avahi/services; exec avahi-daemon --file={} --no-rlimits",
                state.join("services").display(),
                conf.display()
            ))
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("avahi-daemon");
        self.daemons.push(child);
        let start = Instant::now();
        while !std::fs::read_to_string(state.join("avahi.log"))
            .unwrap_or_default()
            .contains("Server startup complete")
        {
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "avahi in {ns} did not start"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// `localds resolve` in the device namespace; (exit code, JSON).
    pub fn resolve(
        &self,
        host: &str,
        methods: &str,
        budget_ms: u64,
    ) -> (i32, serde_json::Value, Duration) {
        self.resolve_with(host, methods, budget_ms, &[])
    }

    /// [`Self::resolve`] with more arguments (`--refused BRIDGE=IP`).
    pub fn resolve_with(
        &self,
        host: &str,
        methods: &str,
        budget_ms: u64,
        extra: &[String],
    ) -> (i32, serde_json::Value, Duration) {
        let start = Instant::now();
        let out = Command::new("ip")
            .args(["netns", "exec", &self.dev])
            .arg(crate::bin("localds"))
            .args(["resolve", host, "--instances"])
            .arg(self.instances())
            .args(["--methods", methods, "--budget", &format!("{budget_ms}ms")])
            .args(extra)
            .stderr(Stdio::inherit())
            .output()
            .expect("localds");
        let took = start.elapsed();
        let json = serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null);
        (out.status.code().unwrap_or(-1), json, took)
    }

    /// A dnsmasq lease on bridge `b`: `ip` to a client that called itself `hostname`.
    pub fn lease(&self, b: usize, ip: &str, hostname: &str) {
        std::fs::write(
            self.dir.path().join(format!("{}.leases", self.bridges[b])),
            format!("0 02:00:00:00:00:01 {ip} {hostname} *\n"),
        )
        .expect("lease");
    }

    /// Adds `toml` (keys such as `hosts = [...]` or `dhcp-hosts = [...]`) to bridge `b`'s
    /// network-instance file, after what [`Lab::new`] wrote there.
    pub fn add_to_instance(&self, b: usize, toml: &str) {
        let path = self.instances().join(format!("{b}-net.toml"));
        let mut text = std::fs::read_to_string(&path).expect("instance file");
        text.push_str(toml);
        text.push('\n');
        std::fs::write(&path, text).expect("instance file");
    }

    /// Restores bridge `b`'s network-instance file to what [`Lab::new`] wrote.
    pub fn reset_instance(&self, b: usize) {
        let path = self.instances().join(format!("{b}-net.toml"));
        let text = std::fs::read_to_string(&path).expect("instance file");
        let kept: Vec<&str> = text
            .lines()
            .filter(|l| {
                ["bridge =", "ipv4 =", "lease-file ="]
                    .iter()
                    .any(|k| l.starts_with(k))
            })
            .collect();
        std::fs::write(&path, kept.join("\n") + "\n").expect("instance file");
    }

    pub fn ip(&self, b: usize, last: u8) -> String {
        format!("10.{}.{}.{last}", self.subnet, b + 1)
    }

    pub fn stop_avahi(&mut self) {
        for mut d in self.daemons.drain(..) {
            let _ = d.kill();
            let _ = d.wait();
        }
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for (stop, _) in &self.responders {
            stop.store(true, Ordering::Relaxed);
        }
        for (_, thread) in self.responders.drain(..) {
            let _ = thread.join();
        }
        self.stop_avahi();
        for ns in self.apps.iter().chain(std::iter::once(&self.dev)) {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}

impl Lab {
    /// Runs busybox httpd in app namespace `ns` on `ip:port`, serving `dir`; its log
    /// (with -vv: client address and response code per request) goes to `<lab>/<ns>-http.log`.
    pub fn httpd(&mut self, ns: &str, ip: &str, port: u16, dir: &std::path::Path) -> PathBuf {
        let log_path = self.dir.path().join(format!("{ns}-{port}-http.log"));
        let log = std::fs::File::create(&log_path).expect("http log");
        let child = Command::new("ip")
            .args([
                "netns",
                "exec",
                ns,
                "busybox",
                "httpd",
                "-f",
                "-vv",
                "-p",
                &format!("{ip}:{port}"),
                "-h",
            ])
            .arg(dir)
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("busybox httpd");
        self.daemons.push(child);
        // Ready when it accepts a connection (bash's /dev/tcp, from the app's namespace).
        let wait = format!(
            "for i in $(seq 200); do (exec 3<>/dev/tcp/{ip}/{port}) 2>/dev/null && exit 0; sleep 0.05; done; exit 1"
        );
        let up = Command::new("ip")
            .args(["netns", "exec", ns, "bash", "-c", &wait])
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        assert!(up, "busybox httpd on {ip}:{port} in {ns} did not come up");
        log_path
    }

    /// Stops the last server started with [`Lab::httpd`] (or any daemon by index).
    pub fn kill_daemon(&mut self, index: usize) {
        if index < self.daemons.len() {
            let mut d = self.daemons.remove(index);
            let _ = d.kill();
            let _ = d.wait();
        }
    }

    /// Takes a process the test started, to be killed with the lab.
    pub fn adopt(&mut self, child: Child) {
        self.daemons.push(child);
    }

    pub fn daemon_count(&self) -> usize {
        self.daemons.len()
    }

    /// A command run in the device namespace.
    pub fn in_device(&self, program: &std::path::Path) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.dev]).arg(program);
        c
    }
}

/// What a hostile responder ([`Lab::responder`]) says to every A query it hears.
#[derive(Debug, Clone, Copy)]
pub struct Claim {
    /// The address it gives for whatever name is asked.
    pub ip: Ipv4Addr,
    /// Answer with another id than the query's.
    pub wrong_id: bool,
}

impl Lab {
    /// A hostile mDNS responder in app namespace `ns` (one without avahi), listening on
    /// its address `own_ip`: it answers every A query for any name, by unicast from port
    /// 5353 to the querier, as `claim` says, at once. Stopped with the lab. Returns the
    /// number of queries it has answered so far, shared.
    pub fn responder(&mut self, ns: &str, own_ip: Ipv4Addr, claim: Claim) -> Arc<AtomicU32> {
        let stop = Arc::new(AtomicBool::new(false));
        let answered = Arc::new(AtomicU32::new(0));
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let netns = format!("/run/netns/{ns}");
        let (stop2, answered2) = (stop.clone(), answered.clone());
        let thread = std::thread::spawn(move || {
            crate::netns::enter_netns(&netns);
            let socket = UdpSocket::bind(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 5353))
                .expect("bind udp/5353 in the responder's namespace");
            socket
                .join_multicast_v4(&Ipv4Addr::new(224, 0, 0, 251), &own_ip)
                .expect("join 224.0.0.251");
            socket
                .set_read_timeout(Some(Duration::from_millis(50)))
                .expect("timeout");
            let _ = ready_tx.send(());
            let mut buf = [0u8; 9000];
            while !stop2.load(Ordering::Relaxed) {
                let Ok((n, from)) = socket.recv_from(&mut buf) else {
                    continue;
                };
                if let Some(reply) = claim_reply(&buf[..n], claim) {
                    if socket.send_to(&reply, from).is_ok() {
                        answered2.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        });
        ready_rx
            .recv_timeout(Duration::from_secs(10))
            .expect("responder started");
        self.responders.push((stop, thread));
        answered
    }
}

/// The reply to a query (None for anything else): its question, and one A record for
/// the name asked with `claim.ip`, cache-flush set as responders do.
fn claim_reply(query: &[u8], claim: Claim) -> Option<Vec<u8>> {
    if query.len() < 12 || query[2] & 0x80 != 0 {
        return None;
    }
    let mut end = 12;
    while *query.get(end)? != 0 {
        end += 1 + usize::from(query[end]);
    }
    let question = query.get(12..end + 5)?;
    let id = u16::from_be_bytes([query[0], query[1]]) ^ u16::from(claim.wrong_id);
    let mut p = id.to_be_bytes().to_vec();
    p.extend_from_slice(&[0x84, 0x00, 0, 1, 0, 1, 0, 0, 0, 0]);
    p.extend_from_slice(question);
    p.extend_from_slice(&[0xc0, 12, 0, 1, 0x80, 1, 0, 0, 0, 120, 0, 4]);
    p.extend_from_slice(&claim.ip.octets());
    Some(p)
}

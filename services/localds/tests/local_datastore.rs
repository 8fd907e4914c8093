//! The `.local` datastore against real avahi-daemons: a device namespace with two
//! bridges, app namespaces with only on-link routes, each running avahi (no D-Bus,
//! private /run). Each test makes its own uniquely named namespaces and removes them
//! in a guard, even when it fails. The resolver runs as `localds resolve` inside the
//! device namespace, as the downloader would.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

const LOCALDS: &str = env!("CARGO_BIN_EXE_localds");
static SEQ: AtomicU32 = AtomicU32::new(0);

fn require_root(test: &str) -> bool {
    if nix_is_root() {
        return true;
    }
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("{test}: needs root (CI=true, so this is a failure, not a skip)");
    }
    eprintln!("\n!!!!! SKIPPED {test}: needs root (network namespaces, avahi). !!!!!\n");
    false
}

fn nix_is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

fn sh(cmd: &str) {
    let ok = Command::new("sh")
        .arg("-ec")
        .arg(cmd)
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    assert!(ok, "failed: {cmd}");
}

/// Avahi settings of one app.
struct App {
    host: &'static str,
    ipv6_defaults: bool,
    workstation: bool,
    services: &'static [&'static str],
}

impl App {
    fn new(host: &'static str) -> Self {
        App {
            host,
            ipv6_defaults: false,
            workstation: true,
            services: &[],
        }
    }
}

struct Lab {
    dir: tempfile::TempDir,
    dev: String,
    apps: Vec<String>,
    bridges: Vec<String>,
    subnet: u8,
    daemons: Vec<Child>,
}

impl Lab {
    /// A device namespace with `bridges` bridges: 10.S.1.1/24, 10.S.2.1/24.
    fn new(bridges: usize) -> Lab {
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

    fn instances(&self) -> PathBuf {
        self.dir.path().join("instances")
    }

    /// An app namespace on bridge `b` at 10.S.b.`last`, running avahi as `app` says.
    fn app(&mut self, b: usize, last: u8, app: &App) -> String {
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
        let state = self.dir.path().join(&ns);
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
            .args(["netns", "exec", &ns, "unshare", "--mount", "--propagation", "private", "sh", "-ec"])
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
        ns
    }

    /// `localds resolve` in the device namespace; (exit code, JSON).
    fn resolve(
        &self,
        host: &str,
        methods: &str,
        budget_ms: u64,
    ) -> (i32, serde_json::Value, Duration) {
        let start = Instant::now();
        let out = Command::new("ip")
            .args([
                "netns",
                "exec",
                &self.dev,
                LOCALDS,
                "resolve",
                host,
                "--instances",
            ])
            .arg(self.instances())
            .args(["--methods", methods, "--budget-ms", &budget_ms.to_string()])
            .stderr(Stdio::inherit())
            .output()
            .expect("localds");
        let took = start.elapsed();
        let json = serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null);
        (out.status.code().unwrap_or(-1), json, took)
    }

    fn lease(&self, b: usize, ip: &str) {
        std::fs::write(
            self.dir.path().join(format!("{}.leases", self.bridges[b])),
            format!("0 02:00:00:00:00:01 {ip} app *\n"),
        )
        .expect("lease");
    }

    fn ip(&self, b: usize, last: u8) -> String {
        format!("10.{}.{}.{last}", self.subnet, b + 1)
    }

    fn stop_avahi(&mut self) {
        for mut d in self.daemons.drain(..) {
            let _ = d.kill();
            let _ = d.wait();
        }
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        self.stop_avahi();
        for ns in self.apps.iter().chain(std::iter::once(&self.dev)) {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}

fn expect_found(r: &(i32, serde_json::Value, Duration), by: &str, ip: &str) {
    assert_eq!(r.0, 0, "not found: {}", r.1);
    assert_eq!(r.1["resolved_by"], by, "{}", r.1);
    assert_eq!(r.1["candidates"][0]["ip"], ip, "{}", r.1);
}

#[test]
fn each_method_alone_finds_the_app() {
    if !require_root("each_method_alone_finds_the_app") {
        return;
    }
    let mut lab = Lab::new(1);
    lab.app(
        0,
        5,
        &App {
            services: &["_http._tcp", "_https._tcp"],
            ..App::new("dsapp")
        },
    );
    let ip = lab.ip(0, 5);
    for method in ["a-query", "workstation", "http", "https"] {
        let r = lab.resolve("dsapp.local", method, 4000);
        expect_found(&r, method, &ip);
    }
    // All together: the A query wins.
    expect_found(
        &lab.resolve("DSAPP.local.", "a-query,workstation,http,https", 4000),
        "a-query",
        &ip,
    );
}

#[test]
fn http_alone_with_workstation_unpublished() {
    if !require_root("http_alone_with_workstation_unpublished") {
        return;
    }
    let mut lab = Lab::new(1);
    lab.app(
        0,
        6,
        &App {
            workstation: false,
            services: &["_http._tcp"],
            ..App::new("webonly")
        },
    );
    expect_found(
        &lab.resolve("webonly.local", "http", 4000),
        "http",
        &lab.ip(0, 6),
    );
    let (code, json, _) = lab.resolve("webonly.local", "workstation", 1500);
    assert_eq!(code, 1, "no workstation published: {json}");
}

#[test]
fn ipv6_answers_first_do_not_hide_the_ipv4_one() {
    if !require_root("ipv6_answers_first_do_not_hide_the_ipv4_one") {
        return;
    }
    let mut lab = Lab::new(1);
    // avahi's defaults: use-ipv6 and publish-aaaa-on-ipv4, so the fe80 AAAA comes along.
    lab.app(
        0,
        7,
        &App {
            ipv6_defaults: true,
            ..App::new("v6app")
        },
    );
    expect_found(
        &lab.resolve("v6app.local", "workstation", 4000),
        "workstation",
        &lab.ip(0, 7),
    );
}

#[test]
fn exact_host_match_and_not_found_within_the_budget() {
    if !require_root("exact_host_match_and_not_found_within_the_budget") {
        return;
    }
    let mut lab = Lab::new(1);
    lab.app(0, 8, &App::new("dsapp-2"));
    let (code, json, took) = lab.resolve("dsapp.local", "a-query,workstation,http,https", 1500);
    assert_eq!(code, 1, "dsapp-2 must not match dsapp: {json}");
    assert!(
        took < Duration::from_millis(1500 + 500 + 300),
        "reported after {took:?}"
    );
    let tried = json["tried"].as_array().map(|a| a.len()).unwrap_or(0);
    assert_eq!(tried, 4, "{json}");
    lab.stop_avahi();
    let (code, _, took) = lab.resolve("dsapp-2.local", "a-query,workstation", 2000);
    assert_eq!(code, 1);
    assert!(
        took < Duration::from_millis(2000 + 500 + 300),
        "reported after {took:?}"
    );
}

#[test]
fn the_same_name_on_two_bridges_prefers_the_lease_then_instance_order() {
    if !require_root("the_same_name_on_two_bridges_prefers_the_lease_then_instance_order") {
        return;
    }
    let mut lab = Lab::new(2);
    lab.app(0, 5, &App::new("twin"));
    lab.app(1, 5, &App::new("twin"));
    let (a, b) = (lab.ip(0, 5), lab.ip(1, 5));
    let r = lab.resolve("twin.local", "a-query", 4000);
    expect_found(&r, "a-query", &a);
    assert_eq!(
        r.1["candidates"][1]["ip"],
        b.as_str(),
        "the other is kept for failover: {}",
        r.1
    );
    assert!(
        r.1["warning"]
            .as_str()
            .unwrap_or("")
            .contains("several bridges"),
        "{}",
        r.1
    );
    lab.lease(1, &b);
    let r = lab.resolve("twin.local", "a-query", 4000);
    expect_found(&r, "a-query", &b);
    assert_eq!(r.1["candidates"][0]["leased"], true);
}

#[test]
fn a_changed_app_address_is_found_again() {
    if !require_root("a_changed_app_address_is_found_again") {
        return;
    }
    let mut lab = Lab::new(1);
    let ns = lab.app(0, 9, &App::new("mover"));
    expect_found(
        &lab.resolve("mover.local", "a-query", 4000),
        "a-query",
        &lab.ip(0, 9),
    );
    let (old, new) = (lab.ip(0, 9), lab.ip(0, 19));
    // Delete first: removing a primary address also removes its secondaries.
    sh(&format!(
        "ip -n {ns} addr del {old}/24 dev eth0 && ip -n {ns} addr add {new}/24 dev eth0"
    ));
    let start = Instant::now();
    loop {
        let r = lab.resolve("mover.local", "a-query", 4000);
        if r.0 == 0 && r.1["candidates"][0]["ip"] == new.as_str() {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(20), "still {}", r.1);
        std::thread::sleep(Duration::from_millis(300));
    }
}

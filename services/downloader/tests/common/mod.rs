//! What the downloader's integration tests share: a lab of two network namespaces (a
//! client, where the downloader runs, and a server, where real HTTP servers run) joined
//! by a veth; servers and `serve` processes as guards that kill what they started even
//! when the test panics; status readers; `wait_until` instead of sleeps.
//!
//! Every name and subnet is unique per test (a per-test id plus the pid), so parallel
//! runs don't collide; the tests are still meant to run serially (nextest group).

#![allow(dead_code)] // each test file uses its own subset

use downloader::status::{State, Status};
use sha2::{Digest, Sha256};
use std::fs::File;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

pub use lab::netns::in_netns;
use lab::netns::kill_group;
pub use lab::{DEADLINE, require_root, wait_until};

fn run(args: &[&str]) {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .unwrap_or_else(|e| panic!("{args:?}: {e}"));
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Two namespaces joined by a veth: client `10.N.id.1`, server `10.N.id.2`. The client
/// namespace's /etc/hosts (ip-netns(8) binds /etc/netns/<ns>/hosts) names the server
/// `datastore.test`, so host-name URLs go through the system resolver.
pub struct Lab {
    pub srv_ns: String,
    pub cli_ns: String,
    pub srv_if: String,
    pub srv_ip: Ipv4Addr,
    pub cli_ip: Ipv4Addr,
    pub dir: tempfile::TempDir,
}

impl Lab {
    pub fn new(id: u8) -> Lab {
        let pid = std::process::id();
        let tag = format!("{id:02}{:05}", pid % 100_000);
        let net = 100 + (pid % 100) as u8;
        // Built first, so Drop removes whatever part of the setup was made.
        let lab = Lab {
            srv_ns: format!("zdl{tag}s"),
            cli_ns: format!("zdl{tag}c"),
            srv_if: format!("zd{tag}s"),
            srv_ip: Ipv4Addr::new(10, net, id, 2),
            cli_ip: Ipv4Addr::new(10, net, id, 1),
            dir: tempfile::tempdir().expect("tempdir"),
        };
        let cli_if = format!("zd{tag}c");
        run(&["ip", "netns", "add", &lab.srv_ns]);
        run(&["ip", "netns", "add", &lab.cli_ns]);
        let etc = PathBuf::from("/etc/netns").join(&lab.cli_ns);
        std::fs::create_dir_all(&etc).expect("mkdir /etc/netns/<ns>");
        std::fs::write(
            etc.join("hosts"),
            format!("127.0.0.1 localhost\n{} datastore.test\n", lab.srv_ip),
        )
        .expect("hosts");
        // Stray DNS stays inside the namespace (LAB-NOTES).
        std::fs::write(etc.join("resolv.conf"), "nameserver 127.0.0.1\n").expect("resolv.conf");
        run(&[
            "ip",
            "link",
            "add",
            &cli_if,
            "netns",
            &lab.cli_ns,
            "type",
            "veth",
            "peer",
            "name",
            &lab.srv_if,
            "netns",
            &lab.srv_ns,
        ]);
        for (ns, ifname, ip) in [
            (&lab.cli_ns, &cli_if, lab.cli_ip),
            (&lab.srv_ns, &lab.srv_if, lab.srv_ip),
        ] {
            run(&[
                "ip",
                "-n",
                ns,
                "addr",
                "add",
                &format!("{ip}/24"),
                "dev",
                ifname,
            ]);
            run(&["ip", "-n", ns, "link", "set", ifname, "up"]);
            run(&["ip", "-n", ns, "link", "set", "lo", "up"]);
        }
        lab
    }

    /// Slows the server's sending side so a transfer lasts long enough to interrupt.
    pub fn rate_limit(&self, rate: &str) {
        run(&[
            "ip",
            "netns",
            "exec",
            &self.srv_ns,
            "tc",
            "qdisc",
            "add",
            "dev",
            &self.srv_if,
            "root",
            "tbf",
            "rate",
            rate,
            "burst",
            "32kb",
            "latency",
            "1s",
        ]);
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Whether a TCP connect from the client namespace to `addr` succeeds.
    pub fn can_connect(&self, addr: SocketAddrV4) -> bool {
        in_netns(&self.cli_ns, move || {
            TcpStream::connect_timeout(&SocketAddr::V4(addr), Duration::from_millis(200)).is_ok()
        })
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for ns in [&self.cli_ns, &self.srv_ns] {
            let _ = Command::new("ip")
                .args(["netns", "del", ns])
                .stderr(Stdio::null())
                .status();
        }
        let _ = std::fs::remove_dir_all(PathBuf::from("/etc/netns").join(&self.cli_ns));
    }
}

/// A real HTTP server in the server namespace, killed with the test: busybox httpd
/// ([`Server::httpd`]) or nginx ([`Server::nginx`]).
pub struct Server {
    child: Child,
    pub addr: SocketAddrV4,
    pub log: PathBuf,
}

impl Server {
    /// busybox httpd serving `root`, logging each request (`-vv`: `url:/x` and
    /// `response:206`: a 206 is only sent for a `Range` request).
    pub fn httpd(lab: &Lab, root: &Path, port: u16, log_name: &str) -> Server {
        let addr = SocketAddrV4::new(lab.srv_ip, port);
        let log = lab.path(log_name);
        let out = File::create(&log).expect("httpd log");
        let child = Command::new("ip")
            .args([
                "netns",
                "exec",
                &lab.srv_ns,
                "busybox",
                "httpd",
                "-f",
                "-vv",
                "-p",
            ])
            .arg(addr.to_string())
            .arg("-h")
            .arg(root)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(out)
            // Its own group: httpd forks a child per connection, and killing the server
            // mid-transfer means killing that child too.
            .process_group(0)
            .spawn()
            .expect("busybox httpd");
        let mut server = Server { child, addr, log };
        let stderr = server.log.clone();
        server.wait_listening(lab, "busybox httpd (apt-get install busybox)", &stderr);
        server
    }

    /// Waits until the server accepts connections; if it exits first (not installed, a
    /// bad config, the port taken), fails at once with what it said.
    fn wait_listening(&mut self, lab: &Lab, what: &str, stderr: &Path) {
        let addr = self.addr;
        wait_until(&format!("{what} to listen on {addr}"), || {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "{what} exited ({status}) before listening on {addr}: {}",
                    std::fs::read_to_string(stderr).unwrap_or_default().trim()
                );
            }
            lab.can_connect(addr)
        });
    }

    /// SIGKILL to the server and the connection it is serving.
    pub fn kill(&mut self) {
        kill_group(&mut self.child);
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        kill_group(&mut self.child);
    }
}

impl Server {
    /// nginx (Debian's nginx-light) serving `root`, one process, with an access log that
    /// records each request's `Range` header:
    /// `<peer> "<request>" <status> range="<Range header>"`.
    pub fn nginx(lab: &Lab, root: &Path, port: u16, name: &str) -> Server {
        let addr = SocketAddrV4::new(lab.srv_ip, port);
        let dir = lab.path(name);
        std::fs::create_dir_all(&dir).expect("nginx dir");
        let log = dir.join("access.log");
        let d = dir.display();
        let conf = format!(
            "daemon off; master_process off; worker_processes 1; pid {d}/nginx.pid; error_log {d}/error.log;\n\
             events {{ worker_connections 64; }}\n\
             http {{\n\
               log_format ranges '$remote_addr \"$request\" $status range=\"$http_range\"';\n\
               access_log {log} ranges;\n\
               client_body_temp_path {d}/body; proxy_temp_path {d}/proxy; fastcgi_temp_path {d}/fcgi;\n\
               uwsgi_temp_path {d}/uwsgi; scgi_temp_path {d}/scgi;\n\
               server {{ listen {addr}; root {root}; }}\n\
             }}\n",
            log = log.display(),
            root = root.display()
        );
        std::fs::write(dir.join("nginx.conf"), conf).expect("nginx.conf");
        let child = Command::new("ip")
            .args(["netns", "exec", &lab.srv_ns, "nginx", "-p"])
            .arg(&dir)
            .arg("-c")
            .arg(dir.join("nginx.conf"))
            .arg("-e")
            .arg(dir.join("error.log"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(File::create(dir.join("stderr.log")).expect("stderr"))
            .process_group(0)
            .spawn()
            .expect("nginx (apt-get install nginx-light)");
        let mut server = Server { child, addr, log };
        server.wait_listening(
            lab,
            "nginx (apt-get install nginx-light)",
            &dir.join("stderr.log"),
        );
        server
    }
}

/// The three directories `serve` works in, inside the lab's temporary directory.
pub struct Dirs {
    pub config: PathBuf,
    pub status: PathBuf,
    pub download: PathBuf,
}

impl Dirs {
    pub fn new(lab: &Lab) -> Dirs {
        Dirs::with_download(lab, lab.path("downloads"))
    }

    pub fn with_download(lab: &Lab, download: PathBuf) -> Dirs {
        let dirs = Dirs {
            config: lab.path("config"),
            status: lab.path("status"),
            download,
        };
        for d in [&dirs.config, &dirs.status, &dirs.download] {
            std::fs::create_dir_all(d).expect("mkdir");
        }
        dirs
    }

    /// Writes a request the way a well-behaved writer does: a dotfile, then rename.
    pub fn request(&self, key: &str, value: serde_json::Value) {
        let tmp = self.config.join(format!(".{key}.json.tmp"));
        std::fs::write(&tmp, serde_json::to_vec(&value).expect("json")).expect("write");
        std::fs::rename(&tmp, self.config.join(format!("{key}.json"))).expect("rename");
    }

    pub fn remove_request(&self, key: &str) {
        std::fs::remove_file(self.config.join(format!("{key}.json"))).expect("remove request");
    }

    /// The status file, if there is one. A file that exists but doesn't parse fails the
    /// test: writes are atomic, so a reader never sees half of one.
    pub fn status(&self, key: &str) -> Option<Status> {
        let path = self.status.join(format!("{key}.json"));
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
            Err(e) => panic!("{}: {e}", path.display()),
        };
        Some(
            serde_json::from_str(&text)
                .unwrap_or_else(|e| panic!("{}: not a status ({e}): {text}", path.display())),
        )
    }

    pub fn target(&self, sha: &str) -> PathBuf {
        self.download.join(sha)
    }

    pub fn part(&self, sha: &str) -> PathBuf {
        self.download.join(format!("{sha}.part"))
    }
}

/// Follows one request's status, recording each state it was seen in.
pub struct StatusTrail<'a> {
    dirs: &'a Dirs,
    key: String,
    pub seen: Vec<State>,
}

impl<'a> StatusTrail<'a> {
    pub fn new(dirs: &'a Dirs, key: &str) -> Self {
        StatusTrail {
            dirs,
            key: key.to_string(),
            seen: Vec::new(),
        }
    }

    /// Waits until the status satisfies `pred`; returns it.
    pub fn wait(&mut self, what: &str, pred: impl Fn(&Status) -> bool) -> Status {
        let mut last = None;
        wait_until(&format!("{}: {what}", self.key), || {
            let Some(s) = self.dirs.status(&self.key) else {
                return false;
            };
            if self.seen.last() != Some(&s.state) {
                self.seen.push(s.state);
            }
            let ok = pred(&s);
            last = Some(s);
            ok
        });
        last.expect("a status")
    }
}

/// A `downloader serve` in the client namespace; killed when dropped.
pub struct Serve {
    child: Child,
    pub log: PathBuf,
}

/// Fast retries and a short stall timeout, so failures resolve within a test's time.
/// The retry limit is serve's own default (unlimited), as shipped.
const SERVE_DEFAULTS: [(&str, &str); 4] = [
    ("--stall-timeout", "5s"),
    ("--backoff-base", "100ms"),
    ("--backoff-max", "1s"),
    ("--heartbeat-interval", "1s"),
];

impl Serve {
    /// Starts serve with [`SERVE_DEFAULTS`], each replaced by the same flag in `flags`.
    pub fn start(lab: &Lab, dirs: &Dirs, flags: &[(&str, &str)]) -> Serve {
        Serve::start_with_env(lab, dirs, flags, &[])
    }

    pub fn start_with_env(
        lab: &Lab,
        dirs: &Dirs,
        flags: &[(&str, &str)],
        env: &[(&str, &Path)],
    ) -> Serve {
        let log = lab.path("serve.log");
        let out = File::options()
            .create(true)
            .append(true)
            .open(&log)
            .expect("serve log");
        let mut cmd = Command::new("ip");
        cmd.args([
            "netns",
            "exec",
            &lab.cli_ns,
            env!("CARGO_BIN_EXE_downloader"),
            "serve",
        ])
        .arg("--config-dir")
        .arg(&dirs.config)
        .arg("--status-dir")
        .arg(&dirs.status)
        .arg("--download-dir")
        .arg(&dirs.download);
        for (flag, value) in SERVE_DEFAULTS {
            if !flags.iter().any(|(f, _)| *f == flag) {
                cmd.args([flag, value]);
            }
        }
        for (flag, value) in flags {
            cmd.args([flag, value]);
        }
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd
            .env_remove("http_proxy")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(out)
            .process_group(0)
            .spawn()
            .expect("downloader serve");
        Serve { child, log }
    }

    /// SIGKILL: no chance to clean up, as a crash.
    pub fn kill(&mut self) {
        kill_group(&mut self.child);
    }

    /// SIGTERM, and its exit status.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        if let Ok(pid) = i32::try_from(self.child.id()) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGTERM,
            );
        }
        let end = Instant::now() + DEADLINE;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status;
            }
            assert!(Instant::now() < end, "serve ignored SIGTERM");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// True when serve logged (one JSON line, svclog's shape: its stderr is a file here)
    /// a message holding `text` about request `key`.
    pub fn logged(&self, key: &str, text: &str) -> bool {
        self.log().lines().any(|line| {
            serde_json::from_str::<serde_json::Value>(line).is_ok_and(|v| {
                v["source"] == "downloader"
                    && v["key"] == key
                    && v["msg"].as_str().is_some_and(|m| m.contains(text))
            })
        })
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        kill_group(&mut self.child);
        if std::thread::panicking() {
            eprintln!("--- serve log ---\n{}", self.log());
        }
    }
}

/// A purpose-built HTTP server for what busybox can't be made to do (stall mid-body,
/// send more than it announced). Runs on threads inside the server namespace; each
/// connection's request head is recorded, then `handler(connection index, head, stream)`
/// answers it. Dropping it stops accepting and tells handlers to give up (`stopping`).
pub struct TinyServer {
    stop: Arc<AtomicBool>,
    pub requests: Arc<Mutex<Vec<(Instant, String)>>>,
    pub addr: SocketAddrV4,
    thread: Option<JoinHandle<()>>,
}

pub type Handler = dyn Fn(usize, &str, &mut TcpStream, &AtomicBool) + Send + Sync;

impl TinyServer {
    pub fn start(lab: &Lab, port: u16, handler: Arc<Handler>) -> TinyServer {
        TinyServer::start_in(&lab.srv_ns, SocketAddrV4::new(lab.srv_ip, port), handler)
    }

    /// The same in any namespace of the lab, on any address there (the client's
    /// loopback: a service of the device itself).
    pub fn start_in(ns: &str, addr: SocketAddrV4, handler: Arc<Handler>) -> TinyServer {
        let stop = Arc::new(AtomicBool::new(false));
        let requests = Arc::new(Mutex::new(Vec::new()));
        let (bound_tx, bound_rx) = mpsc::channel();
        let path = format!("/run/netns/{ns}");
        let (stop2, requests2) = (stop.clone(), requests.clone());
        let thread = std::thread::spawn(move || {
            lab::netns::enter_netns(&path);
            let listener = TcpListener::bind(addr).expect("bind tiny server");
            listener.set_nonblocking(true).expect("nonblocking");
            let _ = bound_tx.send(());
            let mut index = 0;
            while !stop2.load(Ordering::SeqCst) {
                let mut stream = match listener.accept() {
                    Ok((s, _)) => s,
                    Err(_) => {
                        std::thread::sleep(Duration::from_millis(10));
                        continue;
                    }
                };
                let _ = stream.set_nonblocking(false);
                let head = read_head(&mut stream);
                requests2
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push((Instant::now(), head.clone()));
                let (handler, stop3, i) = (handler.clone(), stop2.clone(), index);
                std::thread::spawn(move || handler(i, &head, &mut stream, &stop3));
                index += 1;
            }
        });
        bound_rx.recv_timeout(DEADLINE).expect("tiny server bound");
        TinyServer {
            stop,
            requests,
            addr,
            thread: Some(thread),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn requests(&self) -> Vec<(Instant, String)> {
        self.requests
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

impl Drop for TinyServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn read_head(stream: &mut TcpStream) -> String {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match stream.read(&mut byte) {
            Ok(1) => head.push(byte[0]),
            _ => break,
        }
    }
    String::from_utf8_lossy(&head).into_owned()
}

/// The start of a `Range: bytes=N-` header in a request head.
pub fn range_start(head: &str) -> Option<u64> {
    head.lines()
        .find_map(|l| {
            l.strip_prefix("range: bytes=")
                .or(l.strip_prefix("Range: bytes="))
        })
        .and_then(|r| r.trim().trim_end_matches('-').parse().ok())
}

/// Writes `data[from..]` as a 200 (or a 206 when `from > 0`) with the right headers.
pub fn respond(stream: &mut TcpStream, data: &[u8], from: u64) {
    let from = usize::try_from(from).unwrap_or(usize::MAX).min(data.len());
    let head = if from > 0 {
        format!(
            "HTTP/1.1 206 Partial Content\r\nContent-Length: {}\r\nContent-Range: bytes {}-{}/{}\r\nConnection: close\r\n\r\n",
            data.len() - from,
            from,
            data.len() - 1,
            data.len()
        )
    } else {
        format!(
            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            data.len()
        )
    };
    let _ = stream.write_all(head.as_bytes());
    let _ = stream.write_all(&data[from..]);
}

/// Deterministic, incompressible-looking test data.
pub fn payload(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

pub fn sha256_hex(data: &[u8]) -> String {
    downloader::part::hex(&Sha256::digest(data))
}

/// A request body for `serve`.
pub fn request_json(name: &str, url: &str, data: &[u8]) -> serde_json::Value {
    serde_json::json!({
        "name": name,
        "url": url,
        "sha256": sha256_hex(data),
        "size": data.len(),
    })
}

/// A small tmpfs, unmounted when dropped.
pub struct Tmpfs {
    pub path: PathBuf,
}

impl Tmpfs {
    pub fn mount(path: PathBuf, size: &str) -> Tmpfs {
        std::fs::create_dir_all(&path).expect("mkdir tmpfs");
        run(&[
            "mount",
            "-t",
            "tmpfs",
            "-o",
            &format!("size={size}"),
            "tmpfs",
            path.to_str().expect("utf-8 path"),
        ]);
        Tmpfs { path }
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.path).status();
    }
}

#!/usr/bin/env python3
"""Resolving a `.local` datastore host: `localds resolve` against python-zeroconf and
avahi-resolve, side by side (issue 6).

A lab of two network namespaces: a *device* namespace with one bridge (as a network
instance, `0-net.toml`), and an *app* namespace on that bridge running a real
avahi-daemon that publishes the workstation service (no D-Bus, private /run, as in
services/lib/localds/tests/local_datastore.rs). Every name (namespaces, bridge, veth, avahi
host name) is unique to the run, and everything is removed at the end, also on Ctrl-C
or SIGTERM. Run as root:

    bench/local_resolve.py            # full run, ~3.5 minutes (25 rounds)
    bench/local_resolve.py --quick    # ~1 minute (6 rounds)
    bench/local_resolve.py --methods localds,localds-aq --rounds 10
    bench/local_resolve.py --out bench/results-local-resolve.md
    bench/local_resolve.py --quick --methods localds --strace 5 --keep   # where the time goes

Method:
  - The bench waits until the app's avahi logged "Server startup complete", then 6 s
    more (avahi answers slower while it probes and announces, ~5 s).
  - The bench process itself then enters the device namespace (setns), so every
    client below is a direct child of it in that namespace (no `ip netns exec` in the
    timed path).
  - Rounds: every method once per round, the order rotated by one each round, and at
    least --gap (1.2 s) between the end of one query and the start of the next: avahi
    multicasts a record at most once a second per link, so a query right after another
    would see a suppressed or delayed answer.
  - Time: CLOCK_MONOTONIC in the bench, from just before the fork of the client to the
    moment its answer line is read from its stdout ("to answer"), and to its exit.
    Every answer is checked (the app's IPv4 address); a wrong or missing answer counts
    as a failure, not as a sample.

Methods (all run in the device namespace; the host is asked as HOST.local):
  localds        target/release/localds resolve HOST.local --instances DIR
                 (default methods a-query,workstation,http,https; budget 4 s); its
                 own "elapsed_ms" (from resolve() start to decision) is reported too
  localds-aq     the same with --methods a-query
  zc-browse      python-zeroconf (pip, in a venv under /var/tmp): browse
                 _workstation._tcp.local. until the instance whose SRV host is ours has
                 an IPv4 address (what EVE's Go downloader does);
                 Zeroconf(interfaces=[bridge_ip], ip_version=V4Only)
  zc-host        python-zeroconf's host lookup:
                 AddressResolverIPv4("HOST.local.").request(zc, timeout)
  avahi-resolve  `avahi-resolve -4 -n HOST.local` (reference). It talks D-Bus to an
                 avahi-daemon on the device: the bench runs a private dbus-daemon (its
                 own config, socket in the work directory, DBUS_SYSTEM_BUS_ADDRESS) and a
                 query-only avahi-daemon (disable-publishing=yes, --no-chroot, private
                 /run) on the bridge. That daemon is started fresh for each sample and
                 stopped after it, so every sample is a cache miss (a warm avahi cache
                 answers without the network) and it never competes for udp/5353 with
                 python-zeroconf; it is started --avahi-warmup (1 s) before its query
                 (0.1 s gives the same figures: its query is not slowed by its start).
  spawn floor    /bin/true from the same bench process: fork+exec+exit, the floor under
                 every "to answer" figure.
For the python clients the helper (bench/local_resolve_zc.py) stamps CLOCK_MONOTONIC
itself, so their time splits into interpreter start, `import zeroconf`, `Zeroconf()`,
and the lookup proper.
"""

import argparse
import ctypes
import datetime
import json
import os
import platform
import random
import select
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
LOCALDS = os.path.join(ROOT, "target", "release", "localds")
ZC_HELPER = os.path.join(HERE, "local_resolve_zc.py")
VENV = os.environ.get("LOCAL_RESOLVE_VENV", "/var/tmp/zedctr-bench-zeroconf")
VENV_PY = os.path.join(VENV, "bin", "python")
CLONE_NEWNET = 0x40000000
METHODS = ["localds", "localds-aq", "zc-browse", "zc-host", "avahi-resolve",
           "localds-2br", "localds-2br-hosts", "localds-twins"]
# Need the several-bridges lab (made only when one of them is asked for).
BRIDGES_METHODS = ("localds-2br", "localds-2br-hosts", "localds-twins")
TIMEOUT_MS = 4000


def log(msg):
    print(f"[local_resolve {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def sh(cmd, check=True):
    r = subprocess.run(["sh", "-ec", cmd], capture_output=True, text=True)
    if check and r.returncode != 0:
        raise RuntimeError(f"failed ({r.returncode}): {cmd}\n{r.stderr.strip()}")
    return r


def wait_for_text(path, text, timeout, what):
    start = time.monotonic()
    while True:
        try:
            with open(path, errors="replace") as f:
                if text in f.read():
                    return time.monotonic()
        except FileNotFoundError:
            pass
        if time.monotonic() - start > timeout:
            raise RuntimeError(f"{what}: no {text!r} in {path} after {timeout} s")
        time.sleep(0.02)


def ensure_zeroconf():
    if os.path.exists(VENV_PY):
        r = subprocess.run([VENV_PY, "-c", "import zeroconf; print(zeroconf.__version__)"],
                           capture_output=True, text=True)
        if r.returncode == 0:
            return r.stdout.strip()
    log(f"installing python-zeroconf into {VENV}")
    subprocess.run([sys.executable, "-m", "venv", VENV], check=True)
    subprocess.run([VENV_PY, "-m", "pip", "install", "-q", "zeroconf"], check=True)
    r = subprocess.run([VENV_PY, "-c", "import zeroconf; print(zeroconf.__version__)"],
                       capture_output=True, text=True, check=True)
    return r.stdout.strip()


class Lab:
    """Device namespace + bridge + app namespace running avahi; removed by close()."""

    def __init__(self, work):
        self.work = work
        tag = f"{os.getpid() % 10000}{random.randint(0, 99):02d}"
        self.tag = tag
        self.dev, self.app = f"lr{tag}d", f"lr{tag}a"
        self.bridge, self.veth = f"lr{tag}b", f"lr{tag}v"
        self.host = f"lrapp{tag}"
        x = random.randint(1, 254)
        self.x = x
        self.bridge_ip, self.app_ip = f"10.217.{x}.1", f"10.217.{x}.5"
        # Several bridges (--bridges): an empty one, listed first, and one with a twin app
        # of the same name (for the spread between two bridges' answers).
        self.empty_bridge, self.empty_ip = f"lr{tag}e", f"10.218.{x}.1"
        self.twin, self.twin_bridge, self.twin_veth = f"lr{tag}t", f"lr{tag}c", f"lr{tag}w"
        self.twin_bridge_ip, self.twin_ip = f"10.219.{x}.1", f"10.219.{x}.5"
        self.instance_dirs = {}
        self.made = []  # namespaces to delete
        self.procs = []  # Popen objects to kill
        self.device_avahi = None
        self.dbus = None
        self.instances = os.path.join(work, "instances")
        self.dbus_addr = None

    # --- setup -------------------------------------------------------------------
    def up(self):
        sh(f"ip netns add {self.dev}")
        self.made.append(self.dev)
        sh(f"ip -n {self.dev} link set lo up && "
           f"ip -n {self.dev} link add {self.bridge} type bridge stp_state 0 && "
           f"ip -n {self.dev} addr add {self.bridge_ip}/24 dev {self.bridge} && "
           f"ip -n {self.dev} link set {self.bridge} up")
        sh(f"ip netns add {self.app}")
        self.made.append(self.app)
        sh(f"ip -n {self.app} link set lo up && "
           f"ip -n {self.dev} link add {self.veth} type veth peer name eth0 netns {self.app} && "
           f"ip -n {self.dev} link set {self.veth} master {self.bridge} up && "
           f"ip -n {self.app} link set eth0 multicast on up && "
           f"ip -n {self.app} addr add {self.app_ip}/24 dev eth0")
        os.makedirs(self.instances)
        with open(os.path.join(self.instances, "0-net.toml"), "w") as f:
            f.write(self.instance(self.bridge, self.bridge_ip))

    def instance(self, bridge, ip, extra=""):
        return (f'bridge = "{bridge}"\nipv4 = "{ip}/24"\n'
                f'lease-file = "{os.path.join(self.work, bridge + ".leases")}"\n{extra}')

    def up_bridges(self):
        """The several-bridges lab: an empty bridge, and a twin app on a third."""
        sh(f"ip -n {self.dev} link add {self.empty_bridge} type bridge stp_state 0 && "
           f"ip -n {self.dev} addr add {self.empty_ip}/24 dev {self.empty_bridge} && "
           f"ip -n {self.dev} link set {self.empty_bridge} up && "
           f"ip -n {self.dev} link add {self.twin_bridge} type bridge stp_state 0 && "
           f"ip -n {self.dev} addr add {self.twin_bridge_ip}/24 dev {self.twin_bridge} && "
           f"ip -n {self.dev} link set {self.twin_bridge} up")
        sh(f"ip netns add {self.twin}")
        self.made.append(self.twin)
        sh(f"ip -n {self.twin} link set lo up && "
           f"ip -n {self.dev} link add {self.twin_veth} type veth peer name eth0 netns {self.twin} && "
           f"ip -n {self.dev} link set {self.twin_veth} master {self.twin_bridge} up && "
           f"ip -n {self.twin} link set eth0 multicast on up && "
           f"ip -n {self.twin} addr add {self.twin_ip}/24 dev eth0")
        app = self.instance(self.bridge, self.bridge_ip)
        hosts = f'hosts = [{{ name = "{self.host}", ip = "{self.app_ip}" }}]\n'
        layouts = {
            # The case: the app (static address, no lease) on the second of two.
            "two": [self.instance(self.empty_bridge, self.empty_ip), app],
            # The same with a `hosts` entry for the app in its network instance.
            "two-hosts": [self.instance(self.empty_bridge, self.empty_ip),
                          self.instance(self.bridge, self.bridge_ip, hosts)],
            # The same name on two bridges: how far apart the two answers come.
            "twins": [app, self.instance(self.twin_bridge, self.twin_bridge_ip)],
        }
        for name, files in layouts.items():
            d = os.path.join(self.work, f"instances-{name}")
            os.makedirs(d)
            for i, text in enumerate(files):
                with open(os.path.join(d, f"{i}-net.toml"), "w") as f:
                    f.write(text)
            self.instance_dirs[name] = d

    def start_app_avahi(self, ns=None, name="app"):
        ns = ns or self.app
        d = os.path.join(self.work, name)
        os.makedirs(os.path.join(d, "services"))
        conf = os.path.join(d, "avahi-daemon.conf")
        with open(conf, "w") as f:
            f.write(f"[server]\nhost-name={self.host}\ndomain-name=local\nuse-ipv4=yes\n"
                    "use-ipv6=no\nallow-interfaces=eth0\nenable-dbus=no\n"
                    "ratelimit-interval-usec=1000000\nratelimit-burst=1000\n"
                    "[wide-area]\nenable-wide-area=no\n"
                    "[publish]\npublish-hinfo=no\npublish-workstation=yes\n"
                    "publish-aaaa-on-ipv4=no\n")
        self.app_log = os.path.join(d, "avahi.log")
        logf = open(self.app_log, "w")
        p = subprocess.Popen(
            ["ip", "netns", "exec", ns, "unshare", "--mount", "--propagation", "private",
             "sh", "-ec",
             f"mount -t tmpfs -o mode=0755 lab-run /run; "
             f"mount --bind {d}/services /etc/avahi/services; "
             f"exec avahi-daemon --file={conf} --no-rlimits"],
            stdout=logf, stderr=subprocess.STDOUT, start_new_session=True)
        self.procs.append(p)
        return wait_for_text(self.app_log, "Server startup complete", 20, f"{name} avahi")

    def start_dbus(self):
        d = os.path.join(self.work, "dbus")
        os.makedirs(d)
        os.chmod(self.work, 0o755)
        os.chmod(d, 0o755)
        sock = os.path.join(d, "system_bus_socket")
        conf = os.path.join(d, "bus.conf")
        with open(conf, "w") as f:
            f.write(f"""<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-BUS Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <listen>unix:path={sock}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/>
    <allow own="*"/>
    <allow send_type="method_call"/>
    <allow send_destination="*"/>
    <allow receive_sender="*"/>
  </policy>
</busconfig>
""")
        logf = open(os.path.join(d, "dbus.log"), "w")
        self.dbus = subprocess.Popen(["dbus-daemon", f"--config-file={conf}", "--nofork",
                                      "--nopidfile"],
                                     stdout=logf, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        self.procs.append(self.dbus)
        start = time.monotonic()
        while not os.path.exists(sock):
            if self.dbus.poll() is not None or time.monotonic() - start > 10:
                raise RuntimeError(f"dbus-daemon did not start: see {d}/dbus.log")
            time.sleep(0.01)
        self.dbus_addr = f"unix:path={sock}"

    def start_device_avahi(self):
        """A query-only avahi-daemon on the bridge, with D-Bus (for avahi-resolve)."""
        d = os.path.join(self.work, "devavahi")
        if not os.path.isdir(d):
            os.makedirs(d)
            with open(os.path.join(d, "avahi-daemon.conf"), "w") as f:
                f.write(f"[server]\nhost-name=lrdev{self.dev}\ndomain-name=local\n"
                        f"use-ipv4=yes\nuse-ipv6=no\nallow-interfaces={self.bridge}\n"
                        "enable-dbus=yes\n[wide-area]\nenable-wide-area=no\n"
                        "[publish]\ndisable-publishing=yes\n")
        self.device_avahi_log = os.path.join(d, "avahi.log")
        logf = open(self.device_avahi_log, "w")
        env = dict(os.environ, DBUS_SYSTEM_BUS_ADDRESS=self.dbus_addr)
        p = subprocess.Popen(
            ["ip", "netns", "exec", self.dev, "unshare", "--mount", "--propagation", "private",
             "sh", "-ec",
             f"mount -t tmpfs -o mode=0755 lab-run /run; "
             f"exec avahi-daemon --file={d}/avahi-daemon.conf --no-rlimits --no-chroot"],
            stdout=logf, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        self.device_avahi = p
        self.procs.append(p)
        return wait_for_text(self.device_avahi_log, "Server startup complete", 20,
                             "device avahi")

    def stop_device_avahi(self):
        p, self.device_avahi = self.device_avahi, None
        if p is not None:
            kill(p)
            self.procs.remove(p)

    def enter_device_ns(self):
        libc = ctypes.CDLL(None, use_errno=True)
        fd = os.open(f"/run/netns/{self.dev}", os.O_RDONLY)
        try:
            if libc.setns(fd, CLONE_NEWNET) != 0:
                raise OSError(ctypes.get_errno(), "setns")
        finally:
            os.close(fd)

    def close(self):
        for p in list(self.procs):
            kill(p)
        self.procs.clear()
        for ns in reversed(self.made):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)
        self.made.clear()


def kill(p):
    if p.poll() is None:
        try:
            os.killpg(p.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            p.wait(timeout=3)
        except subprocess.TimeoutExpired:
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            p.wait()


RUNNING = set()  # clients being timed, killed on an interrupt


def timed(argv, timeout_s, env=None, stderr=None):
    """Runs argv; returns (first stdout line, ns to that line, ns to exit, exit code, t0)."""
    t0 = time.monotonic_ns()
    p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=stderr or subprocess.DEVNULL,
                         env=env, start_new_session=True)
    RUNNING.add(p)
    try:
        return _timed(p, t0, timeout_s)
    finally:
        if p.poll() is None:
            kill(p)
        RUNNING.discard(p)


def _timed(p, t0, timeout_s):
    fd = p.stdout.fileno()
    buf = b""
    t_line = None
    deadline = time.monotonic() + timeout_s
    while b"\n" not in buf:
        left = deadline - time.monotonic()
        if left <= 0:
            break
        r, _, _ = select.select([fd], [], [], left)
        if not r:
            break
        chunk = os.read(fd, 65536)
        if not chunk:
            break
        buf += chunk
    if b"\n" in buf:
        t_line = time.monotonic_ns() - t0
    try:
        rest = p.stdout.read() if p.wait(timeout=max(0.1, deadline - time.monotonic())) is not None else b""
    except subprocess.TimeoutExpired:
        kill(p)
        rest = b""
    t_exit = time.monotonic_ns() - t0
    p.stdout.close()
    line = (buf + (rest or b"")).decode(errors="replace").split("\n")[0]
    return line, t_line, t_exit, p.returncode, t0


class Bench:
    def __init__(self, lab, args, work):
        self.lab, self.args, self.work = lab, args, work
        self.samples = {m: [] for m in METHODS}  # ms to answer
        self.exits = {m: [] for m in METHODS}  # ms to exit
        self.fails = {m: [] for m in METHODS}
        self.extra = {}  # name -> list of ms
        self.counts = {}  # name -> occurrences
        self.resolved_by = {}
        self.strace_events = {}
        self.errlog = open(os.path.join(work, "clients.stderr"), "ab")

    def add(self, key, v):
        self.extra.setdefault(key, []).append(v)

    def add_count(self, key):
        self.counts[key] = self.counts.get(key, 0) + 1

    def argv(self, m):
        lab = self.lab
        host = f"{lab.host}.local"
        if m == "localds":
            return [LOCALDS, "resolve", host, "--instances", lab.instances]
        if m == "localds-aq":
            return [LOCALDS, "resolve", host, "--instances", lab.instances, "--methods", "a-query"]
        if m == "localds-2br":
            return [LOCALDS, "resolve", host, "--instances", lab.instance_dirs["two"],
                    "--settle", f"{self.args.settle_ms}ms"]
        if m == "localds-2br-hosts":
            return [LOCALDS, "resolve", host, "--instances", lab.instance_dirs["two-hosts"],
                    "--settle", f"{self.args.settle_ms}ms"]
        if m == "localds-twins":
            # A window long enough for both answers: what is measured is their spread.
            return [LOCALDS, "resolve", host, "--instances", lab.instance_dirs["twins"],
                    "--methods", "a-query", "--settle", "1s"]
        if m == "zc-browse":
            return [VENV_PY, ZC_HELPER, "browse", host, lab.bridge_ip, str(TIMEOUT_MS)]
        if m == "zc-host":
            return [VENV_PY, ZC_HELPER, "host", host, lab.bridge_ip, str(TIMEOUT_MS)]
        if m == "avahi-resolve":
            return ["avahi-resolve", "-4", "-n", host]
        raise ValueError(m)

    def one(self, m):
        lab = self.lab
        env = None
        if m == "avahi-resolve":
            lab.start_device_avahi()
            time.sleep(self.args.avahi_warmup)
            env = dict(os.environ, DBUS_SYSTEM_BUS_ADDRESS=lab.dbus_addr)
        self.errlog.write(f"--- {m}\n".encode())
        self.errlog.flush()
        try:
            line, t_line, t_exit, code, t0 = timed(self.argv(m), TIMEOUT_MS / 1000 + 3, env,
                                                   stderr=self.errlog)
        finally:
            if m == "avahi-resolve":
                lab.stop_device_avahi()
        ok, ip = False, None
        try:
            if m.startswith("localds"):
                j = json.loads(line)
                ip = j["candidates"][0]["ip"]
                self.add(f"{m}: its own elapsed (µs → ms)", j["elapsed_us"] / 1000)
                self.resolved_by.setdefault(m + " taken", {}).setdefault(j["taken"], 0)
                self.resolved_by[m + " taken"][j["taken"]] += 1
                if m == "localds-twins":
                    at = sorted(c["answered_us"] for c in j["candidates"])
                    if len(at) == 2:
                        self.add("localds-twins: first answer (µs after resolve() began → ms)",
                                 at[0] / 1000)
                        self.add("localds-twins: second bridge's answer after the first, ms",
                                 (at[1] - at[0]) / 1000)
                    else:
                        self.add_count("localds-twins: only one bridge answered within 1 s")
                self.resolved_by.setdefault(m, {}).setdefault(j["resolved_by"], 0)
                self.resolved_by[m][j["resolved_by"]] += 1
            elif m.startswith("zc-"):
                j = json.loads(line)
                ip = j["ip"]
                ms = lambda a, b: (b - a) / 1e6
                self.add(f"{m}: spawn → interpreter running", ms(t0, j["t_main"]))
                self.add(f"{m}: import zeroconf", ms(j["t_main"], j["t_imported"]))
                self.add(f"{m}: Zeroconf() ready", ms(j["t_imported"], j["t_zc"]))
                self.add(f"{m}: lookup proper (Zeroconf() ready → answer)",
                         ms(j["t_zc"], j["t_answer"]))
            elif m == "avahi-resolve":
                parts = line.split()
                ip = parts[1] if len(parts) == 2 else None
            ok = ip == lab.app_ip and t_line is not None
        except (ValueError, KeyError, IndexError, TypeError):
            ok = False
        if ok:
            self.samples[m].append(t_line / 1e6)
            self.exits[m].append(t_exit / 1e6)
        else:
            self.fails[m].append(f"exit {code}, {t_exit / 1e6:.0f} ms: {line[:200]!r}")
            log(f"{m}: FAILED ({self.fails[m][-1]})")

    def strace(self, n, gap):
        """n runs of `localds resolve` (default methods) under strace -f -ttt; returns
        {event: [ms after execve]} and the trace files."""
        lab, events, files = self.lab, {}, []
        for i in range(n):
            time.sleep(gap)
            out = os.path.join(self.work, f"localds.strace.{i}")
            files.append(out)
            line, t_line, t_exit, code, _ = timed(
                ["strace", "-f", "-ttt", "-s", "64", "-o", out] + self.argv("localds"),
                TIMEOUT_MS / 1000 + 3, stderr=self.errlog)
            self.add("localds under strace: process start → answer", (t_line or 0) / 1e6)
            for k, v in strace_events(out, lab.app_ip).items():
                events.setdefault(k, []).append(v)
        return events, files

    def floor(self):
        _, t_line, t_exit, code, _ = timed(["/bin/true"], 5)
        self.add("spawn floor: /bin/true fork+exec+exit", t_exit / 1e6)

    def run(self, methods, rounds):
        last_end = time.monotonic()
        for r in range(rounds):
            order = methods[r % len(methods):] + methods[:r % len(methods)]
            for m in order:
                wait = self.args.gap - (time.monotonic() - last_end)
                if m == "avahi-resolve":
                    wait -= self.args.avahi_warmup  # the warm-up sleep is part of the gap
                if wait > 0:
                    time.sleep(wait)
                self.one(m)
                last_end = time.monotonic()
            self.floor()
            log(f"round {r + 1}/{rounds}: "
                + ", ".join(f"{m} {statistics.median(self.samples[m]):.1f} ms"
                            for m in methods if self.samples[m]))


STRACE_EVENTS = [
    ("execve", "execve of localds"),
    ("first_clone", "first thread spawned (clone3)"),
    ("last_clone", "last thread spawned"),
    ("instances", "instances dir read (openat of the .toml)"),
    ("aq_socket_bound", "a-query socket bound (bind to bridge_ip:0)"),
    ("aq_sent", "A query sent (sendto 224.0.0.251)"),
    ("mdns_bound", "mdns-sd bound udp/5353"),
    ("answer", "answer received from the app (recvfrom)"),
    ("write", "JSON written (write 1)"),
    ("exit", "exit_group"),
    ("syscalls", "syscalls in the trace (count)"),
    ("threads", "threads spawned (count)"),
]


def strace_events(path, app_ip):
    """Stamps (ms after execve) of the key syscalls in one `strace -f -ttt` trace."""
    ev, t0, n, clones = {}, None, 0, 0
    with open(path, errors="replace") as f:
        for line in f:
            parts = line.split(None, 2)
            if len(parts) < 3:
                continue
            try:
                t = float(parts[1])
            except ValueError:
                continue
            rest = parts[2]
            n += 1
            if t0 is None and rest.startswith("execve("):
                t0 = t
                ev["execve"] = 0.0
            if t0 is None:
                continue
            ms = (t - t0) * 1000
            if rest.startswith(("clone3(", "clone(")):
                clones += 1
                ev.setdefault("first_clone", ms)
                ev["last_clone"] = ms
            elif rest.startswith("openat(") and ".toml" in rest:
                ev.setdefault("instances", ms)
            elif rest.startswith("bind(") and "sin_port=htons(0)" in rest:
                ev.setdefault("aq_socket_bound", ms)
            elif rest.startswith("bind(") and "sin_port=htons(5353)" in rest:
                ev.setdefault("mdns_bound", ms)
            elif rest.startswith("sendto(") and "224.0.0.251" in rest:
                ev.setdefault("aq_sent", ms)
            elif "recvfrom" in rest and f'inet_addr("{app_ip}")' in rest:
                ev.setdefault("answer", ms)
            elif rest.startswith("write(1,"):
                ev.setdefault("write", ms)
            elif rest.startswith("exit_group("):
                ev.setdefault("exit", ms)
    ev["syscalls"] = float(n)
    ev["threads"] = float(clones)
    return ev


# --- report ----------------------------------------------------------------------

def q(values, p):
    v = sorted(values)
    if not v:
        return float("nan")
    k = (len(v) - 1) * p
    lo, hi = int(k), min(int(k) + 1, len(v) - 1)
    return v[lo] + (v[hi] - v[lo]) * (k - lo)


def fmt(x):
    if x != x:
        return "n/a"
    if abs(x) >= 100:
        return f"{x:.0f}"
    return f"{x:.2f}" if abs(x) < 10 else f"{x:.1f}"


def row(name, values, fails=0):
    if not values:
        return f"| {name} | 0 | {fails} | n/a | n/a | n/a | n/a |"
    return (f"| {name} | {len(values)} | {fails} | {fmt(statistics.median(values))} | "
            f"{fmt(q(values, .9))} | {fmt(q(values, .25))}–{fmt(q(values, .75))} | "
            f"{fmt(min(values))}–{fmt(max(values))} |")


LABELS = {
    "localds": "`localds resolve` (default: a-query,workstation,http,https)",
    "localds-aq": "`localds resolve --methods a-query`",
    "zc-browse": "python-zeroconf `_workstation._tcp` browse → IPv4",
    "zc-host": "python-zeroconf `AddressResolverIPv4(host).request()`",
    "avahi-resolve": "`avahi-resolve -4 -n` (D-Bus → device avahi-daemon, cold cache)",
    "localds-2br": "two bridges, app (static address, no lease) on the second: `localds resolve`",
    "localds-2br-hosts": "the same, a `hosts` entry for the app in its network instance",
    "localds-twins": "the same name on two bridges, `--methods a-query --settle 1s`",
}


def cpu_ticks():
    """(all ticks, idle+iowait ticks) of /proc/stat's cpu line."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    return sum(v), v[3] + v[4]


def cpu_busy():
    def read():
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:]]
        return sum(v), v[3] + v[4]
    a = read()
    time.sleep(1)
    b = read()
    tot = b[0] - a[0]
    return 100 * (1 - (b[1] - a[1]) / tot) if tot else 0.0


def versions(zc_version):
    def out(cmd):
        try:
            return subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT).stdout.strip()
        except OSError:
            return "?"
    rev = out(["git", "describe", "--always", "--dirty"])
    avahi = out(["dpkg-query", "-W", "-f", "${Version}", "avahi-daemon"])
    return f"localds {rev}, python-zeroconf {zc_version}, avahi {avahi}"


def report(bench, methods, args, meta):
    L = []
    L.append(f"Run: {meta['when']}, `{meta['cmd']}` ({meta['mode']}, {meta['secs']:.0f} s)  ")
    L.append(f"Machine: {meta['machine']}  ")
    L.append(f"Versions: {meta['versions']}  ")
    L.append(f"Load average {meta['load'][0]:.1f} at the start of the rounds, "
             f"{meta['load'][1]:.1f} at the end; {meta['hog']} busy-looping processes "
             f"added (--hog)  ")
    L.append(f"CPU busy in the second before the run: {meta['busy']:.0f} %; during the rounds "
             f"{meta['during'][0]:.0f} %, of which this bench and its clients "
             f"{meta['during'][1]:.0f} % (other work on the machine adds noise)  ")
    L.append(f"Lab: bridge {bench.lab.bridge} {bench.lab.bridge_ip}/24 in the device namespace, "
             f"app at {bench.lab.app_ip} (avahi host-name {bench.lab.host}); first query "
             f"{meta['settled']:.1f} s after the app's \"Server startup complete\"; "
             f"{args.rounds} rounds, order rotated, ≥ {args.gap} s between queries.")
    L.append("")
    L.append("Process start (fork in the bench) → answer line read, ms. n: samples; "
             "fail: wrong, missing or late answers (not in the figures).")
    L.append("")
    L.append("| method | n | fail | median | p90 | IQR (p25–p75) | range (min–max) |")
    L.append("|---|---|---|---|---|---|---|")
    for m in methods:
        L.append(row(LABELS[m], bench.samples[m], len(bench.fails[m])))
    L.append(row("spawn floor: `/bin/true` fork+exec+exit", bench.extra.get(
        "spawn floor: /bin/true fork+exec+exit", [])))
    L.append("")
    L.append("Parts and other views (ms):")
    L.append("")
    L.append("| what | n | fail | median | p90 | IQR (p25–p75) | range (min–max) |")
    L.append("|---|---|---|---|---|---|---|")
    for m in methods:
        if bench.exits[m]:
            L.append(row(f"{m}: process start → exit", bench.exits[m]))
        for k, v in bench.extra.items():
            if k.startswith(m + ":") and "strace" not in k:
                L.append(row(k, v))
    L.append("")
    if bench.strace_events:
        L.append(f"`localds resolve` (default methods) under `strace -f -ttt`, "
                 f"{args.strace} runs: ms after its execve (strace slows every syscall; "
                 "read the order and the gaps, not the absolute sum):")
        L.append("")
        L.append("| event | n | fail | median | p90 | IQR (p25–p75) | range (min–max) |")
        L.append("|---|---|---|---|---|---|---|")
        L.append(row("(bench) process start → answer, under strace",
                     bench.extra.get("localds under strace: process start → answer", [])))
        for key, label in STRACE_EVENTS:
            if key in bench.strace_events:
                L.append(row(label, bench.strace_events[key]))
        L.append("")
    for m, counts in bench.resolved_by.items():
        what = "resolved_by"
        if m.endswith(" taken"):
            m, what = m[:-len(" taken")], "taken (why then)"
        L.append(f"- {m}: {what} " + ", ".join(f"{k} ×{v}" for k, v in counts.items()))
    for m in methods:
        for f in bench.fails[m][:5]:
            L.append(f"- {m} failure: {f}")
    for k, n in bench.counts.items():
        L.append(f"- {k}: {n}")
    if "localds" in methods and bench.samples["localds"]:
        p50 = statistics.median(bench.samples["localds"])
        L.append(f"- target p50 ≤ 5 ms for `localds resolve` (default methods): "
                 f"{p50:.2f} ms, {'met' if p50 <= 5 else 'MISSED'}")
        for m in ("localds-2br", "localds-2br-hosts"):
            if m in methods and bench.samples[m]:
                two = statistics.median(bench.samples[m])
                limit = 2 * p50 + args.settle_ms
                L.append(f"- target p50 ≤ 2 × one bridge + the window ({2 * p50:.2f} + "
                         f"{args.settle_ms} ms = {limit:.1f} ms) for {m}: {two:.2f} ms, "
                         f"{'met' if two <= limit else 'MISSED'}")
    return "\n".join(L) + "\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="~1 minute: 6 rounds")
    ap.add_argument("--rounds", type=int, help="rounds (default 25, --quick 6)")
    ap.add_argument("--methods", default=",".join(METHODS),
                    help=f"comma-separated, from {','.join(METHODS)}")
    ap.add_argument("--gap", type=float, default=1.2,
                    help="seconds between the end of one query and the next (≥ 1.1)")
    ap.add_argument("--settle", type=float, default=6.0,
                    help="seconds after the app's avahi startup before the first query")
    ap.add_argument("--avahi-warmup", type=float, default=1.0,
                    help="seconds between the device avahi's startup and avahi-resolve")
    ap.add_argument("--strace", type=int, default=0, metavar="N",
                    help="after the rounds, N runs of localds under strace -f -ttt "
                         "(timeline of its syscalls in the report; traces kept with --keep)")
    ap.add_argument("--no-build", action="store_true", help="use target/release/localds as is")
    ap.add_argument("--settle-ms", type=int, default=50,
                    help="localds --settle for the two-bridge methods (default 50, localds's)")
    ap.add_argument("--hog", type=int, default=0, metavar="N",
                    help="N busy-looping processes during the rounds (a loaded machine)")
    ap.add_argument("--out", help="also write the markdown report to this file")
    ap.add_argument("--keep", action="store_true", help="keep the work directory (logs)")
    args = ap.parse_args()
    if args.rounds is None:
        args.rounds = 6 if args.quick else 25
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    for m in methods:
        if m not in METHODS:
            ap.error(f"unknown method {m!r}")
    if os.geteuid() != 0:
        sys.exit("local_resolve.py: needs root (network namespaces, avahi-daemon)")
    t_start = time.monotonic()
    when = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    cmd = "bench/local_resolve.py" + ("".join(" " + a for a in sys.argv[1:]))
    if not args.no_build:
        log("cargo build --release --bin localds")
        subprocess.run(["cargo", "build", "--release", "--bin", "localds"], cwd=ROOT, check=True)
    zc_version = ensure_zeroconf() if any(m.startswith("zc-") for m in methods) else "-"
    busy = cpu_busy()

    work = tempfile.mkdtemp(prefix="local-resolve-", dir="/var/tmp")
    lab = Lab(work)
    stop = {"sig": None}

    def on_signal(sig, _frame):
        stop["sig"] = sig
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGHUP, on_signal)
    try:
        lab.up()
        if "avahi-resolve" in methods:
            lab.start_dbus()
        if any(m in BRIDGES_METHODS for m in methods):
            lab.up_bridges()
            lab.start_app_avahi(ns=lab.twin, name="twin")
        t_app = lab.start_app_avahi()
        log(f"lab up: {lab.dev} (bridge {lab.bridge} {lab.bridge_ip}), {lab.app} "
            f"({lab.app_ip}, avahi {lab.host}); settling {args.settle} s")
        lab.enter_device_ns()
        time.sleep(max(0.0, args.settle - (time.monotonic() - t_app)))
        settled = time.monotonic() - t_app
        bench = Bench(lab, args, work)
        hogs = [subprocess.Popen(["sh", "-c", "while :; do :; done"], start_new_session=True)
                for _ in range(args.hog)]
        lab.procs.extend(hogs)
        load0 = os.getloadavg()[0]
        stat0, own0, w0 = cpu_ticks(), os.times(), time.monotonic()
        bench.run(methods, args.rounds)
        stat1, own1, w1 = cpu_ticks(), os.times(), time.monotonic()
        for h in hogs:
            kill(h)
            lab.procs.remove(h)
        hz = os.sysconf("SC_CLK_TCK")
        total_cpu_s = (stat1[0] - stat0[0]) / hz
        busy_s = total_cpu_s - (stat1[1] - stat0[1]) / hz
        own_s = sum(own1[:4]) - sum(own0[:4])
        if args.strace:
            bench.strace_events, _ = bench.strace(args.strace, args.gap)
        meta = {
            "when": when, "cmd": cmd, "mode": "quick" if args.quick else "full",
            "secs": time.monotonic() - t_start,
            "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
                       f"Linux {platform.release()}",
            "versions": versions(zc_version), "busy": busy, "settled": settled,
            "load": (load0, os.getloadavg()[0]), "hog": args.hog,
            "during": (100 * busy_s / total_cpu_s if total_cpu_s else 0.0,
                       100 * min(own_s, busy_s) / total_cpu_s if total_cpu_s else 0.0),
        }
        text = report(bench, methods, args, meta)
        print(text)
        if args.out:
            with open(args.out, "w") as f:
                f.write(text)
    except KeyboardInterrupt:
        log(f"interrupted{' by signal ' + str(stop['sig']) if stop['sig'] else ''}; cleaning up")
        return 130
    finally:
        for p in list(RUNNING):
            kill(p)
        lab.close()
        if args.keep:
            log(f"work directory kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

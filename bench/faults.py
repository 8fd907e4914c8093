#!/usr/bin/env python3
"""Faults: zedinit and the services under what nobody planned (issue 16). Each scenario
makes what it needs (the demo device's namespaces as zfault-dev/zfault-app, tmpfs
mounts under its own work directory), reports what it saw, and cleans up; nothing
leaves the machine. Root. A bench script, not CI: bounded in time by its flags.

  kill9      kill -9 of the downloader, logtail and dnsmasq-render at random moments
             (0.2-3 s apart) for --kill-minutes while they work: 16 MiB downloads back to
             back (mid-transfer and mid-rename), 200 log lines/s with a rename rotation
             every 10 s (logtail mid-save), the network instance rewritten every 1-2 s
             (dnsmasq-render mid-pass). Checked: no published file with a wrong hash
             (every file checked as it appears and at the end), log lines lost or printed
             twice (logtail's README: after SIGKILL at most the batch printed after the
             last save repeats; nothing lost), the rendered configuration current at the
             end, zedinit's fds, private memory and children before and after.
  diskfull   the downloader's download dir on a tmpfs that fills mid-transfer; zedinit's
             log dir on a tmpfs that fills under a chatty service; logtail's state on a
             full tmpfs.
  sigstop    a flooding service SIGSTOPped with its pipe full, then `supctl stop`; a
             `supctl logs -f` client SIGSTOPped during a flood (zedinit must not block).
  clients    1,000 `supctl status` at once: answered, failed, zedinit before/after.
  flaky      an HTTP server that drops each connection at a random offset (Range
             honoured): the downloader must publish the right file.
  avahi      the datastore app's avahi-daemon restarted every 2-4 s during back-to-back
             `.local` downloads.
  subreaper  zedinit as a subreaper (pid: host) SIGKILLed with its services running:
             what is left, and what the next zedinit on the socket does (with the
             binary under test and, with --before BIN, an older zedinit for comparison).

Run: bench/faults.py [--only kill9,diskfull,...] [--kill-minutes 10] [--before BIN]
Writes bench/results/faults-<stamp>.txt (what it prints).
"""

import argparse
import hashlib
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# ZEDCTR_BIN: binaries built elsewhere (another target dir), else the release build here.
BIN = os.environ.get("ZEDCTR_BIN") or os.path.join(ROOT, "target", "release")
DEV, APP = "zfault-dev", "zfault-app"
ENV = dict(os.environ, DEMO_DEV_NS=DEV, DEMO_APP_NS=APP)
OUT = []


def say(*a):
    line = " ".join(str(x) for x in a)
    print(line, flush=True)
    OUT.append(line)


def run(*argv, check=True, **kw):
    return subprocess.run(list(argv), check=check, **kw)


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def children(pid):
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(x) for x in f.read().split()]
    except OSError:
        return []


def proc_figures(pid):
    """zedinit's private KiB, fds, children, threads."""
    priv = 0
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:
            if line.startswith(("Private_Clean:", "Private_Dirty:")):
                priv += int(line.split()[1])
    threads = len(os.listdir(f"/proc/{pid}/task"))
    return {"private_kib": priv, "fds": len(os.listdir(f"/proc/{pid}/fd")),
            "children": len(children(pid)), "threads": threads}


def cmdline(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return ""


class Device:
    """demo/device.sh's device (zfault-dev, zfault-app: bridge, httpd, avahi) and zedinit as
    PID 1 of a pid + mount namespace in the device namespace, with the demo's services."""

    def __init__(self, services=("downloader", "logtail", "dnsmasq-render"), extra=None,
                 log_dir=None, before_start=None):
        self.work = tempfile.mkdtemp(prefix="zedctr-faults.")
        os.chmod(self.work, 0o755)
        self.sock = f"{self.work}/control.sock"
        run(f"{ROOT}/demo/device.sh", "up", self.work, env=ENV, stdout=subprocess.DEVNULL)
        for d in ("services", "downloader/config", "downloads", "dnsmasq", "logtail", "var-log"):
            os.makedirs(f"{self.work}/{d}", exist_ok=True)
        for d in ("downloader", "downloads"):
            os.chmod(f"{self.work}/{d}", 0o777)
        for svc in services:
            with open(f"{ROOT}/demo/services/{svc}.toml") as f:
                text = f.read().replace("@WORK@", self.work).replace("@BIN@", BIN)
            # Killed over and over on purpose: no intensity limit ends them `failed`.
            if "[restart]" in text:
                text = text.replace("[restart]\n", "[restart]\nintensity = 100000\nbackoff-max = \"1s\"\n")
            else:
                text += "\n[restart]\nintensity = 100000\nbackoff-max = \"1s\"\n"
            with open(f"{self.work}/services/{svc}.toml", "w") as f:
                f.write(text)
        for name, text in (extra or {}).items():
            with open(f"{self.work}/services/{name}.toml", "w") as f:
                f.write(text)
        with open(f"{self.work}/demo.img.sha256") as f:
            self.sha = f.read().strip()
        self.size = os.path.getsize(f"{self.work}/www/demo.img")
        self.log_dir = log_dir or f"{self.work}/logs"
        # zedinit's mount namespace is private: mounts for it are made before it starts.
        if before_start:
            before_start(self.work)
        self.console = open(f"{self.work}/console.log", "wb")
        self.zerr = open(f"{self.work}/zedinit.err", "wb")
        self.proc = subprocess.Popen(
            ["ip", "netns", "exec", DEV, "unshare", "--pid", "--fork", "--mount-proc",
             "--kill-child", f"{BIN}/zedinit", "--services-dir", f"{self.work}/services",
             "--control-socket", self.sock, "--log-dir", self.log_dir,
             "--heartbeat-dir", f"{self.work}/heartbeat"],
            stdout=self.console, stderr=self.zerr)
        self.zpid = None
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            kids = children(self.proc.pid)
            if kids and self.supctl("status").returncode == 0:
                self.zpid = kids[0]
                break
            time.sleep(0.1)
        assert self.zpid, "zedinit did not answer"

    def supctl(self, *args, timeout=60):
        return subprocess.run([f"{BIN}/supctl", "--control-socket", self.sock, *args],
                              capture_output=True, text=True, timeout=timeout)

    def status(self):
        r = self.supctl("status", "--json")
        return json.loads(r.stdout) if r.returncode == 0 else None

    def host_pid(self, service):
        """The host pid of a service's main process (its pid namespace's view differs)."""
        st = self.status()
        if not st:
            return None
        for s in st["services"]:
            if s["name"] == service and s.get("pid"):
                # zedinit is PID 1 of its namespace: map through NSpid.
                for p in children(self.zpid):
                    try:
                        with open(f"/proc/{p}/status") as f:
                            for line in f:
                                if line.startswith("NSpid:"):
                                    ids = [int(x) for x in line.split()[1:]]
                                    if len(ids) >= 2 and ids[1] == s["pid"]:
                                        return p
                    except OSError:
                        pass
        return None

    def wait_state(self, service, states, seconds=30):
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            st = self.status()
            for s in (st or {}).get("services", []):
                if s["name"] == service and s["state"] in states:
                    return True
            time.sleep(0.1)
        return False

    def request(self, key, url):
        req = {"name": key, "url": url, "sha256": self.sha, "size": self.size}
        cfg = f"{self.work}/downloader/config"
        with open(f"{cfg}/.{key}.json.tmp", "w") as f:
            json.dump(req, f)
        os.replace(f"{cfg}/.{key}.json.tmp", f"{cfg}/{key}.json")

    def dl_status(self, key):
        try:
            with open(f"{self.work}/downloader/status/{key}.json") as f:
                return json.load(f)
        except (OSError, ValueError):
            return None

    def download_afresh(self, key, url, timeout):
        """Removes the published file and every request, asks for `url` again and waits
        for its end: (status, seconds taken, whether the published file is verified)."""
        target = f"{self.work}/downloads/{self.sha}"
        if os.path.exists(target):
            os.remove(target)
        for old in os.listdir(f"{self.work}/downloader/config"):
            os.remove(f"{self.work}/downloader/config/{old}")
        time.sleep(0.3)
        self.request(key, url)
        t0 = time.monotonic()
        s = None
        while time.monotonic() - t0 < timeout:
            s = self.dl_status(key)
            if s and s.get("state") in ("downloaded", "error"):
                break
            time.sleep(0.1)
        good = bool(s and s.get("state") == "downloaded" and sha256_file(target) == self.sha)
        return s, time.monotonic() - t0, good

    def close(self):
        if self.zpid:
            try:
                os.kill(self.zpid, signal.SIGTERM)
                self.proc.wait(timeout=30)
            except (OSError, subprocess.TimeoutExpired):
                pass
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        run(f"{ROOT}/demo/device.sh", "down", self.work, env=ENV, check=False,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        run("umount", "-l", *[m for m in mounts_under(self.work)], check=False,
            stderr=subprocess.DEVNULL) if mounts_under(self.work) else None
        shutil.rmtree(self.work, ignore_errors=True)


def mounts_under(path):
    with open("/proc/self/mountinfo") as f:
        return [l.split()[4] for l in f if l.split()[4].startswith(path + "/")]


def tmpfs(path, size):
    os.makedirs(path, exist_ok=True)
    run("mount", "-t", "tmpfs", "-o", f"size={size},mode=0777", "zfault", path)


def log_lines_seen(console, pattern=rb"/var/log/app\.log(?:\.1)?: app line (\d+)"):
    seen = {}
    with open(console, "rb") as f:
        for m in re.finditer(pattern, f.read()):
            n = int(m.group(1))
            seen[n] = seen.get(n, 0) + 1
    return seen


# --------------------------------------------------------------------------- kill9
def kill9(args):
    say("\n## kill9: kill -9 at random moments while the services work")
    dev = Device()
    stop = threading.Event()
    bad, checked, downloaded, written = [], set(), [0], [0]
    app_log = f"{dev.work}/var-log/app.log"

    def logs():
        f = open(app_log, "a")
        os.chmod(app_log, 0o600)
        n, last = 0, time.monotonic()
        while not stop.is_set():
            for _ in range(20):
                n += 1
                f.write(f"app line {n}\n")
            f.flush()
            written[0] = n
            if time.monotonic() - last > 10:
                os.replace(app_log, app_log + ".1")
                n += 1
                f.write(f"app line {n}\n")
                f.close()
                written[0] = n
                f = open(app_log, "a")
                os.chmod(app_log, 0o600)
                last = time.monotonic()
            time.sleep(0.1)
        f.close()

    def downloads():
        i = 0
        target = f"{dev.work}/downloads/{dev.sha}"
        while not stop.is_set():
            i += 1
            key = f"k{i}"
            cfg = f"{dev.work}/downloader/config"
            for old in os.listdir(cfg):
                os.remove(f"{cfg}/{old}")
            if os.path.exists(target):
                os.remove(target)
            dev.request(key, "http://10.77.0.5/demo.img")
            t0 = time.monotonic()
            while time.monotonic() - t0 < 20 and not stop.is_set():
                s = dev.dl_status(key)
                if s and s.get("state") == "downloaded":
                    downloaded[0] += 1
                    break
                time.sleep(0.05)

    def checker():
        # Every published name is checked the moment it appears.
        while not stop.is_set():
            for name in os.listdir(f"{dev.work}/downloads"):
                if len(name) == 64:
                    p = f"{dev.work}/downloads/{name}"
                    try:
                        st = os.stat(p)
                        key = (st.st_ino, st.st_mtime_ns)
                        if key in checked:
                            continue
                        checked.add(key)
                        if sha256_file(p) != name:
                            bad.append(name)
                    except OSError:
                        pass
            time.sleep(0.05)

    def network():
        path = f"{dev.work}/network-instances/demo.toml"
        with open(path) as f:
            base = f.read()
        i = 0
        while not stop.wait(random.uniform(1, 2)):
            i += 1
            # A real change each time: the range's end moves, so each pass renders anew.
            text = base.replace("10.77.0.200", f"10.77.0.{150 + i % 50}")
            with open(path + ".tmp", "w") as f:
                f.write(text)
            os.replace(path + ".tmp", path)
            last_end[0] = 150 + i % 50

    last_end = [200]
    time.sleep(3)
    dev.wait_state("dnsmasq@bn-demo", ("running",))
    before = proc_figures(dev.zpid)
    threads = [threading.Thread(target=t, daemon=True) for t in (logs, downloads, checker, network)]
    for t in threads:
        t.start()
    kills = {"downloader": 0, "logtail": 0, "dnsmasq-render": 0}
    t_end = time.monotonic() + args.kill_minutes * 60
    while time.monotonic() < t_end:
        time.sleep(random.uniform(0.2, 3))
        svc = random.choice(list(kills))
        pid = dev.host_pid(svc)
        if pid:
            try:
                os.kill(pid, signal.SIGKILL)
                kills[svc] += 1
            except OSError:
                pass
    stop.set()
    for t in threads:
        t.join(timeout=30)
    # Let everything come back and settle, then look.
    for svc in kills:
        dev.wait_state(svc, ("running",), 30)
    time.sleep(6)
    after = proc_figures(dev.zpid)
    seen = log_lines_seen(f"{dev.work}/console.log")
    lost = [n for n in range(1, written[0] + 1) if n not in seen]
    dup = sum(c - 1 for c in seen.values() if c > 1)
    conf = open(f"{dev.work}/dnsmasq/bn-demo.conf").read() if os.path.exists(f"{dev.work}/dnsmasq/bn-demo.conf") else ""
    current = f"10.77.0.{last_end[0]}" in conf
    for name in os.listdir(f"{dev.work}/downloads"):
        if len(name) == 64 and sha256_file(f"{dev.work}/downloads/{name}") != name:
            bad.append(name)
    leftovers = [n for n in os.listdir(f"{dev.work}/downloads") if n.endswith(".part")]
    st = dev.status()
    restarts = {s["name"]: s["restarts"] for s in st["services"]}
    unclean = open(f"{dev.work}/console.log", "rb").read().count(b"unclean")
    say(f"- {args.kill_minutes} min; SIGKILLs: {kills}; restarts seen by zedinit: {restarts}")
    say(f"- downloads completed: {downloaded[0]}; published files checked: {len(checked)}; "
        f"with a wrong hash: {len(bad)}; .part left at the end: {len(leftovers)}")
    say(f"- log lines written: {written[0]}; lost: {len(lost)} {lost[:10]}; printed twice: {dup}")
    say(f"- dnsmasq config current at the end (range end .{last_end[0]}): {current}")
    say(f"- zedinit before: {before}")
    say(f"- zedinit after:  {after}")
    zerr = open(f"{dev.work}/zedinit.err", errors="replace").read()
    panics = zerr.count("panic")
    say(f"- zedinit panics logged: {panics}")
    dev.close()


# --------------------------------------------------------------------------- diskfull
def diskfull(args):
    say("\n## diskfull")
    # (1) the downloader: its download dir fills mid-transfer.
    def small_disk(work):
        tmpfs(f"{work}/downloads", "24m")
    dev = Device(services=("downloader",), before_start=small_disk)
    dl = f"{dev.work}/downloads"
    # 40 Mbit/s from the app: the transfer takes ~3 s, time to fill the disk under it.
    run("ip", "netns", "exec", APP, "tc", "qdisc", "add", "dev", "eth0", "root", "tbf",
        "rate", "40mbit", "burst", "32kbit", "latency", "400ms")
    dev.request("full", "http://10.77.0.5/demo.img")
    t0 = time.monotonic()
    while time.monotonic() - t0 < 20:
        s = dev.dl_status("full")
        if s and s.get("state") == "downloading" and s.get("progress", 0) >= 20:
            break
        time.sleep(0.05)
    with open(f"{dl}/filler", "wb") as f:
        try:
            f.write(b"\0" * (12 << 20))
        except OSError:
            pass
    t0 = time.monotonic()
    s = None
    while time.monotonic() - t0 < 30:
        s = dev.dl_status("full")
        if s and s.get("state") in ("error", "downloaded"):
            break
        time.sleep(0.1)
    parts = [n for n in os.listdir(dl) if n.endswith(".part")]
    published = [n for n in os.listdir(dl) if len(n) == 64]
    alive = dev.wait_state("downloader", ("running",), 2)
    say(f"- downloader, disk filled at ~20 %: state {s and s.get('state')!r}, "
        f"message {s and (s.get('last_error') or {}).get('message')!r}; .part left: {len(parts)}; "
        f"published: {published}; still running: {alive}")
    os.remove(f"{dl}/filler")
    os.utime(f"{dev.work}/downloader/config/full.json")
    t0 = time.monotonic()
    while time.monotonic() - t0 < 40:
        s = dev.dl_status("full")
        if s and s.get("state") == "downloaded":
            break
        time.sleep(0.1)
    ok = s and s.get("state") == "downloaded" and sha256_file(f"{dl}/{dev.sha}") == dev.sha
    say(f"- after room was made and the request touched: {s and s.get('state')!r}, hash right: {bool(ok)}")
    dev.close()

    # (2) zedinit's log writer: its log dir fills under a chatty service.
    work = tempfile.mkdtemp(prefix="zedctr-faults-log.")
    logs = f"{work}/logs"
    tmpfs(logs, "512k")
    os.makedirs(f"{work}/services")
    with open(f"{work}/services/chatty.toml", "w") as f:
        f.write('command = ["/bin/sh", "-c", "i=0; while [ $i -lt 6000 ]; do i=$((i+1)); '
                'echo \\"chatty line $i xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\\"; sleep 0.001; done; sleep 1000"]\n'
                '[log]\nto = "file"\nmax-size = "32KiB"\nkeep = 40\n')
    z = subprocess.Popen(["unshare", "--pid", "--fork", "--mount-proc", "--kill-child",
                          f"{BIN}/zedinit", "--services-dir", f"{work}/services",
                          "--control-socket", f"{work}/c.sock", "--log-dir", logs,
                          "--heartbeat-dir", f"{work}/hb"],
                         stderr=open(f"{work}/zedinit.err", "wb"))
    time.sleep(2)
    with open(f"{logs}/filler", "wb") as f:
        try:
            f.write(b"\0" * (512 << 10))
        except OSError:
            pass
    time.sleep(3)
    os.remove(f"{logs}/filler")
    time.sleep(10)
    zpid = children(z.pid)[0]
    os.kill(zpid, signal.SIGTERM)
    z.wait(timeout=30)
    text = b"".join(open(f"{logs}/{n}", "rb").read() for n in sorted(os.listdir(logs)))
    nums, lost, broken = set(), 0, 0
    for line in text.decode(errors="replace").splitlines():
        m = re.fullmatch(r"\S+ chatty\.out: chatty line (\d+) x+", line)
        if m:
            nums.add(int(m.group(1)))
            continue
        m = re.fullmatch(r"\S+ zedinit: (\d+) lines of chatty lost \(.*\)", line)
        if m:
            lost += int(m.group(1))
            continue
        broken += 1
    top = max(nums) if nums else 0
    missing = top - len([n for n in nums if n <= top])
    zerr = open(f"{work}/zedinit.err", errors="replace").read()
    say(f"- zedinit's log writer, 512 KiB tmpfs filled for 3 s: lines in the files {len(nums)} of "
        f"{top}; said lost in markers {lost}; not accounted {missing - lost}; broken lines {broken}; "
        f"zedinit said: {[l for l in zerr.splitlines() if 'logs/' in l][:3]}")
    run("umount", "-l", logs, check=False)
    shutil.rmtree(work, ignore_errors=True)

    # (3) logtail's state on a full tmpfs.
    work = tempfile.mkdtemp(prefix="zedctr-faults-lt.")
    state = f"{work}/state"
    tmpfs(state, "64k")
    with open(f"{state}/filler", "wb") as f:
        try:
            f.write(b"\0" * (64 << 10))
        except OSError:
            pass
    os.makedirs(f"{work}/logs")
    log = f"{work}/logs/app.log"
    open(log, "w").close()
    out = open(f"{work}/out", "wb")
    err = open(f"{work}/err", "wb")
    lt = subprocess.Popen([f"{BIN}/logtail", f"{work}/logs/*.log", "--state", f"{state}/s.json",
                           "--lines", "0"], stdout=out, stderr=err)
    time.sleep(1)
    with open(log, "a") as f:
        for i in range(1, 1001):
            f.write(f"app line {i}\n")
    time.sleep(2)
    alive = lt.poll() is None
    first = log_lines_seen(f"{work}/out", rb"app\.log: app line (\d+)")
    lt.send_signal(signal.SIGTERM) if alive else None
    try:
        rc = lt.wait(timeout=10)
    except subprocess.TimeoutExpired:
        lt.kill()
        rc = "hung"
    os.remove(f"{state}/filler")
    with open(log, "a") as f:
        for i in range(1001, 1101):
            f.write(f"app line {i}\n")
    lt2 = subprocess.Popen([f"{BIN}/logtail", f"{work}/logs/*.log", "--state", f"{state}/s.json",
                            "--lines", "0"], stdout=out, stderr=err)
    time.sleep(2)
    lt2.send_signal(signal.SIGTERM)
    lt2.wait(timeout=10)
    seen = log_lines_seen(f"{work}/out", rb"app\.log: app line (\d+)")
    errtext = open(f"{work}/err", errors="replace").read().strip().splitlines()
    say(f"- logtail, state on a full 64 KiB tmpfs: printed {len(first)} of 1000 while full; "
        f"still running {alive}; exit after SIGTERM {rc}; after room and a restart: "
        f"lost {len([n for n in range(1, 1101) if n not in seen])}, printed twice "
        f"{sum(c - 1 for c in seen.values() if c > 1)}; said: {errtext[:3]}")
    run("umount", "-l", state, check=False)
    shutil.rmtree(work, ignore_errors=True)


# --------------------------------------------------------------------------- sigstop
def sigstop(args):
    say("\n## sigstop")
    # It handles SIGTERM (a shell trap): a stopped process can't run a handler, so the
    # stop must wake it (SIGCONT) or wait for the timeout and SIGKILL.
    flood = ('command = ["/bin/sh", "-c", "trap \'exit 0\' TERM; while :; do echo flood-line-xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx; done"]\n'
             '[stop]\nsignal = "SIGTERM"\ntimeout = "10s"\n[log]\nto = "file"\nmax-size = "1MiB"\nkeep = 1\n')
    dev = Device(services=(), extra={"flood": flood})
    dev.wait_state("flood", ("running",))
    time.sleep(1)
    before = proc_figures(dev.zpid)
    sh = dev.host_pid("flood")
    os.kill(sh, signal.SIGSTOP)
    time.sleep(2)
    t0 = time.monotonic()
    r = dev.supctl("status")
    status_ms = (time.monotonic() - t0) * 1000
    t0 = time.monotonic()
    r = dev.supctl("stop", "flood", "--timeout", "30s")
    took = time.monotonic() - t0
    log_tail = open(f"{dev.work}/zedinit.err", errors="replace").read().splitlines()[-3:]
    say(f"- a flooding service SIGSTOPped (pipe full): supctl status {status_ms:.0f} ms; "
        f"supctl stop took {took:.1f} s (stop timeout 10 s), rc {r.returncode}; zedinit: {log_tail}")
    dev.supctl("start", "flood")
    time.sleep(1)
    follower = subprocess.Popen([f"{BIN}/supctl", "--control-socket", dev.sock, "logs", "flood", "-f"],
                                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    time.sleep(1)
    os.kill(follower.pid, signal.SIGSTOP)
    lat = []
    for _ in range(20):
        t0 = time.monotonic()
        dev.supctl("status")
        lat.append((time.monotonic() - t0) * 1000)
        time.sleep(0.5)
    mid = proc_figures(dev.zpid)
    os.kill(follower.pid, signal.SIGKILL)
    follower.wait()
    dev.supctl("stop", "flood")
    time.sleep(12)
    after = proc_figures(dev.zpid)
    say(f"- `supctl logs -f` SIGSTOPped during the flood, 10 s: supctl status median "
        f"{sorted(lat)[10]:.0f} ms, max {max(lat):.0f} ms")
    say(f"- zedinit before {before}; with the stopped follower {mid}; after {after}")
    dev.close()


# --------------------------------------------------------------------------- clients
def clients(args):
    say("\n## clients: 1,000 supctl status at once")
    dev = Device(services=("logtail",))
    time.sleep(2)
    before = proc_figures(dev.zpid)
    t0 = time.monotonic()
    procs = [subprocess.Popen([f"{BIN}/supctl", "--control-socket", dev.sock, "status"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
             for _ in range(1000)]
    spawned = time.monotonic() - t0
    fails, errors = 0, {}
    for p in procs:
        try:
            _, e = p.communicate(timeout=120)
        except subprocess.TimeoutExpired:
            p.kill()
            _, e = p.communicate()
        if p.returncode != 0:
            fails += 1
            k = e.decode(errors="replace").strip()[:80]
            errors[k] = errors.get(k, 0) + 1
    took = time.monotonic() - t0
    peak = proc_figures(dev.zpid)
    time.sleep(12)
    after = proc_figures(dev.zpid)
    say(f"- 1000 clients (spawned in {spawned:.1f} s): all done in {took:.1f} s; failed {fails} {errors}")
    say(f"- zedinit before {before}; right after {peak}; 12 s later {after}")
    dev.close()


# --------------------------------------------------------------------------- flaky
FLAKY_SERVER = r"""
import http.server, random, signal, socketserver, sys
data = open(sys.argv[1], "rb").read()
counts = {"drops": 0, "whole": 0}

class Flaky(http.server.BaseHTTPRequestHandler):
    def log_message(self, *a):
        pass

    def do_GET(self):
        start = 0
        rng = self.headers.get("Range")
        if rng:
            start = int(rng.split("=")[1].split("-")[0])
        body = data[start:]
        self.send_response(206 if rng else 200)
        if rng:
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        # 80 % of connections are cut at a random offset of what they were to carry.
        cut = random.randint(0, len(body)) if random.random() < 0.8 else len(body)
        try:
            self.wfile.write(body[:cut])
            self.wfile.flush()
        except OSError:
            return
        if cut < len(body):
            counts["drops"] += 1
            self.close_connection = True
            self.connection.shutdown(2)
        else:
            counts["whole"] += 1

def report(*_):
    print(counts["drops"], counts["whole"], flush=True)
    sys.exit(0)

signal.signal(signal.SIGTERM, report)
srv = socketserver.ThreadingTCPServer((sys.argv[2], int(sys.argv[3])), Flaky)
srv.daemon_threads = True
srv.serve_forever()
"""


def flaky(args):
    say("\n## flaky: an HTTP server dropping each connection at a random offset (80 %)")
    dev = Device(services=("downloader",))
    server = subprocess.Popen(["ip", "netns", "exec", APP, sys.executable, "-c", FLAKY_SERVER,
                               f"{dev.work}/www/demo.img", "10.77.0.5", "8080"],
                              stdout=subprocess.PIPE, text=True)
    time.sleep(1)
    rounds, ok, took = 5, 0, []
    for i in range(rounds):
        s, seconds, good = dev.download_afresh(f"flaky{i}", "http://10.77.0.5:8080/demo.img", 120)
        if good:
            ok += 1
            took.append((seconds, s.get("retries")))
    server.send_signal(signal.SIGTERM)
    out, _ = server.communicate(timeout=10)
    drops, whole = (out.split() + ["?", "?"])[:2]
    say(f"- {rounds} downloads of 16 MiB: {ok} published with the right hash; "
        f"(seconds, retries) each: {[(round(a, 1), b) for a, b in took]}; connections cut {drops}, "
        f"served whole {whole}")
    dev.close()


# --------------------------------------------------------------------------- avahi
def avahi(args):
    say("\n## avahi: the app's avahi-daemon restarted every 2-4 s during .local downloads")
    dev = Device(services=("downloader",))
    stop = threading.Event()
    restarts = [0]
    conf = f"{dev.work}/avahi/avahi-daemon.conf"

    def restarter():
        while not stop.wait(random.uniform(2, 4)):
            with open(f"{dev.work}/run/avahi.pid") as f:
                old = int(f.read())
            # The unshare'd shell exec'd avahi-daemon: its pid is avahi's.
            try:
                os.kill(old, signal.SIGTERM)
            except OSError:
                pass
            time.sleep(0.2)
            p = subprocess.Popen(
                ["ip", "netns", "exec", APP, "unshare", "--mount", "--propagation", "private", "sh", "-c",
                 f"mount -t tmpfs -o mode=0755 demo-run /run && mount --bind '{dev.work}/avahi/services' "
                 f"/etc/avahi/services && exec avahi-daemon --file='{conf}' --no-rlimits"],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            with open(f"{dev.work}/run/avahi.pid", "w") as f:
                f.write(str(p.pid))
            restarts[0] += 1

    t = threading.Thread(target=restarter, daemon=True)
    t.start()
    results = []
    t_end = time.monotonic() + args.avahi_seconds
    i = 0
    while time.monotonic() < t_end:
        i += 1
        s, seconds, good = dev.download_afresh(f"local{i}", "http://demo-app.local/demo.img", 60)
        results.append((round(seconds, 1), s and s.get("retries"), good))
    stop.set()
    t.join(timeout=10)
    oks = [r for r in results if r[2]]
    times = sorted(r[0] for r in oks)
    say(f"- {args.avahi_seconds} s, avahi restarted {restarts[0]} times; {len(results)} downloads, "
        f"{len(oks)} published with the right hash; seconds p50 {times[len(times) // 2] if times else '-'}, "
        f"max {times[-1] if times else '-'}; retries {[r[1] for r in results]}")
    dev.close()


# --------------------------------------------------------------------------- subreaper
def subreaper_run(zedinit, label):
    """zedinit as a subreaper (its pid namespace's PID 1 is a shell, as the host's init
    under `pid: host`), with a root service, a nobody service and a forking one; SIGKILL;
    then a second zedinit (the same binary) on the same socket."""
    work = tempfile.mkdtemp(prefix="zedctr-faults-sr.")
    os.chmod(work, 0o755)
    os.makedirs(f"{work}/services")
    defs = {
        "rootsvc": 'command = ["/bin/sleep", "100001"]\n',
        "nobodysvc": 'command = ["/bin/sleep", "100002"]\n[run]\nuid = "nobody"\ngid = "nogroup"\n',
        "forker": 'command = ["/bin/sh", "-c", "setsid sleep 100003 & exec sleep 100004"]\n',
    }
    for n, t in defs.items():
        with open(f"{work}/services/{n}.toml", "w") as f:
            f.write(t)
    args = f"--services-dir {work}/services --control-socket {work}/c.sock --log-dir {work}/logs --heartbeat-dir {work}/hb"
    script = (f'"{zedinit}" {args} 2>{work}/z1.err\n'
              f'while [ ! -e {work}/go ]; do sleep 0.05; done\n'
              f'"{zedinit}" {args} 2>{work}/z2.err &\nwait\n')
    ns = subprocess.Popen(["unshare", "--pid", "--fork", "--mount-proc", "--kill-child", "sh", "-c", script])
    sleeps = lambda: sorted(p for p in map(int, filter(str.isdigit, os.listdir("/proc")))
                            if re.fullmatch(r"(/bin/)?sleep 10000\d", cmdline(p)))
    try:
        deadline = time.monotonic() + 20
        shell = None
        while time.monotonic() < deadline and len(sleeps()) < 4:
            time.sleep(0.1)
        shell = children(ns.pid)[0]
        z1 = [p for p in children(shell) if "--services-dir" in cmdline(p)][0]
        first = sleeps()
        os.kill(z1, signal.SIGKILL)
        time.sleep(1)
        left = [(p, cmdline(p).split()[-1], open(f"/proc/{p}/status").read().split("Uid:")[1].split()[0])
                for p in sleeps()]
        open(f"{work}/go", "w").close()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            z2 = [p for p in children(shell) if "--services-dir" in cmdline(p) and p != z1]
            if z2 and subprocess.run([f"{BIN}/supctl", "--control-socket", f"{work}/c.sock", "status"],
                                     capture_output=True).returncode == 0 and len(sleeps()) >= 4:
                break
            time.sleep(0.1)
        time.sleep(1)
        now = sleeps()
        survivors = [p for p in first if p in now]
        z2err = open(f"{work}/z2.err", errors="replace").read()
        said = [l for l in z2err.splitlines() if "previous zedinit" in l]
        say(f"- {label}: after SIGKILL, still running (pid, arg, uid): {left}")
        say(f"  next zedinit: {len(now)} sleeps run ({len(survivors)} of them the old ones: "
            f"{'duplicates' if survivors else 'none'}); it said: {said}")
    finally:
        ns.kill()
        ns.wait()
        for p in sleeps():
            try:
                os.kill(p, signal.SIGKILL)
            except OSError:
                pass
        shutil.rmtree(work, ignore_errors=True)


def subreaper(args):
    say("\n## subreaper: zedinit SIGKILLed as a subreaper (pid: host), then started again")
    if args.before:
        subreaper_run(args.before, f"before ({args.before})")
    subreaper_run(f"{BIN}/zedinit", "this build")


SCENARIOS = {"kill9": kill9, "diskfull": diskfull, "sigstop": sigstop, "clients": clients,
             "flaky": flaky, "avahi": avahi, "subreaper": subreaper}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--only", default=",".join(SCENARIOS))
    ap.add_argument("--kill-minutes", type=float, default=10)
    ap.add_argument("--avahi-seconds", type=float, default=60)
    ap.add_argument("--before", help="an older zedinit binary for the subreaper comparison")
    ap.add_argument("--out", default=os.path.join(ROOT, "bench", "results"))
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("bench/faults.py: needs root")

    def stop(signum, _frame):
        raise KeyboardInterrupt(f"signal {signum}")
    signal.signal(signal.SIGTERM, stop)
    for b in ("zedinit", "supctl", "downloader", "logtail", "dnsmasq-render"):
        if not os.access(f"{BIN}/{b}", os.X_OK):
            run("cargo", "build", "--release", "--workspace", "--bins", cwd=ROOT)
            break
    say(f"# bench/faults.py {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {os.cpu_count()} cores, "
        f"load {os.getloadavg()[0]:.2f}")
    for name in args.only.split(","):
        try:
            SCENARIOS[name](args)
        except Exception as e:  # one scenario's failure is reported; the next still runs
            say(f"- {name}: the scenario itself failed: {e!r}")
    os.makedirs(args.out, exist_ok=True)
    path = f"{args.out}/faults-{time.strftime('%Y%m%d-%H%M', time.gmtime())}.txt"
    with open(path, "w") as f:
        f.write("\n".join(OUT) + "\n")
    print(f"\nwritten: {path}")


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Soak: zedinit as PID 1 (a private pid + mount namespace in a device's network
namespace, as demo/run) with shipped-like, confined definitions (demo/services: the
downloader, logtail, dnsmasq-render and its generated dnsmasq@bn-demo, a ticker with a
heartbeat), under a steady load for --minutes:

  logs       a writer appends numbered lines to var-log/soak.log (100 lines/s); every
             minute a rename rotation (logrotate's `create`); at the end, every line
             must have reached logtail's output (the console) once (logtail is only ever
             stopped with SIGTERM here, after which it resumes exactly)
  downloads  every 30 s a new request for the 16 MiB image (alternately by .local name
             and by address) after the last verified copy is removed; every published
             file must hash to its name
  restarts   every 100 s `supctl restart` of the next of downloader, logtail,
             dnsmasq-render (each every 5 minutes)
  control    `supctl status` every 10 s, `supctl logs downloader` every 30 s
  network    the network-instance file rewritten every 2 minutes (a dnsmasq-render pass)

Every --sample seconds (60) it records, for every process under zedinit (zedinit
included), RSS, private memory (smaps_rollup), open fds and CPU (% of one core since the
last sample). Results: bench/results/soak-<stamp>.csv and .png (matplotlib: Debian's
python3-matplotlib), and a summary (first against last quarter) on stdout.

Root; loopback and its own namespaces (zsoak-dev, zsoak-app) only.
Run: bench/soak.py [--minutes 60] [--sample 60]
"""

import argparse
import collections
import hashlib
import json
import os
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
# Namespace names; two soaks at once need two pairs (SOAK_NS=name: name-dev, name-app).
_NS = os.environ.get("SOAK_NS", "zsoak")
DEV, APP = f"{_NS}-dev", f"{_NS}-app"
TICK = os.sysconf("SC_CLK_TCK")


def sh(*argv, **kw):
    return subprocess.run(list(argv), check=True, **kw)


def supctl(sock, *args, timeout=60):
    return subprocess.run([f"{BIN}/supctl", "--control-socket", sock, *args],
                          capture_output=True, text=True, timeout=timeout)


def descendants(root):
    """Pids of `root` and every process below it."""
    children = collections.defaultdict(list)
    for p in os.listdir("/proc"):
        if not p.isdigit():
            continue
        try:
            with open(f"/proc/{p}/stat") as f:
                st = f.read()
        except OSError:
            continue
        ppid = int(st[st.rfind(")") + 2:].split()[1])
        children[ppid].append(int(p))
    out, todo = [], [root]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, []))
    return out


def proc_sample(pid):
    """(name, rss KiB, private KiB, fds, cpu ticks) of a process, None if it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            st = f.read()
        name = st[st.find("(") + 1:st.rfind(")")]
        fields = st[st.rfind(")") + 2:].split()
        ticks = int(fields[11]) + int(fields[12])
        rss = priv = 0
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                k, _, v = line.partition(":")
                if k == "Rss":
                    rss = int(v.split()[0])
                elif k in ("Private_Clean", "Private_Dirty"):
                    priv += int(v.split()[0])
        fds = len(os.listdir(f"/proc/{pid}/fd"))
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            argv = f.read().split(b"\0")
        # Services are named by what they run (the ticker is a shell: `sh`).
        if name.startswith("dnsmasq") and b"dnsmasq-render" not in argv[0]:
            name = "dnsmasq"
        return name, rss, priv, fds, ticks
    except (OSError, ValueError, IndexError):
        return None


class Load:
    def __init__(self, work, sock, sha, size):
        self.work, self.sock, self.sha, self.size = work, sock, sha, size
        self.stop = threading.Event()
        self.lines_written = 0
        self.rotations = 0
        self.downloads = []  # (key, seconds to downloaded or None)
        self.restarts = collections.Counter()
        self.control_failures = 0
        self.errors = []

    def run(self, target, *a):
        def wrapped():
            try:
                target(*a)
            except Exception as e:  # a load thread's failure is a finding, not a crash
                self.errors.append(f"{target.__name__}: {e!r}")
        t = threading.Thread(target=wrapped, daemon=True)
        t.start()
        return t

    def logs(self):
        log = f"{self.work}/var-log/soak.log"
        f = open(log, "a")
        os.chmod(log, 0o600)
        n, last_rot = 0, time.monotonic()
        while not self.stop.is_set():
            for _ in range(10):
                n += 1
                f.write(f"soak line {n}\n")
            f.flush()
            self.lines_written = n
            if time.monotonic() - last_rot >= 60:
                os.replace(log, log + ".1")
                # The writer goes on in the old file a moment, as a daemon until it reopens.
                f.write(f"soak line {n + 1}\n")
                n += 1
                f.close()
                f = open(log, "a")
                os.chmod(log, 0o600)
                self.rotations += 1
                last_rot = time.monotonic()
            time.sleep(0.1)
        f.close()
        self.lines_written = n

    def downloads_loop(self):
        cfg = f"{self.work}/downloader/config"
        target = f"{self.work}/downloads/{self.sha}"
        i = 0
        while not self.stop.is_set():
            i += 1
            for old in os.listdir(cfg):
                os.remove(f"{cfg}/{old}")
            time.sleep(0.5)
            if os.path.exists(target):
                os.remove(target)
            key = f"soak-{i}"
            host = "demo-app.local" if i % 2 else "10.77.0.5"
            req = {"name": key, "url": f"http://{host}/demo.img", "sha256": self.sha,
                   "size": self.size}
            tmp = f"{cfg}/.{key}.json.tmp"
            with open(tmp, "w") as f:
                json.dump(req, f)
            os.replace(tmp, f"{cfg}/{key}.json")
            t0 = time.monotonic()
            took = None
            while time.monotonic() - t0 < 29 and not self.stop.is_set():
                try:
                    with open(f"{self.work}/downloader/status/{key}.json") as f:
                        if json.load(f).get("state") == "downloaded":
                            took = time.monotonic() - t0
                            break
                except (OSError, ValueError):
                    pass
                time.sleep(0.2)
            self.downloads.append((key, took))
            self.stop.wait(max(0, 30 - (time.monotonic() - t0)))

    def restarts_loop(self):
        order = ["downloader", "logtail", "dnsmasq-render"]
        i = 0
        while not self.stop.wait(100):
            svc = order[i % 3]
            i += 1
            r = supctl(self.sock, "restart", svc)
            self.restarts[svc] += 1
            if r.returncode != 0:
                self.control_failures += 1
                self.errors.append(f"restart {svc}: {r.stderr.strip()}")

    def control_loop(self):
        i = 0
        while not self.stop.wait(10):
            i += 1
            if supctl(self.sock, "status").returncode != 0:
                self.control_failures += 1
            if i % 3 == 0 and supctl(self.sock, "logs", "downloader", "-n", "50").returncode != 0:
                self.control_failures += 1

    def network_loop(self):
        path = f"{self.work}/network-instances/demo.toml"
        i = 0
        while not self.stop.wait(120):
            i += 1
            with open(path) as f:
                text = f.read()
            text = "\n".join(l for l in text.splitlines() if not l.startswith("# soak")) + "\n"
            tmp = path + ".tmp"
            with open(tmp, "w") as f:
                f.write(f"# soak pass {i}\n" + text)
            os.replace(tmp, path)


def plot(rows, png, minutes):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    series = collections.defaultdict(lambda: collections.defaultdict(list))
    for r in rows:
        for m in ("private_kib", "rss_kib", "fds", "cpu_pct"):
            series[m][r["name"]].append((r["minute"], r[m]))
    fig, axes = plt.subplots(4, 1, figsize=(10, 13), sharex=True)
    titles = {"private_kib": "private memory (KiB)", "rss_kib": "RSS (KiB)",
              "fds": "open fds", "cpu_pct": "CPU (% of a core, per interval)"}
    for ax, m in zip(axes, titles):
        for name, pts in sorted(series[m].items()):
            xs, ys = zip(*pts)
            ax.plot(xs, ys, marker=".", label=name)
        ax.set_title(titles[m])
        ax.grid(True, alpha=0.3)
        if m != "cpu_pct":
            ax.set_yscale("log")
    axes[0].legend(fontsize=8, ncol=4)
    axes[-1].set_xlabel("minutes")
    fig.suptitle(f"zedctr soak: {minutes} min, zedinit + services under load")
    fig.tight_layout()
    fig.savefig(png, dpi=90)


def read_csv(path):
    rows = []
    with open(path) as f:
        next(f)
        for line in f:
            m, name, pid, rss, priv, fds, cpu = line.strip().split(",")
            rows.append({"minute": float(m), "name": name, "pid": int(pid), "rss_kib": int(rss),
                         "private_kib": int(priv), "fds": int(fds), "cpu_pct": float(cpu)})
    return rows


def plot_or_delegate(csv_path, png, minutes):
    """Plots with this interpreter's matplotlib, else with Debian's python3 (apt's
    python3-matplotlib is not seen by another python3 first on PATH, e.g. pyenv's)."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        subprocess.run(["/usr/bin/python3", os.path.abspath(__file__), "--plot-from", csv_path,
                        "--png", png, "--minutes", str(minutes)], check=True)
        return
    plot(read_csv(csv_path), png, minutes)


def summary(rows):
    """Per name: median of the first and last quarter of samples (after minute 2)."""
    by = collections.defaultdict(list)
    for r in rows:
        if r["minute"] >= 2:
            by[r["name"]].append(r)
    out = []
    for name, rs in sorted(by.items()):
        q = max(1, len(rs) // 4)
        def med(xs):
            xs = sorted(xs)
            return xs[len(xs) // 2]
        first, last = rs[:q], rs[-q:]
        out.append((name, med([r["private_kib"] for r in first]), med([r["private_kib"] for r in last]),
                    med([r["rss_kib"] for r in first]), med([r["rss_kib"] for r in last]),
                    med([r["fds"] for r in first]), med([r["fds"] for r in last]),
                    med([r["cpu_pct"] for r in rs])))
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--minutes", type=float, default=60)
    ap.add_argument("--sample", type=float, default=60, help="seconds between samples")
    ap.add_argument("--out", default=os.path.join(ROOT, "bench", "results"))
    ap.add_argument("--plot-from", metavar="CSV", help="only plot an earlier run's CSV (to --png)")
    ap.add_argument("--png")
    args = ap.parse_args()
    if args.plot_from:
        rows = read_csv(args.plot_from)
        plot(rows, args.png or args.plot_from[:-4] + ".png", round(args.minutes))
        print("\nname              private KiB first->last   RSS KiB first->last   fds first->last   median CPU %")
        for name, p0, p1, r0, r1, f0, f1, cpu in summary(rows):
            print(f"{name:16}  {p0:8} -> {p1:<8}      {r0:8} -> {r1:<8}   {f0:4} -> {f1:<4}       {cpu:.2f}")
        return
    if os.geteuid() != 0:
        sys.exit("bench/soak.py: needs root (namespaces)")
    # SIGTERM and SIGINT (ignored in a background job) end the run through its clean-up.
    def stop(signum, _frame):
        raise KeyboardInterrupt(f"signal {signum}")
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    for b in ("zedinit", "supctl", "downloader", "logtail", "dnsmasq-render"):
        if not os.access(f"{BIN}/{b}", os.X_OK):
            sh("cargo", "build", "--release", "--workspace", "--bins", cwd=ROOT)
            break
    os.makedirs(args.out, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M", time.gmtime())
    work = tempfile.mkdtemp(prefix="zedctr-soak.")
    os.chmod(work, 0o755)
    env = dict(os.environ, DEMO_DEV_NS=DEV, DEMO_APP_NS=APP)
    sock = f"{work}/control.sock"
    zed = None
    load = None
    try:
        sh(f"{ROOT}/demo/device.sh", "up", work, env=env, stdout=subprocess.DEVNULL)
        for d in ("services", "downloader/config", "downloads", "dnsmasq", "logtail", "var-log"):
            os.makedirs(f"{work}/{d}", exist_ok=True)
        for d in ("downloader", "downloads"):
            os.chmod(f"{work}/{d}", 0o777)
        for svc in ("downloader", "logtail", "dnsmasq-render", "ticker", "prepare"):
            with open(f"{ROOT}/demo/services/{svc}.toml") as f:
                text = f.read().replace("@WORK@", work).replace("@BIN@", BIN)
            with open(f"{work}/services/{svc}.toml", "w") as f:
                f.write(text)
        with open(f"{work}/demo.img.sha256") as f:
            sha = f.read().strip()
        size = os.path.getsize(f"{work}/www/demo.img")
        console = open(f"{work}/console.log", "wb")
        zerr = open(f"{work}/zedinit.err", "wb")
        zed = subprocess.Popen(
            ["ip", "netns", "exec", DEV, "unshare", "--pid", "--fork", "--mount-proc",
             "--kill-child", f"{BIN}/zedinit", "--services-dir", f"{work}/services",
             "--control-socket", sock, "--log-dir", f"{work}/logs",
             "--heartbeat-dir", f"{work}/heartbeat"],
            stdout=console, stderr=zerr)
        zpid = None
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            kids = [p for p in descendants(zed.pid) if proc_sample(p) and proc_sample(p)[0] == "zedinit"]
            if kids and supctl(sock, "status").returncode == 0:
                zpid = kids[0]
                break
            time.sleep(0.2)
        if zpid is None:
            sys.exit("zedinit did not answer within 30 s")
        load = Load(work, sock, sha, size)
        threads = [load.run(fn) for fn in (load.logs, load.downloads_loop, load.restarts_loop,
                                           load.control_loop, load.network_loop)]
        rows, last_ticks = [], {}
        t0 = time.monotonic()
        csv_path = f"{args.out}/soak-{stamp}.csv"
        csv = open(csv_path, "w")
        csv.write("minute,name,pid,rss_kib,private_kib,fds,cpu_pct\n")
        n = 0
        while True:
            now = time.monotonic()
            minute = (now - t0) / 60
            per_name = {}
            for pid in descendants(zpid):
                s = proc_sample(pid)
                if s is None:
                    continue
                name, rss, priv, fds, ticks = s
                if name in ("sleep",):
                    continue
                prev = last_ticks.get(pid)
                last_ticks[pid] = (ticks, now)
                cpu = 0.0 if prev is None or now <= prev[1] else \
                    100.0 * (ticks - prev[0]) / TICK / (now - prev[1])
                # Processes of one name (a service's restarts overlap rarely) are summed.
                agg = per_name.setdefault(name, [pid, 0, 0, 0, 0.0])
                agg[1] += rss
                agg[2] += priv
                agg[3] += fds
                agg[4] += cpu
            for name, (pid, rss, priv, fds, cpu) in sorted(per_name.items()):
                row = {"minute": round(minute, 2), "name": name, "pid": pid, "rss_kib": rss,
                       "private_kib": priv, "fds": fds, "cpu_pct": round(cpu, 2)}
                rows.append(row)
                csv.write(f"{row['minute']},{name},{pid},{rss},{priv},{fds},{row['cpu_pct']}\n")
            csv.flush()
            n += 1
            print(f"[{minute:6.1f} min] " + "  ".join(
                f"{k}:{v[2]}K/{v[3]}fd" for k, v in sorted(per_name.items())), flush=True)
            if minute >= args.minutes or zed.poll() is not None:
                break
            time.sleep(max(0, t0 + n * args.sample - time.monotonic()))
        load.stop.set()
        for t in threads:
            t.join(timeout=70)
        time.sleep(3)  # logtail's last lines
        # Checks: every log line once; every published file's hash.
        seen = collections.Counter()
        with open(f"{work}/console.log", "rb") as f:
            for line in f:
                at = line.find(b"soak line ")
                if at >= 0 and b"soak.log" in line:
                    try:
                        seen[int(line[at + 10:].split()[0])] += 1
                    except ValueError:
                        pass
        written = load.lines_written
        lost = sum(1 for i in range(1, written + 1) if i not in seen)
        dup = sum(c - 1 for c in seen.values() if c > 1)
        bad = []
        for name in os.listdir(f"{work}/downloads"):
            if len(name) == 64:
                h = hashlib.sha256()
                with open(f"{work}/downloads/{name}", "rb") as f:
                    for chunk in iter(lambda: f.read(1 << 20), b""):
                        h.update(chunk)
                if h.hexdigest() != name:
                    bad.append(name)
        status = supctl(sock, "status").stdout
        zed_rc = None
        os.kill(zpid, signal.SIGTERM)
        try:
            zed_rc = zed.wait(timeout=60)
        except subprocess.TimeoutExpired:
            pass
        zed = None
        png = f"{args.out}/soak-{stamp}.png"
        done = [t for _, t in load.downloads if t is not None]
        print()
        print(f"soak: {args.minutes} min, {len(set(r['minute'] for r in rows))} samples; csv {csv_path}; png {png}")
        print(f"logs: {written} lines written, {load.rotations} rotations; lost {lost}, printed twice {dup}")
        print(f"downloads: {len(load.downloads)} requests, {len(done)} downloaded within 29 s"
              + (f" (median {sorted(done)[len(done) // 2]:.2f} s)" if done else "")
              + f"; published files with a wrong hash: {len(bad)}")
        print(f"restarts: {dict(load.restarts)}; control failures: {load.control_failures}; "
              f"load errors: {load.errors}")
        print(f"zedinit exit after SIGTERM: {zed_rc}")
        print("\nname              private KiB first->last   RSS KiB first->last   fds first->last   median CPU %")
        for name, p0, p1, r0, r1, f0, f1, cpu in summary(rows):
            print(f"{name:16}  {p0:8} -> {p1:<8}      {r0:8} -> {r1:<8}   {f0:4} -> {f1:<4}       {cpu:.2f}")
        print("\nfinal status:\n" + status, flush=True)
        plot_or_delegate(csv_path, png, round(args.minutes))
    finally:
        if zed is not None and zed.poll() is None:
            zed.kill()
            zed.wait()
        if load:
            load.stop.set()
        subprocess.run([f"{ROOT}/demo/device.sh", "down", work], env=env,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if os.environ.get("SOAK_KEEP"):
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()

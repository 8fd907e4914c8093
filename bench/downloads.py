#!/usr/bin/env python3
"""Download + verify of a 1 GiB file from nginx on loopback (issue 5), side by side.

nginx (Debian's nginx-light, its own config in a temporary directory, 127.0.0.1 on a free
port, one worker, sendfile; not the system service) serves a 1 GiB file of random bytes
from a tmpfs. Every round runs each contender once, in an order rotated from round to
round and reversed every other round, so that no contender always follows the same one
(on this VM a tmpfs writer that starts right after another one deleted its output often
gets cheaper memory than one that starts after a pause: freed memory goes back to the
host within seconds, and its first touch then costs a host fault). Every figure is the
median with its spread, in MiB/s (1 GiB / wall time of the whole command, process start
to exit, verification and publishing included). Run as root:

    bench/downloads.py            # full run: 7 rounds, ~3-4 minutes (disk speed decides)
    bench/downloads.py --quick    # 2 rounds, ~1 minute
    bench/downloads.py --only tmpfs --rounds 5

(a) into a tmpfs mounted under the work directory (nothing on disk, so the transfer and
    the hash are what is measured):
      ours           downloader fetch URL --sha256 HEX -o TMPFS/f  (receive, hash, write
                     .part, fsync, rename, fsync dir; one pass)
      curl|openssl   curl -s URL | openssl sha256  (the reference: nothing stored)
      curl→null      curl -s -o /dev/null URL  (the transfer alone: a limit)
      sha2 (ours)    downloader fetch ... -o TMPFS/f with the verified file already in
                     place: it re-hashes the file (read + Rust sha2, the downloader's own
                     build) and exits: the hash alone, a limit
      openssl file   openssl sha256 TMPFS/file  (openssl's hash alone, for curl|openssl)
(b) onto ext4 (a directory under /var/tmp, on the root filesystem):
      ours ext4      downloader fetch URL --sha256 HEX -o EXT4/f  (fsync included)
      curl+sha256sum+sync   curl -s -o EXT4/f URL && sha256sum EXT4/f && sync
    Before each of these the bench runs `sync` (untimed), so no contender pays for
    another's dirty pages; the output is deleted after each sample.

Every sample starts right after 1.25 GiB were written into the tmpfs and deleted
(untimed): this VM hands freed memory back to its host within ~2 s, and the first touch
of such memory then costs a host fault, which the tmpfs and page-cache writers paid at
random (see `warm_memory`). `--no-warm` measures without it.

`--downloader PATH` benchmarks that binary instead of building target/release/downloader;
`--baseline PATH` adds a contender "baseline": the same `fetch` with another build (say,
the committed code built in another target directory), so a change is measured against
what it replaces in one run, interleaved.

Each command's output is checked (exit status, the hash printed, the size), and the CPU
time it used (user + system, its whole process tree) and nginx's worker's are recorded.
"""

import argparse
import datetime
import os
import platform
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOWNLOADER = os.path.join(REPO, "target", "release", "downloader")
SIZE = 1 << 30
MIB = SIZE / (1 << 20)  # 1024


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def nginx_conf(root, port, prefix):
    return f"""# bench/downloads.py: nginx for one benchmark run only
worker_processes 1;
daemon off;
master_process on;
user root;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections 64; }}
http {{
    access_log off;
    sendfile on;
    tcp_nopush on;
    keepalive_timeout 5;
    client_body_temp_path {prefix}/body;
    server {{
        listen 127.0.0.1:{port};
        root {root};
        default_type application/octet-stream;
    }}
}}
"""


def cpu_of(pid):
    """utime + stime of one process, seconds."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except OSError:
        return float("nan")


def children_cpu():
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


# Untimed, right before every sample: this much is written into the tmpfs and deleted.
WARM_BYTES = SIZE + (256 << 20)


def warm_memory(directory):
    """Makes the guest's free memory backed by the host again before a sample.

    This VM (Firecracker, `page_reporting.page_reporting_order=11` on the kernel command
    line) reports free memory to the host ~2 s after it is freed, and the host takes it
    back: the next first touch of each page then costs a host fault. A contender that
    writes 1 GiB into a tmpfs (or the page cache) after a pause paid that: measured with
    the downloader, 1.4-2.9 s of system time per GiB instead of 0.7-0.9 (wall 1.4-2.6 s
    against 0.9-1.1). Which contender paid it depended on who ran before it and when.
    On a device (bare metal) there is no such cost. So every sample, whatever its
    contender, starts right after 1.25 GiB were written into the tmpfs and deleted: the
    pages it allocates next are backed. (Faulting in anonymous memory instead did not
    help: it is served from other free blocks than the tmpfs' small pages.) `--no-warm`
    measures without it."""
    path = os.path.join(directory, "warm")
    block = bytes(1 << 20)
    with open(path, "wb") as f:
        for _ in range(WARM_BYTES >> 20):
            f.write(block)
    os.unlink(path)


PAGE_REPORTING = "/sys/module/page_reporting/parameters/page_reporting_order"
# Beyond the largest buddy order (10 on x86-64): no free block qualifies for reporting.
NO_REPORTING_ORDER = "11"


def stop_page_reporting():
    """Stops the guest from reporting free memory to its host for the run; returns the
    setting to put back (None: nothing changed).

    This VM's balloon driver reports free blocks of 2 MiB and more to the host (order 9),
    which takes their memory back; a page allocated after that costs a host fault on
    first touch, paid in system time. Only a contender that stores the gigabyte (ours)
    allocates a gigabyte of fresh pages, so only it paid: measured on a quiet machine,
    its slow samples took 2.5x the CPU of its fast ones (422 MiB/s at 3.17 CPU-s, 1,161
    at 1.20) while the reference's CPU never moved, and `warm_memory` made that rarer,
    not rare. With reporting stopped, ours' spread in a run fell from 422-1,173 to
    1,117-1,309 MiB/s (BENCHMARKS.md, issue 16, downloader, session 22). A device on
    bare metal has no such cost. `--keep-page-reporting` leaves it on."""
    try:
        with open(PAGE_REPORTING) as f:
            before = f.read().strip()
        if before == NO_REPORTING_ORDER:
            return None
        with open(PAGE_REPORTING, "w") as f:
            f.write(NO_REPORTING_ORDER)
        return before
    except OSError:
        return None


def restore_page_reporting(before):
    if before is not None:
        with open(PAGE_REPORTING, "w") as f:
            f.write(before)


class Run:
    def __init__(self, work, url, sha, src, worker, downloader, baseline, warm=True):
        self.work, self.url, self.sha, self.src, self.worker = work, url, sha, src, worker
        self.downloader, self.baseline, self.warm = downloader, baseline, warm
        self.tmpfs_out = os.path.join(work, "tmpfs", "out")
        self.ext4_out = os.path.join(work, "ext4")
        os.makedirs(self.tmpfs_out)
        os.makedirs(self.ext4_out)

    def timed(self, name, argv, check, shell=False, before=None):
        if before:
            before()
        if self.warm:
            warm_memory(self.tmpfs_out)
        c0, n0 = children_cpu(), cpu_of(self.worker)
        t0 = time.monotonic()
        p = subprocess.run(argv, shell=shell, executable="/bin/bash" if shell else None,
                           capture_output=True, text=True, timeout=600)
        dt = time.monotonic() - t0
        c1, n1 = children_cpu(), cpu_of(self.worker)
        if p.returncode != 0:
            raise RuntimeError(f"{name}: exit {p.returncode}: {p.stderr.strip()[-500:]}")
        problem = check(p)
        if problem:
            raise RuntimeError(f"{name}: {problem}\nstdout: {p.stdout[-300:]}\nstderr: {p.stderr[-300:]}")
        return {"mibs": MIB / dt, "s": dt, "cpu": c1 - c0, "nginx": n1 - n0}

    # ---- contenders ------------------------------------------------------------

    def ours(self, outdir, binary=None):
        f = os.path.join(outdir, "f")
        before = (lambda: subprocess.run(["sync"])) if outdir == self.ext4_out else None

        def check(p):
            if not os.path.exists(f) or os.path.getsize(f) != SIZE:
                return "no verified 1 GiB file in place"
            if "downloaded and verified" not in p.stderr:
                return "not reported as downloaded and verified"
        try:
            return self.timed("downloader fetch", [binary or self.downloader, "fetch", self.url,
                                                   "--sha256", self.sha, "-o", f], check, before=before)
        finally:
            for x in (f, f + ".part"):
                if os.path.exists(x):
                    os.unlink(x)

    def rehash(self):
        """The downloader with its verified file already in place: hash only."""
        f = os.path.join(self.tmpfs_out, "present")
        if not os.path.exists(f):
            shutil.copyfile(self.src, f)

        def check(p):
            if "already there and verified" not in p.stderr:
                return "not reported as already there and verified"
        return self.timed("downloader re-verify", [self.downloader, "fetch", self.url, "--sha256", self.sha,
                                                   "-o", f], check)

    def curl_openssl(self):
        return self.timed("curl | openssl sha256",
                          f"set -o pipefail; curl -s {self.url} | openssl sha256",
                          lambda p: None if self.sha in p.stdout else "wrong hash", shell=True)

    def curl_null(self):
        return self.timed("curl -o /dev/null",
                          ["curl", "-s", "-o", "/dev/null", "-w", "%{size_download}", self.url],
                          lambda p: None if p.stdout.strip() == str(SIZE) else f"got {p.stdout} bytes")

    def openssl_file(self):
        return self.timed("openssl sha256 FILE", ["openssl", "sha256", self.src],
                          lambda p: None if self.sha in p.stdout else "wrong hash")

    def curl_ext4(self):
        f = os.path.join(self.ext4_out, "f")
        try:
            return self.timed("curl + sha256sum + sync",
                              f"set -e; curl -s -o {f} {self.url}; sha256sum {f}; sync", 
                              lambda p: None if self.sha in p.stdout else "wrong hash", shell=True,
                              before=lambda: subprocess.run(["sync"]))
        finally:
            if os.path.exists(f):
                os.unlink(f)


CONTENDERS = {
    # key: (group, label, command shown in the report, method)
    "ours": ("tmpfs", "ours: downloader fetch → tmpfs",
             "downloader fetch URL --sha256 HEX -o TMPFS/f", lambda r: r.ours(r.tmpfs_out)),
    "baseline": ("tmpfs", "baseline: downloader fetch → tmpfs, the --baseline build",
                 "BASELINE fetch URL --sha256 HEX -o TMPFS/f", lambda r: r.ours(r.tmpfs_out, r.baseline)),
    "curl|openssl": ("tmpfs", "curl -s URL | openssl sha256 (reference)",
                     "curl -s URL | openssl sha256", lambda r: r.curl_openssl()),
    "curl→null": ("tmpfs", "limit: curl -o /dev/null (transfer only)",
                  "curl -s -o /dev/null URL", lambda r: r.curl_null()),
    "sha2": ("tmpfs", "limit: Rust sha2 in the downloader (re-verify a file in place, hash only)",
             "downloader fetch URL --sha256 HEX -o TMPFS/present  # already there: re-hash",
             lambda r: r.rehash()),
    "openssl-file": ("tmpfs", "limit: openssl sha256 of the file (hash only)",
                     "openssl sha256 TMPFS/www/big.bin", lambda r: r.openssl_file()),
    "ours-ext4": ("ext4", "ours: downloader fetch → ext4 (fsync)",
                  "sync; downloader fetch URL --sha256 HEX -o /var/tmp/…/ext4/f",
                  lambda r: r.ours(r.ext4_out)),
    "curl-ext4": ("ext4", "curl -o f && sha256sum f && sync → ext4",
                  "sync; curl -s -o /var/tmp/…/ext4/f URL && sha256sum f && sync",
                  lambda r: r.curl_ext4()),
}


def q(values, p):
    v = sorted(values)
    k = (len(v) - 1) * p
    lo, hi = int(k), min(int(k) + 1, len(v) - 1)
    return v[lo] + (v[hi] - v[lo]) * (k - lo)


def fmt(x):
    return f"{x:.0f}" if abs(x) >= 100 else f"{x:.2f}" if abs(x) < 10 else f"{x:.1f}"


def summary(values):
    if not values:
        return "n/a"
    return (f"{fmt(statistics.median(values))} (IQR {fmt(q(values, .25))}–{fmt(q(values, .75))}, "
            f"range {fmt(min(values))}–{fmt(max(values))})")


def cpu_busy(seconds):
    def sample():
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:]]
        return sum(v), v[3] + v[4]
    t1, i1 = sample()
    time.sleep(seconds)
    t2, i2 = sample()
    return 100.0 * (1 - (i2 - i1) / max(1, t2 - t1))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="2 rounds (~1 minute)")
    ap.add_argument("--rounds", type=int, help="rounds (default 7, --quick 2)")
    ap.add_argument("--only", default="tmpfs,ext4", help="groups: tmpfs, ext4 (default both)")
    ap.add_argument("--contenders", default=",".join(k for k in CONTENDERS if k != "baseline"),
                    help="comma-separated subset of: " + ", ".join(CONTENDERS))
    ap.add_argument("--no-build", action="store_true", help="use target/release as it is")
    ap.add_argument("--downloader", metavar="PATH",
                    help="the downloader binary to benchmark (no build); default: build target/release/downloader")
    ap.add_argument("--baseline", metavar="PATH",
                    help="another downloader build, run as contender 'baseline' beside 'ours'")
    ap.add_argument("--no-warm", action="store_true",
                    help="do not fault in and free memory before each sample (see warm_memory)")
    ap.add_argument("--keep-page-reporting", action="store_true",
                    help="leave the VM's free page reporting on (see stop_page_reporting)")
    ap.add_argument("--out", help="also write the markdown report to this file")
    ap.add_argument("--keep", action="store_true", help="keep the work directory (nginx logs)")
    ap.add_argument("--pause", action="store_true",
                    help="after set-up, print the URL and hash and wait for Enter (to profile by hand)")
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("bench/downloads.py: needs root (mounts a tmpfs)")
    for tool in ["nginx", "curl", "openssl", "sha256sum"]:
        if not shutil.which(tool, path=os.environ.get("PATH", "") + ":/usr/sbin"):
            sys.exit(f"bench/downloads.py: {tool} missing (apt-get install nginx-light curl openssl)")
    if not args.no_build and not args.downloader:
        log("building the downloader (cargo build --release)...")
        subprocess.run(["cargo", "build", "--quiet", "--release", "--bin", "downloader"], cwd=REPO, check=True)
    rounds = args.rounds or (2 if args.quick else 7)
    groups = set(args.only.split(","))
    keys = [k for k in args.contenders.split(",") if CONTENDERS[k][0] in groups]
    if args.baseline and "baseline" not in keys and "tmpfs" in groups:
        keys.insert(keys.index("ours") + 1 if "ours" in keys else 0, "baseline")
    if "baseline" in keys and not args.baseline:
        sys.exit("bench/downloads.py: contender 'baseline' needs --baseline PATH")

    work = tempfile.mkdtemp(prefix="zedctr-dl.", dir="/var/tmp")
    tmpfs = os.path.join(work, "tmpfs")
    os.makedirs(tmpfs)
    mounted, nginx = False, None

    def bye(*_):
        raise KeyboardInterrupt
    signal.signal(signal.SIGTERM, bye)
    res = {k: [] for k in keys}
    busy_before = cpu_busy(1.0)
    reporting_before = None if args.keep_page_reporting else stop_page_reporting()
    try:
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4g,mode=0755", "zedctr-dl", tmpfs], check=True)
        mounted = True
        www = os.path.join(tmpfs, "www")
        os.makedirs(www)
        src = os.path.join(www, "big.bin")
        log("writing 1 GiB of random bytes to the tmpfs...")
        with open("/dev/urandom", "rb") as r, open(src, "wb") as w:
            for _ in range(SIZE // (16 << 20)):
                w.write(r.read(16 << 20))
        sha = subprocess.run(["sha256sum", src], capture_output=True, text=True,
                             check=True).stdout.split()[0]
        prefix = os.path.join(work, "nginx")
        os.makedirs(prefix)
        port = free_port()
        conf = os.path.join(prefix, "nginx.conf")
        with open(conf, "w") as f:
            f.write(nginx_conf(www, port, prefix))
        nginx = subprocess.Popen(["/usr/sbin/nginx", "-p", prefix, "-c", conf, "-e",
                                  os.path.join(prefix, "error.log")],
                                 stdout=subprocess.DEVNULL, stderr=open(os.path.join(prefix, "stderr"), "w"),
                                 start_new_session=True)
        url = f"http://127.0.0.1:{port}/big.bin"
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline or nginx.poll() is not None:
                    raise RuntimeError("nginx did not come up: " + open(os.path.join(prefix, "stderr")).read())
                time.sleep(0.05)
        worker = int(open(f"/proc/{nginx.pid}/task/{nginx.pid}/children").read().split()[0])
        run = Run(work, url, sha, src, worker, args.downloader or DOWNLOADER, args.baseline,
                  warm=not args.no_warm)
        if args.pause:
            print(f"URL {url}\nsha256 {sha}\nnginx worker pid {worker}\nwork {work}", flush=True)
            input("Enter to go on with the benchmark... ")
        # One warm-up of each (page cache of the binaries, nginx's first sendfile).
        log("warm-up: one untimed run of each")
        for k in keys:
            CONTENDERS[k][3](run)
        t_begin = time.monotonic()
        for r in range(rounds):
            first = (r // 2) % len(keys)
            order = keys[first:] + keys[:first]
            if r % 2:
                order.reverse()
            log(f"round {r + 1}/{rounds}: {', '.join(order)}")
            for k in order:
                x = CONTENDERS[k][3](run)
                res[k].append(x)
                log(f"  {k}: {x['mibs']:.0f} MiB/s, {x['s']:.2f} s, CPU {x['cpu']:.2f} s, nginx {x['nginx']:.2f} s")
        elapsed = time.monotonic() - t_begin
    except KeyboardInterrupt:
        log("interrupted: cleaning up")
        raise
    finally:
        if nginx is not None:
            nginx.terminate()
            try:
                nginx.wait(timeout=10)
            except subprocess.TimeoutExpired:
                nginx.kill()
                nginx.wait()
        if mounted:
            subprocess.run(["umount", tmpfs])
        restore_page_reporting(reporting_before)
        if args.keep:
            log(f"work directory kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)

    rev = subprocess.run(["git", "-C", REPO, "describe", "--always", "--dirty"], capture_output=True,
                         text=True).stdout.strip()
    ver = lambda p: subprocess.run(["dpkg-query", "-W", "-f=${Version}", p], capture_output=True,
                                   text=True).stdout or "?"
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
    lines = [
        f"Run: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M UTC}, "
        f"`{' '.join(['bench/downloads.py'] + sys.argv[1:])}` ({rounds} rounds, {elapsed:.0f} s)  ",
        f"Machine: {cpu}, {os.cpu_count()} CPUs, {os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30:.0f} GiB, "
        f"Linux {platform.release()}, {platform.freedesktop_os_release().get('PRETTY_NAME', '?')}  ",
        f"Versions: downloader {rev}, nginx-light {ver('nginx-light')}, curl {ver('curl')}, "
        f"openssl {ver('openssl')}, coreutils {ver('coreutils')}  ",
        f"CPU busy in the second before the run: {busy_before:.0f} % (other work adds noise)",
        "",
        "1 GiB of random bytes from nginx on 127.0.0.1 (one worker, sendfile, file on tmpfs). "
        "Each cell: median (IQR p25–p75, range min–max) over the rounds; MiB/s = 1024 MiB / wall "
        "time of the whole command. CPU: user + system of the command's processes, s; nginx: its "
        "worker's CPU during the command, s. "
        + ("Each sample right after 1.25 GiB were written into the tmpfs and deleted (untimed; `warm_memory`)."
           if not args.no_warm else "No memory warming (`--no-warm`): samples may pay the VM's host faults.")
        + (" The VM's free page reporting was stopped for the run (`stop_page_reporting`)."
           if reporting_before is not None else ""),
        "",
        "| contender | command | MiB/s | wall s | CPU s | nginx CPU s |",
        "|---|---|---|---|---|---|",
    ]
    for k in keys:
        group, label, command, _ = CONTENDERS[k]
        v = res[k]
        label, command = label.replace("|", "\\|"), command.replace("|", "\\|")
        lines.append(f"| {label} | `{command}` | {summary([x['mibs'] for x in v])} | "
                     f"{fmt(statistics.median(x['s'] for x in v))} | "
                     f"{fmt(statistics.median(x['cpu'] for x in v))} | "
                     f"{fmt(statistics.median(x['nginx'] for x in v))} |")
    lines.append("")
    med = lambda k: statistics.median(x["mibs"] for x in res[k]) if res.get(k) else None
    if med("ours") is not None:
        lines.append(f"Target (issue 5): ours into tmpfs ≥ 1000 MiB/s: {med('ours'):.0f} MiB/s: "
                     f"{'met' if med('ours') >= 1000 else 'MISSED'}"
                     + (f"; curl | openssl sha256 {med('curl|openssl'):.0f} MiB/s" if med("curl|openssl") else ""))
    if med("ours-ext4") is not None and med("curl-ext4") is not None:
        lines.append(f"ext4: ours {med('ours-ext4'):.0f} MiB/s, curl + sha256sum + sync "
                     f"{med('curl-ext4'):.0f} MiB/s")
    report = "\n".join(lines)
    print(report)
    if args.out:
        with open(args.out, "w") as f:
            f.write(report + "\n")


if __name__ == "__main__":
    main()

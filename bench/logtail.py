#!/usr/bin/env python3
"""Following logs across rotation: logtail against `tail -F` (GNU coreutils) and
`busybox tail -F`, side by side in one run (no issue sets a target; see BENCHMARKS.md).

Each contender follows one log file, `app.log`, in a fresh directory, and for each
scenario the same writer runs against it:

  rotate   10 rename rotations (logrotate's `create`): app.log -> app.log.1, a new
           app.log; after each rename the writer goes on writing into the old file for a
           moment, as a daemon does until it reopens its log (SIGHUP), then switches.
           Lines: 20,000 numbered lines, a little at a time. Counted: lines lost and
           lines printed twice.
  copytrunc 10 copy-truncate rotations (logrotate's `copytruncate`): copy, truncate in
           place; the writer appends throughout. Lines lost are inherent (between copy
           and truncate) and counted for each contender the same way.
  flood    1,000,000 lines (~60 MB) written as fast as possible, no rotation: wall time
           until the contender has printed the last one, its CPU time and its wake-ups
           (context switches, voluntary and not).
  idle     after start-up, 5 s with nothing written: wake-ups (context switches).

logtail labels every line with the file's path (`/tmp/zedctr-logtail-bench.XXXXXXXX/app.log: `,
43 bytes before each 55-byte line); `--short-path` follows `/tmp/ltNNNN/app.log` instead,
a label as long as a device's `/var/log/xen.log: `. The reader is this script (Python,
8 KiB reads): a follower that is ahead of it and blocks in `write` is woken once per
read (GNU and busybox tail; logtail naps until half its pipe is free instead, see
services/logtail/src/console.rs). CPU is read from /proc/PID/task/*/schedstat (ns).

Every contender prints to a pipe read by this script. Run: bench/logtail.py [--rounds N]
"""

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def contenders(logtail, baseline=None):
    peers = {
        "logtail": lambda d: [logtail, f"{d}/*.log", "--state", f"{d}/.state.json",
                              "--grace", "1s", "--lines", "0"],
        "tail -F (GNU)": lambda d: ["tail", "-n", "0", "-F", f"{d}/app.log"],
        "busybox tail -F": lambda d: ["busybox", "tail", "-n", "0", "-F", f"{d}/app.log"],
    }
    if baseline:
        peers["logtail (baseline)"] = lambda d: [baseline, f"{d}/*.log", "--state",
                                                 f"{d}/.state.json", "--grace", "1s",
                                                 "--lines", "0"]
    return peers


class Follower:
    """A contender's process and the numbered lines it printed."""

    def __init__(self, argv):
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        self.seen = []
        self.last_seen_at = None
        self.lock = threading.Lock()
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self):
        for raw in self.proc.stdout:
            line = raw.decode(errors="replace")
            at = line.rfind("seq ")
            if at < 0:
                continue
            try:
                n = int(line[at + 4:].split()[0])
            except (ValueError, IndexError):
                continue
            with self.lock:
                self.seen.append(n)
                self.last_seen_at = time.monotonic()

    def count(self):
        with self.lock:
            return len(self.seen)

    def cpu_s(self):
        """CPU time of all its threads, from schedstat (ns; /proc/PID/stat counts in
        clock ticks, 10 ms here: too coarse for 0.1 s figures)."""
        total = 0
        for task in os.listdir(f"/proc/{self.proc.pid}/task"):
            with open(f"/proc/{self.proc.pid}/task/{task}/schedstat") as f:
                total += int(f.read().split()[0])
        return total / 1e9

    def switches(self):
        total = 0
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if "ctxt_switches" in line:
                    total += int(line.split()[1])
        return total

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def wait_ready(d, follower):
    """Writes a marker until the contender prints it (its watch is set up)."""
    path = os.path.join(d, "app.log")
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with open(path, "a") as f:
            f.write("seq -1 ready\n")
        time.sleep(0.1)
        with follower.lock:
            if -1 in follower.seen:
                follower.seen.clear()
                return
    raise RuntimeError("contender never printed the marker")


def settle(follower, expected, timeout=10):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and follower.count() < expected:
        time.sleep(0.05)
    time.sleep(1.5)  # what comes late (a rotated file's grace) comes now


def write_with_rotations(d, follower, what, rotate):
    """~20,000 numbered lines in 11 rounds, a little at a time; `rotate(path, log, n)`
    between rounds returns the (possibly new) log and the next number."""
    path = os.path.join(d, "app.log")
    n, total, rotations = 0, 20000, 10
    per = total // (rotations + 1)
    log = open(path, "a", buffering=1)
    for r in range(rotations + 1):
        for _ in range(per):
            log.write(f"seq {n} {what} round {r}\n")
            n += 1
            if n % 200 == 0:
                time.sleep(0.002)
        if r < rotations:
            log, n = rotate(path, log, n)
    log.close()
    settle(follower, n)
    return n


def rename_rotation(path, log, n):
    os.rename(path, path + ".1")
    # The daemon has not reopened yet: a few more lines into the renamed file.
    for _ in range(50):
        log.write(f"seq {n} after rename\n")
        n += 1
    time.sleep(0.05)
    log.close()
    return open(path, "a", buffering=1), n


def copy_truncate(path, log, n):
    shutil.copyfile(path, path + ".1")
    os.truncate(path, 0)
    return log, n


def scenario_rotate(d, follower):
    return write_with_rotations(d, follower, "rotate", rename_rotation)


def scenario_copytrunc(d, follower):
    return write_with_rotations(d, follower, "copytruncate", copy_truncate)


def scenario_flood(d, follower):
    path = os.path.join(d, "app.log")
    total = 1_000_000
    cpu0 = follower.cpu_s()
    switches0 = follower.switches()
    start = time.monotonic()
    with open(path, "a", buffering=1 << 20) as log:
        for n in range(total):
            log.write(f"seq {n} flood {'x' * 40}\n")
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and follower.count() < total:
        time.sleep(0.01)
    wall = (follower.last_seen_at or time.monotonic()) - start
    return total, wall, follower.cpu_s() - cpu0, follower.switches() - switches0


def lost_and_twice(follower, expected):
    with follower.lock:
        seen = list(follower.seen)
    distinct = set(seen)
    lost = sum(1 for n in range(expected) if n not in distinct)
    return lost, len(seen) - len(distinct)


SHORT_PATH = False  # --short-path


def run_one(name, argv_of, scenario):
    if SHORT_PATH:
        # A label as long as a device's (`/var/log/xen.log: `): `/tmp/ltNNNN/app.log: `.
        d = f"/tmp/lt{os.getpid() % 10000:04d}"
        os.mkdir(d)
    else:
        d = tempfile.mkdtemp(prefix="zedctr-logtail-bench.")
    try:
        open(os.path.join(d, "app.log"), "w").close()
        follower = Follower(argv_of(d))
        try:
            wait_ready(d, follower)
            if scenario == "idle":
                time.sleep(1)
                before = follower.switches()
                time.sleep(5)
                return {"wakeups": follower.switches() - before}
            if scenario == "flood":
                total, wall, cpu, switches = scenario_flood(d, follower)
                lost, twice = lost_and_twice(follower, total)
                return {"wall": wall, "cpu": cpu, "switches": switches, "lost": lost,
                        "twice": twice}
            expected = (scenario_rotate if scenario == "rotate" else scenario_copytrunc)(d, follower)
            lost, twice = lost_and_twice(follower, expected)
            return {"lost": lost, "twice": twice, "of": expected}
        finally:
            follower.stop()
    finally:
        shutil.rmtree(d, ignore_errors=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--logtail", default=os.path.join(ROOT, "target/release/logtail"))
    parser.add_argument("--no-build", action="store_true")
    parser.add_argument("--scenarios", default="rotate,copytrunc,flood,idle",
                        help="comma-separated subset of rotate,copytrunc,flood,idle")
    parser.add_argument("--contenders", default=None,
                        help="comma-separated subset of: logtail, gnu, busybox")
    parser.add_argument("--baseline", metavar="PATH",
                        help="another logtail build as one more contender (before/after)")
    parser.add_argument("--short-path", action="store_true",
                        help="follow /tmp/ltNNNN/app.log: logtail's label (the path) as long "
                             "as a device's /var/log/NAME.log, instead of a 41-character one")
    args = parser.parse_args()
    global SHORT_PATH
    SHORT_PATH = args.short_path
    scenarios = [x for x in args.scenarios.split(",") if x]
    if not args.no_build:
        subprocess.run(["cargo", "build", "--quiet", "--release", "--bin", "logtail"], cwd=ROOT, check=True)
    peers = contenders(args.logtail, args.baseline)
    if args.contenders:
        short = {"logtail": "logtail", "gnu": "tail -F (GNU)", "busybox": "busybox tail -F",
                 "baseline": "logtail (baseline)"}
        wanted = [short[c] for c in args.contenders.split(",") if c]
        peers = {name: peers[name] for name in wanted}
    results = {(name, s): [] for name in peers for s in ("rotate", "copytrunc", "flood", "idle")}
    load0 = os.getloadavg()
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    for r in range(args.rounds):
        order = list(peers.items())
        if r % 2:
            order.reverse()
        for scenario in scenarios:
            for name, argv_of in order:
                result = run_one(name, argv_of, scenario)
                results[(name, scenario)].append(result)
                print(f"round {r + 1}/{args.rounds} {scenario:9} {name:16} {result}", file=sys.stderr)
    def med(values):
        return statistics.median(values) if values else float("nan")
    print(f"Run: {started}, `bench/logtail.py {' '.join(sys.argv[1:])}`; "
          f"load average {load0[0]:.1f} at the start, {os.getloadavg()[0]:.1f} at the end; "
          f"{subprocess.run(['tail', '--version'], capture_output=True, text=True).stdout.splitlines()[0]}, "
          f"{subprocess.run(['busybox'], capture_output=True, text=True).stdout.splitlines()[0]}\n")
    print("Medians over the rounds (lost / printed twice: of the numbered lines written).\n")
    print("| contender | rename rotation ×10 (20,498 lines, 500 of them into the renamed file): lost / twice | copy-truncate ×10: lost / twice | flood 1M lines: wall s | flood: CPU s | idle 5 s: wake-ups |")
    print("|---|---|---|---|---|---|")
    for name in peers:
        rot = results[(name, "rotate")]
        cop = results[(name, "copytrunc")]
        flo = results[(name, "flood")]
        idl = results[(name, "idle")]
        print(f"| {name} | {med([x['lost'] for x in rot]):.0f} / {med([x['twice'] for x in rot]):.0f} "
              f"| {med([x['lost'] for x in cop]):.0f} / {med([x['twice'] for x in cop]):.0f} "
              f"| {med([x['wall'] for x in flo]):.2f} | {med([x['cpu'] for x in flo]):.2f} "
              f"| {med([x['wakeups'] for x in idl]):.0f} |")
    print("\nEvery round (lost across rotations; flood CPU s; flood wake-ups):\n")
    for name in peers:
        print(f"- {name}: rename " + ", ".join(f"{x['lost']}" for x in results[(name, "rotate")])
              + "; copy-truncate " + ", ".join(f"{x['lost']}" for x in results[(name, "copytrunc")])
              + "; flood CPU " + ", ".join(f"{x['cpu']:.3f}" for x in results[(name, "flood")])
              + "; flood wake-ups " + ", ".join(f"{x['switches']}" for x in results[(name, "flood")]))


if __name__ == "__main__":
    main()

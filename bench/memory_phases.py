#!/usr/bin/env python3
"""zedinit's private memory in steady state, phase by phase, beside the peers (issue 16).

The work of `bench/supervisors.py --only uss` (five bench/chatter.c children that log,
as 65534:65534 without capabilities; zedinit with [run] and file [log], runit and s6
with and without their loggers), read in four phases of one run:

  start    5 s after the last child is up (what `--only uss` reads)
  control  ten status requests and one restart, then 15 s of quiet: zedinit
           `supctl status` / `supctl restart svc1`; runit `sv status` of the five /
           `sv restart`; s6 `s6-svstat` of the five / `s6-svc -r`
  flood    each child writes FLOOD lines at once (SIGUSR1; 100,000 by default); read
           15 s after the last child has finished writing
  soak     MINUTES of steady traffic: the children's line a second, a status request
           every 10 s, a restart (svc1..svc5 in turn) every 100 s, for zedinit also
           `supctl logs` every 30 s; read at its end (traffic still running: the last
           request at most 10 s before) and again 15 s later ("soak+15s")

PID 1's private memory is also sampled each minute of the soak. Variants of one init
never run at the same time (a binary mapped twice counts as shared): two groups, run
one after the other, zedinit in both (two samples each phase):
  group 1: zedinit, runit, s6+s6-log      group 2: zedinit, runit+svlogd, s6

For zedinit, PID 1's private pages are split: its binary's text and rodata (clean,
given back after settling), its binary's data (.data/.bss/relro), heap (the main malloc
arena and any thread arenas), thread stacks, the rest (libraries' relocated data).

    bench/memory_phases.py --no-build                 # ~2 × (MINUTES + 2) minutes
    bench/memory_phases.py --no-build --soak-minutes 60 --out bench/results/x.md

Needs root and the peers (bench/install-peers).
"""

import argparse
import datetime
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

sys.dont_write_bytecode = True  # no __pycache__ in bench/
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import supervisors as S  # noqa: E402

PHASES = ["start", "control", "flood", "soak", "soak+15s"]
GROUPS = [["zedinit", "runit", "s6+s6-log"], ["zedinit", "runit+svlogd", "s6"]]
QUIET = 15  # seconds of quiet before the control, flood and soak+15s readings
SLEEPING = {"35", "230"}  # nanosleep, clock_nanosleep (x86_64): a chatter between lines


def log(msg):
    print(f"memory_phases: {msg}", file=sys.stderr, flush=True)


def private(pid):
    r = S.smaps_rollup(pid)
    return r.get("Private_Clean", 0) + r.get("Private_Dirty", 0)


def split_zedinit(pid, exe):
    """zedinit PID 1's private kB by kind."""
    out = {"text+rodata": 0, "data": 0, "heap": 0, "stacks": 0, "other": 0}
    name = os.path.basename(exe)
    for label, perms, _size, _rss, pc, pd in S.smaps_by_mapping(pid):
        kb = pc + pd
        if label == name:
            # Clean: text and rodata as read from the file; dirty: relro, data, bss.
            out["text+rodata"] += pc
            out["data"] += pd
        elif label == "[heap]" or "arena" in label:
            out["heap"] += kb
        elif label.startswith("stack") or label == "[stack]":
            out["stacks"] += kb
        elif label.startswith("anon"):
            out["heap"] += kb  # glibc's mmap'd chunks, Rust's big buffers
        else:
            out["other"] += kb
    return out


BASELINE = None  # --baseline: another zedinit binary, run beside as "zedinit-before"


def binary(variant):
    return BASELINE if variant == "zedinit-before" else S.ZEDINIT


class Run:
    def __init__(self, bench, variant, d):
        self.variant, self.d = variant, d
        self.base = S.USS_VARIANTS[variant][0]
        current = S.ZEDINIT
        S.ZEDINIT = binary(variant)  # what prepare_uss launches
        try:
            argv, self.logs = bench.prepare_uss("zedinit" if variant == "zedinit-before" else variant, d)
        finally:
            S.ZEDINIT = current
        t0 = os.path.join(d, "t0")
        cmd = ["unshare", "--pid", "--fork", "--mount-proc", "--kill-child", bench.helper, "t0", t0] + argv
        self.launch = {"init": variant, "dir": d, "cmd": cmd, "t0": t0}
        self.pid1_binary = argv[0]
        self.sock = os.path.join(d, "ctl.sock")
        self.sv = os.path.join(d, "sv")
        self.proc = self.pid1 = None
        self.failed = []

    def kids(self, chatter_id):
        return S.split_tree(self.pid1, chatter_id)

    def ctl(self, *what):
        """One control request; a failure is noted, not fatal."""
        if self.base == "zedinit":
            argv = [S.SUPCTL, "--control-socket", self.sock] + list(what)
        elif what[0] == "status":
            argv = (["sv", "status"] if self.base == "runit" else ["s6-svstat"]) + [
                os.path.join(self.sv, f"svc{i}") for i in range(1, 6)]
            if self.base == "s6":  # s6-svstat takes one directory
                for a in argv[1:]:
                    self._run(["s6-svstat", a])
                return
        elif what[0] == "restart":
            svc = os.path.join(self.sv, what[1])
            argv = ["sv", "restart", svc] if self.base == "runit" else ["s6-svc", "-r", svc]
        else:
            return  # `logs`: zedinit only
        self._run(argv)

    def _run(self, argv):
        r = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=30)
        if r.returncode != 0:
            self.failed.append(f"{' '.join(argv[-2:])}: {r.stderr.decode(errors='replace').strip()}")


def said(out, runs, phase):
    return ", ".join(f"{r.variant} {out[r.variant][phase]['pid1']} kB" for r in runs)


def reading(run, chatter_id):
    tree, kids = run.kids(chatter_id)
    m = {"pid1": private(run.pid1), "tree": sum(private(p) for p in tree), "n": len(tree),
         "kids": len(kids)}
    if run.base == "zedinit":
        m["split"] = split_zedinit(run.pid1, binary(run.variant))
    return m


def wait_up(runs, chatter_id):
    for run in runs:
        want = S.USS_VARIANTS[run.variant][1]

        def up(run=run, want=want):
            tree, kids = run.kids(chatter_id)
            return len(kids) == 5 and len(tree) == want and all(
                S.proc_comm(p) not in ("sh", "chpst") for p in tree)
        S.wait_until(up, 30, step=0.05, what=f"{run.variant}: tree and 5 children")


def flood(runs, chatter_id):
    kids = [k for run in runs for k in run.kids(chatter_id)[1]]
    for k in kids:
        os.kill(k, signal.SIGUSR1)
    time.sleep(0.5)

    def done():
        for k in kids:
            try:
                with open(f"/proc/{k}/syscall") as f:
                    if f.read().split()[0] not in SLEEPING:
                        return False
            except OSError:
                pass  # gone
        return True
    t0 = time.monotonic()
    S.wait_until(lambda: done() and (time.sleep(0.3) or done()), 600, step=0.2, what="the flood")
    return time.monotonic() - t0


def read_from_storage(path):
    """Drops `path`'s pages from the page cache, so that its start reads it from storage as
    at a device's boot. How a binary got into the page cache changes how much of it a
    process keeps mapped: pages a linker or `cp` just wrote sit in large folios, which
    fault-around maps whole and MADV_PAGEOUT may not drop, while pages read on demand
    come in small ones (measured here: the same zedinit 284 or 576 kB of text+rodata
    after start-up, depending on which had run before)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fdatasync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def group(bench, work, variants, args, chatter_id):
    runs = []
    for v in variants:
        bench.seq += 1
        d = os.path.join(work, f"{bench.seq:02d}-{v.replace('+', '_')}")
        os.makedirs(d)
        runs.append(Run(bench, v, d))
    out = {r.variant: {} for r in runs}
    series = {r.variant: [] for r in runs}
    next_second = int(time.time()) + 1  # runsvdir's mtime rule (supervisors.py)
    time.sleep(max(0.0, next_second - time.time() + 0.01))
    for r in runs:
        read_from_storage(r.pid1_binary)
    try:
        for r in runs:
            r.proc, r.pid1 = bench.start(r.launch)
        wait_up(runs, chatter_id)
        time.sleep(5)
        for r in runs:
            out[r.variant]["start"] = reading(r, chatter_id)
        log(f"  start: {said(out, runs, 'start')}")

        for r in runs:
            for _ in range(10):
                r.ctl("status")
            r.ctl("restart", "svc1")
        wait_up(runs, chatter_id)
        time.sleep(QUIET)
        for r in runs:
            out[r.variant]["control"] = reading(r, chatter_id)
        log(f"  control: {said(out, runs, 'control')}")

        took = flood(runs, chatter_id)
        log(f"  flood of {args.flood} lines × 5 per variant written in {took:.1f} s")
        time.sleep(QUIET)
        for r in runs:
            out[r.variant]["flood"] = reading(r, chatter_id)
        log(f"  flood: {said(out, runs, 'flood')}")

        t0 = time.monotonic()
        end = t0 + args.soak_minutes * 60
        tick = 0
        while True:
            now = time.monotonic()
            if now >= end:
                break
            if tick % 60 == 0:
                for r in runs:
                    series[r.variant].append((tick // 60, private(r.pid1)))
            if tick % 10 == 0:
                for r in runs:
                    r.ctl("status")
            if tick % 30 == 0:
                for r in runs:
                    r.ctl("logs", "svc2", "-n", "20")
            if tick % 100 == 50:
                for r in runs:
                    r.ctl("restart", f"svc{(tick // 100) % 5 + 1}")
            tick += 1
            time.sleep(max(0.0, t0 + tick - time.monotonic()))
        wait_up(runs, chatter_id)
        for r in runs:
            out[r.variant]["soak"] = reading(r, chatter_id)
        time.sleep(QUIET)
        for r in runs:
            out[r.variant]["soak+15s"] = reading(r, chatter_id)
            out[r.variant]["failed"] = r.failed
            out[r.variant]["logged"] = S.logged_bytes(r.logs)
        log(f"  soak+15s: {said(out, runs, 'soak+15s')}")
    finally:
        for r in runs:
            if r.proc:
                bench.stop(r.proc, r.pid1)
    return out, series


def report(results, series, args, load, t_begin, t_end):
    variants = []
    for g in GROUPS:
        variants += [v for v in g if v not in variants]
    lines = [f"bench/memory_phases.py --soak-minutes {args.soak_minutes} --flood {args.flood}: "
             f"{t_begin:%Y-%m-%d %H:%M}–{t_end:%H:%M} UTC, load average before/after "
             f"{load[0]} / {load[1]}, {os.cpu_count()} CPUs.", "",
             "PID 1's private memory (USS, kB; zedinit: each of its two runs):", "",
             "| phase | " + " | ".join(variants) + " |", "|---|" + "---|" * len(variants)]
    for ph in PHASES:
        cells = []
        for v in variants:
            vals = [res[ph]["pid1"] for res in results.get(v, []) if ph in res]
            cells.append(" / ".join(str(x) for x in vals) if vals else "n/a")
        lines.append(f"| {ph} | " + " | ".join(cells) + " |")
    lines += ["", "The supervision tree's private memory (USS of every process but the five "
              "children, kB):", "", "| phase | " + " | ".join(variants) + " |",
              "|---|" + "---|" * len(variants)]
    for ph in PHASES:
        cells = []
        for v in variants:
            vals = [res[ph]["tree"] for res in results.get(v, []) if ph in res]
            cells.append(" / ".join(str(x) for x in vals) if vals else "n/a")
        lines.append(f"| {ph} | " + " | ".join(cells) + " |")
    kinds = ["text+rodata", "data", "heap", "stacks", "other"]
    for z in [v for v in variants if v.startswith("zedinit")]:
        lines += ["", f"{z} PID 1 by kind (kB, run 1 / run 2; text+rodata: its binary's clean "
                  "pages, data: its dirty ones, heap: malloc and anonymous, other: the "
                  "libraries' relocated data):", "",
                  "| phase | " + " | ".join(kinds) + " | total |", "|---|" + "---|" * (len(kinds) + 1)]
        for ph in PHASES:
            runs = [res[ph] for res in results.get(z, []) if ph in res]
            cells = [" / ".join(str(r["split"][k]) for r in runs) for k in kinds]
            cells.append(" / ".join(str(r["pid1"]) for r in runs))
            lines.append(f"| {ph} | " + " | ".join(cells) + " |")
    lines += ["", "PID 1's private memory each minute of the soak (kB):", ""]
    for v in variants:
        for i, s in enumerate(series.get(v, [])):
            lines.append(f"- {v}{f' (run {i + 1})' if len(series[v]) > 1 else ''}: "
                         + " ".join(str(kb) for _, kb in s))
    lines.append("")
    for v in variants:
        for res in results.get(v, []):
            if res.get("failed"):
                lines.append(f"- {v}: failed control requests: {'; '.join(res['failed'][:5])}")
    check = subprocess.run([os.path.join(S.REPO, "bench", "zedinit-order"), "--check",
                            "--binary", S.ZEDINIT], capture_output=True, text=True)
    lines.append(f"- link order: {check.stdout.strip() or check.stderr.strip()}")
    if BASELINE:
        check = subprocess.run([os.path.join(S.REPO, "bench", "zedinit-order"), "--check",
                                "--binary", BASELINE], capture_output=True, text=True)
        lines.append(f"- zedinit-before: {BASELINE}; {check.stdout.strip() or check.stderr.strip()}")
    return lines


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--soak-minutes", type=float, default=10)
    ap.add_argument("--flood", type=int, default=100_000, help="lines per child in the flood")
    ap.add_argument("--groups", default="1,2", help="which groups to run (1, 2 or 1,2)")
    ap.add_argument("--no-build", action="store_true", help="use target/release as it is")
    ap.add_argument("--zedinit", help="this zedinit binary (implies --no-build)")
    ap.add_argument("--baseline", help="another zedinit binary (e.g. main's), run beside zedinit "
                                       "in every group as zedinit-before")
    ap.add_argument("--out", help="also write the markdown report to this file")
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("bench/memory_phases.py: needs root (pid namespaces, confined children)")
    for tool in ["unshare", "gcc", "/usr/bin/runsvdir", "/usr/bin/s6-svscan", "/usr/bin/sv",
                 "/usr/bin/s6-svc", "/usr/bin/chpst", "/usr/bin/svlogd", "/usr/bin/s6-log"]:
        if not shutil.which(tool):
            sys.exit(f"bench/memory_phases.py: {tool} missing: run bench/install-peers")
    if args.zedinit:
        S.ZEDINIT = os.path.abspath(args.zedinit)
        args.no_build = True
    if not args.no_build:
        log("building every binary (cargo build --release --workspace --bins)...")
        subprocess.run(["cargo", "build", "--quiet", "--release", "--workspace", "--bins"],
                       cwd=S.REPO, check=True)
    os.sync()  # freshly linked binaries are dirty page cache: counted as private (supervisors.py)
    S.USS_CHILD_ARGS = ["300", "1000", str(args.flood)]
    global BASELINE
    if args.baseline:
        BASELINE = os.path.abspath(args.baseline)
        S.USS_VARIANTS["zedinit-before"] = ("zedinit", 1)
        for g in GROUPS:
            g.insert(1, "zedinit-before")
    work = tempfile.mkdtemp(prefix="zedctr-memphases.")
    os.chmod(work, 0o755)  # the children (uid 65534) exec from under it
    helper = os.path.join(work, "bench-helper")
    subprocess.run(["gcc", "-O2", "-static", "-Wall", "-o", helper,
                    os.path.join(S.REPO, "bench", "helper.c")], check=True)
    bench = S.Bench(work, helper)
    os.makedirs(os.path.join(work, "bin"))
    bench.chatter = os.path.join(work, "bin", "chatter")
    subprocess.run(["gcc", "-O2", "-static", "-Wall", "-o", bench.chatter,
                    os.path.join(S.REPO, "bench", "chatter.c")], check=True)
    st = os.stat(bench.chatter)
    chatter_id = (st.st_dev, st.st_ino)

    def bye(*_):
        raise KeyboardInterrupt
    signal.signal(signal.SIGTERM, bye)
    load = [os.getloadavg()]
    t_begin = datetime.datetime.now(datetime.timezone.utc)
    results, series = {}, {}
    try:
        for g in (int(x) for x in args.groups.split(",")):
            log(f"group {g}: {', '.join(GROUPS[g - 1])}")
            out, ser = group(bench, work, GROUPS[g - 1], args, chatter_id)
            for v, res in out.items():
                results.setdefault(v, []).append(res)
                series.setdefault(v, []).append(ser[v])
    finally:
        for proc, pid1 in list(S.LIVE):
            S.Bench.stop(proc, pid1)
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
        else:
            log(f"work directory kept: {work}")
    load.append(os.getloadavg())
    t_end = datetime.datetime.now(datetime.timezone.utc)
    fl = [" ".join(f"{x:.2f}" for x in l) for l in load]
    text = "\n".join(report(results, series, args, fl, t_begin, t_end)) + "\n"
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text)


if __name__ == "__main__":
    main()

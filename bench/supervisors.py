#!/usr/bin/env python3
"""zedinit against tini, dumb-init, runit and s6, side by side (issue 3).

Each init runs as PID 1 of its own pid+mount namespace
(`unshare --pid --fork --mount-proc`), on the same work, started through the same
static program (bench/helper.c, compiled here). Within each round the inits are
interleaved and their order rotates from round to round; every figure is reported as
the median with its spread. Run as root:

    bench/supervisors.py            # full run, ~4-5 minutes
    bench/supervisors.py --quick    # ~1.5 minutes, fewer rounds, 5 s idle window
    bench/supervisors.py --only exec5 --busy   # one metric, on a loaded machine

Metrics (all times CLOCK_MONOTONIC, read by the processes themselves):
  idle     5 children running, then a window of 20 s (5 s with --quick): context
           switches (voluntary + involuntary) and CPU time (schedstat, ns) of PID 1,
           and of the whole supervision tree (every process but the 5 workload children:
           runsv, s6-supervise, the `spawn` helper tini/dumb-init need). The five inits
           idle at the same time (they are idle, so they do not compete).
  restart  one service that stamps at start and again just before _exit(0); latency =
           its next start stamp - its previous exit stamp. zedinit: policy always,
           stable-after 0s (every restart immediate). runit and s6 pause 1 s between
           restarts by design, so they get few samples. tini and dumb-init do not restart
           (n/a).
  bare C   a reference, not an init: the floor any supervisor pays. PID 1 is the helper
           itself: for restarts a loop of fork, exec, waitpid; otherwise fork+exec of the
           children, then wait() forever (which also reaps the orphans).
  orphans  one service that, on a signal from the probe (sent 1 s after the init
           started, once every init is past its start-up), forks 10,000 children that
           each fork a grandchild and exit at once: 10,000 orphans, re-parented to PID 1,
           all blocked reading one pipe. Once every one is PID 1's and waiting, the
           service closes the pipe (the release) and all 10,000 exit at once. The service
           holds a pidfd for each orphan and, from the release, polls them in order every
           0.1 ms (signal 0 fails with ESRCH only once the pid is reaped; a zombie still
           takes it) until all are reaped: time from the release, split into release →
           all exited (a pidfd polls readable on exit) and all exited → all reaped (the
           part that is PID 1's). The probe then checks that no zombie is left among
           PID 1's children. (Making the 20,000 processes takes ~1 s on 2 cores and
           would drown the reaping in the fork rate: it is not timed.)
  exec5    from just before exec of the init (helper `t0`, PID 1 itself, which then
           execs the init) to the last of 5 children's start stamps.
  uss      (issue 4; not in the default set: `--only uss`) private memory, USS =
           Private_Clean + Private_Dirty of /proc/PID/smaps_rollup, of PID 1 alone and
           summed over the supervision tree (every descendant but the 5 children), with
           5 children that log (bench/chatter.c: 300 lines at start, then one line a
           second on stdout and every other second one on stderr) and run as 65534:65534
           without capabilities. zedinit: each definition has a [run] table (uid, gid,
           capabilities = [], noNewPrivileges, the children's binary directory bound
           read-only at the same path) and default [log] file capture into --log-dir in
           the work directory. runit and s6 (runsvdir + runsv, s6-svscan +
           s6-supervise) as the references measured before (output to the init's
           stdout, not captured), and runit+svlogd, s6+s6-log with each service's log
           captured by the peer's logger, rotated as zedinit's (1 MiB, 3 kept); peers
           drop privileges with `chpst -u :65534:65534` in a `run` script, which execs
           the child (nothing of it stays). zedinit-plain: no [run], `log = "console"`
           (what the privileges and log capture cost). Variants run in groups at the same
           time, never two of one init (a binary mapped by two instances would count as
           shared, not private: with one zedinit on a device, its pages are private);
           5 s after the last child is up (3 s with --quick) every tree is read. The report
           adds zedinit PID 1's private memory mapping by mapping (/proc/PID/smaps).
"""

import argparse
import datetime
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RELEASE = os.path.join(REPO, "target", "release")
ZEDINIT = os.path.join(RELEASE, "zedinit")
SUPCTL = os.path.join(RELEASE, "supctl")
INITS = ["zedinit", "tini", "dumb-init", "runit", "s6"]
CLEAN_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
BARE = "bare C"
RESTARTING = {"zedinit", "runit", "s6", BARE}
ORPHANS = 10_000
# uss: variant -> (base init, processes in the supervision tree once up)
USS_VARIANTS = {"zedinit": ("zedinit", 1), "zedinit-plain": ("zedinit", 1),
                "runit": ("runit", 6), "runit+svlogd": ("runit", 11),
                "s6": ("s6", 6), "s6+s6-log": ("s6", 16)}
USS_CHILD_ARGS = ["300", "1000"]  # chatter: lines at start, then ms between lines
NOBODY = 65534

LIVE = []  # (unshare Popen, pid1) of every namespace still up, for cleanup


def work_parent():
    """Where a bench's work directory goes: a tmpfs (/dev/shm) when there is one that allows
    exec, as the control sockets, scan and supervise directories live under a device's
    /run. On ext4 a PID 1 that creates files at start (zedinit's control socket and
    leftover record, runit's and s6's supervise state) can wait behind the journal's
    commit while busy loops hold both CPUs: 130-250 ms for zedinit in one or two rounds
    of every loaded series of bench/probe-spawn.py, none on a tmpfs (BENCHMARKS.md,
    issue 12, "A static zedinit"). None: the default temporary directory."""
    try:
        for line in open("/proc/mounts"):
            f = line.split()
            if f[1] == "/dev/shm" and f[2] == "tmpfs" and "noexec" not in f[3].split(","):
                return "/dev/shm"
    except OSError:
        pass
    print("bench: no exec-able tmpfs at /dev/shm: the work directory is on the default "
          "temporary directory's filesystem", file=sys.stderr)
    return None


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def wait_until(cond, timeout, step=0.0005, what="condition"):
    deadline = time.monotonic() + timeout
    while True:
        value = cond()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(step)


def children(pid):
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(p) for p in f.read().split()]
    except OSError:
        return []


def descendants(pid):
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children(p))
    return out


class Bench:
    def __init__(self, work, helper):
        self.work = work
        self.helper = helper
        self.seq = 0

    # ---- one init in one namespace -------------------------------------------------

    def prepare(self, init, services, d):
        """Lays out `services` ({name: argv for the helper}) for `init` in directory d;
        returns the init's argv. Every init gets the same programs and arguments."""
        h = self.helper
        if init == "zedinit":
            sd = os.path.join(d, "services")
            os.makedirs(sd)
            for name, argv in services.items():
                cmd = ", ".join(f'"{a}"' for a in [h] + argv)
                with open(os.path.join(sd, f"{name}.toml"), "w") as f:
                    f.write(
                        f"command = [{cmd}]\n"
                        "[restart]\n"
                        'policy = "always"\n'
                        'stable-after = "0s"\n'
                        "intensity = 1000000\n"
                    )
            return [ZEDINIT, "--services-dir", sd, "--control-socket", os.path.join(d, "ctl.sock"),
                    "--log-dir", os.path.join(d, "logs")]
        if init in ("runit", "s6"):
            sv = os.path.join(d, "sv")
            for name, argv in services.items():
                sdir = os.path.join(sv, name)
                os.makedirs(sdir)
                os.symlink(h, os.path.join(sdir, "run"))
                with open(os.path.join(sdir, "args"), "w") as f:
                    f.write("\n".join(argv) + "\n")
            return ["/usr/bin/runsvdir", sv] if init == "runit" else ["/usr/bin/s6-svscan", sv]
        argvs = list(services.values())
        if init == BARE and len(argvs) == 1 and argvs[0][0] == "stamp" and len(argvs[0]) == 2:
            return [h, "bareloop", "1000000", h] + argvs[0]  # the restart work
        # tini, dumb-init: one child; five identical children through the spawn helper.
        if init == BARE:  # the floor: fork+exec the children, then block in wait()
            return [h, "spawn", str(len(argvs)), h] + argvs[0]
        if len(argvs) == 1:
            child = [h] + argvs[0]
        else:
            assert all(a == argvs[0] for a in argvs)
            child = [h, "spawn", str(len(argvs)), h] + argvs[0]
        if init == "tini":
            return ["/usr/bin/tini", "--"] + child
        if init == "dumb-init":
            return ["/usr/bin/dumb-init"] + child
        raise ValueError(init)

    def prepare_all(self, inits, services_for):
        """Lays out the work of a round for each init, then waits until the wall clock is
        past the second of the last change: runsvdir holds off a scan for 1 s when its
        directory's mtime is the current second (a real /etc/service is not written in
        the second before boot). Returns {init: launch}."""
        launches = {}
        for init in inits:
            self.seq += 1
            d = os.path.join(self.work, f"{self.seq:04d}-{init.replace(' ', '_').replace('+', '')}")
            os.makedirs(d)
            services, extra = services_for(d)
            argv = self.prepare(init, services, d)
            t0 = os.path.join(d, "t0")
            cmd = ["unshare", "--pid", "--fork", "--mount-proc", "--kill-child",
                   self.helper, "t0", t0] + argv
            with open(os.path.join(d, "command"), "w") as f:
                f.write(" ".join(cmd) + "\n")
            launches[init] = {"init": init, "dir": d, "cmd": cmd, "t0": t0, **extra}
        next_second = int(time.time()) + 1
        time.sleep(max(0.0, next_second - time.time() + 0.01))
        return launches

    def start(self, launch):
        """Starts a prepared init as PID 1 of a new namespace; returns (unshare, pid1)."""
        logf = open(os.path.join(launch["dir"], "init.log"), "wb")
        proc = subprocess.Popen(launch["cmd"], stdin=subprocess.DEVNULL, stdout=logf, stderr=logf,
                                env={"PATH": CLEAN_PATH}, start_new_session=True)
        logf.close()
        entry = [proc, None]
        LIVE.append(entry)
        pid1 = wait_until(lambda: (children(proc.pid) or [None])[0], 5,
                          what=f"{launch['init']}'s PID 1")
        entry[1] = pid1
        return proc, pid1

    @staticmethod
    def stop(proc, pid1):
        try:
            os.kill(pid1, signal.SIGKILL)
        except ProcessLookupError:
            pass
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        for entry in list(LIVE):
            if entry[0] is proc:
                LIVE.remove(entry)

    # ---- metrics -------------------------------------------------------------------

    @staticmethod
    def five(d):
        stamps = os.path.join(d, "stamps")
        return {f"svc{i}": ["stamp", stamps, "sleep"] for i in range(1, 6)}, {"stamps": stamps}

    def exec5(self, launch):
        stamps = launch["stamps"]
        proc, pid1 = self.start(launch)
        try:
            lines = wait_until(lambda: (lambda l: l if len(l) >= 5 else None)(read_lines(stamps)),
                               10, what=f"{launch['init']}: 5 children")
            t0 = int(open(launch["t0"]).read())
            starts = sorted(int(l.split()[2]) for l in lines)
            return (starts[4] - t0) / 1e6
        finally:
            self.stop(proc, pid1)

    @staticmethod
    def flap(d):
        stamps = os.path.join(d, "stamps")
        return {"flap": ["stamp", stamps]}, {"stamps": stamps}

    def restart(self, launch, n):
        stamps, init = launch["stamps"], launch["init"]
        proc, pid1 = self.start(launch)
        try:
            # n restarts = n + 1 starts, each after an exit.
            wait_until(lambda: sum(1 for l in read_lines(stamps) if " S " in l) >= n + 1,
                       10 + 2 * n, step=0.01, what=f"{init}: {n} restarts")
        finally:
            self.stop(proc, pid1)
        events = sorted((int(t), kind, int(pid)) for pid, kind, t in
                        (l.split() for l in read_lines(stamps)))
        out, last_exit = [], None
        for t, kind, pid in events:
            if kind == "E":
                last_exit = t
            elif last_exit is not None:
                out.append((t - last_exit) / 1e6)
                last_exit = None
        return out[:n]

    @staticmethod
    def storm(d, pause_ms=None):
        go, done = os.path.join(d, "go"), os.path.join(d, "done")
        os.mkfifo(go)
        os.mkfifo(done)
        argv = ["storm", str(ORPHANS), go, done] + ([str(pause_ms)] if pause_ms else [])
        return {"storm": argv}, {"go": go, "done": done}

    def orphans(self, launch):
        init, go, done, d = launch["init"], launch["go"], launch["done"], launch["dir"]
        proc, pid1 = self.start(launch)
        try:
            # Every init past its start-up (runsvdir, for one, wakes 1 s after it starts,
            # then every 5 s) before the storm, so no init is caught mid-start.
            time.sleep(1.0)
            out = subprocess.run([self.helper, "watch", str(pid1), go, done],
                                 capture_output=True, text=True, timeout=90, check=True).stdout
            start, release, clear, polls, made, left, exited, zombies = (int(x) for x in out.split())
            if zombies != 0 or left != 0 or clear == 0 or made != ORPHANS:
                raise RuntimeError(f"{init}: orphans not all reaped (made={made}, left={left}, "
                                   f"zombies={zombies}, clear={clear})")
            reaped = None
            if init == "zedinit":
                reaped = supctl_reaped(os.path.join(d, "ctl.sock"))
            return {"end": (clear - release) / 1e6, "storm": (release - start) / 1e6,
                    "exited": (exited - release) / 1e6, "lag": (clear - exited) / 1e6,
                    "reaped": reaped}
        finally:
            self.stop(proc, pid1)

    # ---- uss (issue 4) -------------------------------------------------------------

    def prepare_uss(self, variant, d):
        """Five logging children for `variant` in d; returns (init argv, log dir)."""
        chatter = self.chatter
        logs = os.path.join(d, "logs")
        os.makedirs(logs)
        if variant.startswith("zedinit"):
            sd = os.path.join(d, "services")
            os.makedirs(sd)
            cmd = ", ".join(f'"{a}"' for a in [chatter] + USS_CHILD_ARGS)
            for i in range(1, 6):
                with open(os.path.join(sd, f"svc{i}.toml"), "w") as f:
                    if variant == "zedinit":
                        f.write(uss_service_toml(chatter))
                    else:
                        f.write(f'command = [{cmd}]\nlog = "console"\n')
            return [ZEDINIT, "--services-dir", sd, "--control-socket", os.path.join(d, "ctl.sock"),
                    "--log-dir", logs], logs
        base, _ = USS_VARIANTS[variant]
        sv = os.path.join(d, "sv")
        for i in range(1, 6):
            name = f"svc{i}"
            sdir = os.path.join(sv, name)
            os.makedirs(sdir)
            write_script(os.path.join(sdir, "run"),
                         "exec 2>&1\n"
                         f"exec chpst -u :{NOBODY}:{NOBODY} {chatter} {' '.join(USS_CHILD_ARGS)}\n")
            if "+" in variant:
                ldir = os.path.join(logs, name)
                os.makedirs(ldir)
                os.makedirs(os.path.join(sdir, "log"))
                if base == "runit":
                    with open(os.path.join(ldir, "config"), "w") as f:
                        f.write("s1048576\nn3\n")
                    logger = f"exec svlogd -tt {ldir}\n"
                else:
                    logger = f"exec s6-log -b n3 s1048576 T {ldir}\n"
                write_script(os.path.join(sdir, "log", "run"), logger)
        return (["/usr/bin/runsvdir", sv] if base == "runit" else ["/usr/bin/s6-svscan", sv]), logs

    def uss(self, order, settle):
        """All variants at once; returns {variant: {pid1, tree, n, rss, pss, checks...}}."""
        running = {}
        chatter_id = os.stat(self.chatter)
        chatter_id = (chatter_id.st_dev, chatter_id.st_ino)
        try:
            launches = {}
            for variant in order:
                self.seq += 1
                d = os.path.join(self.work, f"{self.seq:04d}-uss-{variant.replace('+', '_')}")
                os.makedirs(d)
                argv, logs = self.prepare_uss(variant, d)
                t0 = os.path.join(d, "t0")
                cmd = ["unshare", "--pid", "--fork", "--mount-proc", "--kill-child",
                       self.helper, "t0", t0] + argv
                with open(os.path.join(d, "command"), "w") as f:
                    f.write(" ".join(cmd) + "\n")
                launches[variant] = {"init": variant, "dir": d, "cmd": cmd, "t0": t0, "logs": logs}
            next_second = int(time.time()) + 1  # runsvdir's mtime rule, as prepare_all
            time.sleep(max(0.0, next_second - time.time() + 0.01))
            for variant in order:
                proc, pid1 = self.start(launches[variant])
                running[variant] = (proc, pid1)
            for variant, (proc, pid1) in running.items():
                want = USS_VARIANTS[variant][1]

                def up(pid1=pid1, want=want):
                    tree, kids = split_tree(pid1, chatter_id)
                    return len(kids) == 5 and len(tree) == want and all(
                        proc_comm(p) not in ("sh", "chpst") for p in tree)
                wait_until(up, 15, step=0.01, what=f"uss {variant}: tree and 5 children")
            time.sleep(settle)
            out = {}
            for variant in order:
                proc, pid1 = running[variant]
                tree, kids = split_tree(pid1, chatter_id)
                rollups = {p: smaps_rollup(p) for p in tree}
                priv = lambda r: r.get("Private_Clean", 0) + r.get("Private_Dirty", 0)
                out[variant] = {
                    "pid1": priv(rollups[pid1]),
                    "tree": sum(priv(r) for r in rollups.values()),
                    "rss": sum(r.get("Rss", 0) for r in rollups.values()),
                    "pss": sum(r.get("Pss", 0) for r in rollups.values()),
                    "n": len(tree),
                    "threads": len(os.listdir(f"/proc/{pid1}/task")),
                    "procs": sorted(f"{proc_comm(p)}" for p in tree),
                    "kids": [child_creds(k) for k in kids],
                    "logged": logged_bytes(launches[variant]["logs"]),
                    "maps": smaps_by_mapping(pid1) if variant.startswith("zedinit") else None,
                }
            return out
        finally:
            for proc, pid1 in running.values():
                self.stop(proc, pid1)

    def idle(self, order, window):
        """All inits at once, each with 5 sleeping children; returns {init: (cs1, cpu1, csT, cpuT)}."""
        running = {}
        try:
            launches = self.prepare_all(order, self.five)
            for init in order:
                proc, pid1 = self.start(launches[init])
                running[init] = (proc, pid1, launches[init]["stamps"])
            for init, (proc, pid1, stamps) in running.items():
                wait_until(lambda: len(read_lines(stamps)) >= 5, 10, what=f"{init}: 5 children")
            time.sleep(2)  # let every init finish its start-up work
            before = {init: tree_usage(pid1, self.helper) for init, (_, pid1, _) in running.items()}
            time.sleep(window)
            after = {init: tree_usage(pid1, self.helper) for init, (_, pid1, _) in running.items()}
            out = {}
            for init in order:
                b, a = before[init], after[init]
                pid1 = running[init][1]
                d1 = delta(b, a, {pid1})
                dt = delta(b, a, set(b) & set(a))
                out[init] = (d1[0], d1[1], dt[0], dt[1])
            return out
        finally:
            for proc, pid1, _ in running.values():
                self.stop(proc, pid1)


def read_lines(path):
    try:
        with open(path) as f:
            return [l for l in f.read().splitlines() if l.strip()]
    except FileNotFoundError:
        return []


def write_script(path, body):
    with open(path, "w") as f:
        f.write("#!/bin/sh\n" + body)
    os.chmod(path, 0o755)


def proc_comm(pid):
    try:
        with open(f"/proc/{pid}/comm") as f:
            return f.read().strip()
    except OSError:
        return "?"


def split_tree(pid1, child_id):
    """(supervision tree pids, workload children pids): the children are the processes
    whose executable is the chatter binary."""
    tree, kids = [], []
    for pid in descendants(pid1):
        try:
            st = os.stat(f"/proc/{pid}/exe")
            (kids if (st.st_dev, st.st_ino) == child_id and pid != pid1 else tree).append(pid)
        except OSError:
            if os.path.exists(f"/proc/{pid}"):
                tree.append(pid)  # a kernel-visible process we cannot stat: count it
    return tree, kids


def uss_service_toml(chatter):
    """The uss bench's zedinit service (also profiled by bench/zedinit-order): the chatter
    logging to a file, as 65534 without capabilities, its directory bound read-only."""
    bindir = os.path.dirname(chatter)
    cmd = ", ".join(f'"{a}"' for a in [chatter] + USS_CHILD_ARGS)
    return (f"command = [{cmd}]\n"
            "[log]\n"
            'to = "file"\n'
            "[run]\n"
            f"uid = {NOBODY}\n"
            f"gid = {NOBODY}\n"
            "capabilities = []\n"
            "noNewPrivileges = true\n"
            f'binds = ["{bindir}:{bindir}:ro"]\n')


def smaps_rollup(pid):
    """{field: kB} from /proc/PID/smaps_rollup."""
    out = {}
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:
            parts = line.split()
            if len(parts) >= 3 and parts[-1] == "kB":
                out[parts[0].rstrip(":")] = int(parts[1])
    return out


def child_creds(pid):
    """(uid, CapEff, NoNewPrivs) of a workload child, to check what it runs with."""
    uid = capeff = nnp = "?"
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                k, _, v = line.partition(":")
                if k == "Uid":
                    uid = v.split()[0]
                elif k == "CapEff":
                    capeff = v.strip()
                elif k == "NoNewPrivs":
                    nnp = v.strip()
    except OSError:
        pass
    return uid, capeff, nnp


def logged_bytes(logdir):
    total = 0
    for root, _, files in os.walk(logdir):
        for name in files:
            if name in ("config", "lock", "state", "newstate"):
                continue
            try:
                total += os.path.getsize(os.path.join(root, name))
            except OSError:
                pass
    return total


def smaps_by_mapping(pid):
    """PID's mappings with private pages: [(label, perms, size kB, rss, private clean,
    private dirty)]. Anonymous mappings are named: a thread's stack (the mapping holding
    its stack pointer, from /proc/PID/task/TID/syscall), or a glibc malloc arena (an
    anonymous rw mapping starting on a 64 MiB boundary: a thread's heap)."""
    sps = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/syscall") as f:
                fields = f.read().split()
            with open(f"/proc/{pid}/task/{tid}/comm") as f:
                name = f.read().strip()
            if len(fields) >= 8:
                sps[int(fields[-2], 16)] = f"{name}" + (" (main)" if tid == str(pid) else "")
        except (OSError, ValueError):
            pass
    maps, cur = [], None
    with open(f"/proc/{pid}/smaps") as f:
        for line in f:
            head = line.split()
            if "-" in head[0] and not head[0].endswith(":"):
                lo, hi = (int(x, 16) for x in head[0].split("-"))
                path = head[5] if len(head) > 5 else ""
                cur = {"lo": lo, "hi": hi, "perms": head[1], "path": path, "Size": 0, "Rss": 0,
                       "Private_Clean": 0, "Private_Dirty": 0}
                maps.append(cur)
            elif head[0].rstrip(":") in ("Size", "Rss", "Private_Clean", "Private_Dirty"):
                cur[head[0].rstrip(":")] = int(head[1])
    out = []
    for m in maps:
        label = os.path.basename(m["path"]) if m["path"].startswith("/") else m["path"]
        if m["path"] in ("", "[stack]"):
            for sp, name in sps.items():
                if m["lo"] <= sp < m["hi"]:
                    label = f"stack of thread {name}"
            if not label:
                label = ("anon, 64 MiB-aligned: a malloc arena" if m["lo"] % (64 << 20) == 0
                         else "anon")
        if m["Private_Clean"] + m["Private_Dirty"] > 0:
            out.append((label, m["perms"], m["Size"], m["Rss"], m["Private_Clean"], m["Private_Dirty"]))
    return out


def proc_usage(pid):
    """(context switches, CPU ns) summed over the process's threads."""
    cs = cpu = 0
    for tid in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{tid}/status") as f:
            for line in f:
                if line.startswith(("voluntary_ctxt_switches", "nonvoluntary_ctxt_switches")):
                    cs += int(line.split()[1])
        with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
            cpu += int(f.read().split()[0])
    return cs, cpu


def tree_usage(pid1, helper):
    """{pid: (cs, cpu ns)} for PID 1 and every descendant that is not a workload child."""
    out = {}
    for pid in descendants(pid1):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")
            if pid != pid1 and os.readlink(f"/proc/{pid}/exe") == helper and b"spawn" not in argv:
                continue  # a workload child (stamp ... sleep; `run` under runit and s6)
            out[pid] = proc_usage(pid)
        except (OSError, IndexError):
            pass
    return out


def delta(before, after, pids):
    cs = sum(after[p][0] - before[p][0] for p in pids if p in before and p in after)
    cpu = sum(after[p][1] - before[p][1] for p in pids if p in before and p in after)
    return cs, cpu / 1e6


def supctl_reaped(sock):
    import json
    try:
        out = subprocess.run([SUPCTL, "--control-socket", sock, "status", "--json"],
                             capture_output=True, text=True, timeout=5).stdout
        return json.loads(out)["supervisor"]["reaped_orphans"]
    except Exception:  # informative only
        return None


# ---- statistics and report ---------------------------------------------------------

def q(values, p):
    v = sorted(values)
    if not v:
        return float("nan")
    k = (len(v) - 1) * p
    lo, hi = int(k), min(int(k) + 1, len(v) - 1)
    return v[lo] + (v[hi] - v[lo]) * (k - lo)


def fmt(x, unit=""):
    if x != x:
        return "n/a"
    if abs(x) >= 100 or x == int(x) and unit == "":
        return f"{x:.0f}{unit}"
    return f"{x:.2f}{unit}" if abs(x) < 10 else f"{x:.1f}{unit}"


def summary(values, unit=""):
    """median (IQR p25–p75, range min–max); n is given per metric."""
    if not values:
        return "n/a"
    if min(values) == max(values):
        return f"{fmt(values[0], unit)} (all)"
    return (f"{fmt(statistics.median(values), unit)} "
            f"(IQR {fmt(q(values, .25))}–{fmt(q(values, .75))}, "
            f"range {fmt(min(values))}–{fmt(max(values))})")


def targets(res, inits):
    med = lambda key, init: statistics.median(res[key][init]) if res[key][init] else None
    out = []
    z = "zedinit"
    if z not in inits:
        return ["- (zedinit not in this run)"]
    if res["idle_cs1"][z]:
        cs, cpu = med("idle_cs1", z), med("idle_cpu1", z)
        ok = cs == 0 and cpu == 0
        out.append(f"- idle, 5 children: {cs:.0f} context switches / {cpu:.2f} ms CPU "
                   f"(target 0 / 0): {'met' if ok else 'MISSED'}")
    if res["restart"][z]:
        p50 = med("restart", z)
        out.append(f"- child exit → next exec p50 {p50:.2f} ms (target ≤ 1.5 ms): "
                   f"{'met' if p50 <= 1.5 else 'MISSED'}")
    if res["orphans_end"][z]:
        peers = {i: med("orphans_end", i) for i in inits if i not in (z, BARE) and res["orphans_end"][i]}
        best = min(peers, key=peers.get) if peers else None
        m = med("orphans_end", z)
        if best:
            lags = {i: med("orphans_lag", i) for i in peers}
            out.append(f"- {ORPHANS} orphans: median {m:.0f} ms, best peer {best} {peers[best]:.0f} ms "
                       f"(target: no worse): {'met' if m <= peers[best] else 'MISSED'}; "
                       f"PID 1's part (last exited → last reaped): zedinit "
                       f"{med('orphans_lag', z):.1f} ms, peers "
                       + ", ".join(f"{i} {lags[i]:.1f}" for i in lags) + " ms")
    if res["exec5"][z]:
        m = med("exec5", z)
        out.append(f"- exec → 5 children running {m:.2f} ms (target ≤ 5 ms): "
                   f"{'met' if m <= 5 else 'MISSED'}")
    return out


def uss_report(uss, variants):
    """The uss section: a table per variant, the checks, zedinit PID 1 by mapping."""
    mib = lambda kb: kb / 1024
    out = ["", "Private memory (USS = Private_Clean + Private_Dirty, /proc/PID/smaps_rollup), "
           "5 logging children running as 65534 without capabilities; MiB (1 MiB = 1024 kB "
           "of smaps). Each cell: median (IQR, range) over the rounds.", ""]
    out.append("| metric | " + " | ".join(variants) + " |")
    out.append("|---|" + "---|" * len(variants))
    rows = [("PID 1 USS (MiB)", lambda m: mib(m["pid1"])),
            ("supervision tree USS (MiB)", lambda m: mib(m["tree"])),
            ("  tree PSS (MiB)", lambda m: mib(m["pss"])),
            ("  tree RSS (MiB)", lambda m: mib(m["rss"])),
            ("processes in the tree", lambda m: m["n"]),
            ("threads of PID 1", lambda m: m["threads"]),
            ("log bytes on disk at the reading", lambda m: m["logged"])]
    for label, get in rows:
        cells = [summary([get(m) for m in uss[v]]) if uss[v] else "n/a" for v in variants]
        ns = sorted({len(uss[v]) for v in variants if uss[v]})
        out.append(f"| {label} (n={'/'.join(map(str, ns))}) | " + " | ".join(cells) + " |")
    out.append("")
    for v in variants:
        if uss[v]:
            last = uss[v][-1]
            creds = sorted(set(last["kids"]))
            out.append(f"- {v}: tree = {', '.join(last['procs'])}; children (uid, CapEff, "
                       f"NoNewPrivs): {', '.join(f'({u}, {c}, {n})' for u, c, n in creds)}")
    z = uss.get("zedinit")
    if z:
        tree = statistics.median(m["tree"] for m in z) / 1024
        out += ["", f"Target for zedinit (issue 4): tree USS ≤ 1 MiB with [run] and [log]: "
                f"{tree:.2f} MiB: {'met' if tree <= 1.0 else 'MISSED'}"]
        # zedinit's link order (supervisor/zedinit/zedinit.order) goes stale as its code changes.
        check = subprocess.run([os.path.join(REPO, "bench", "zedinit-order"), "--check",
                                "--binary", ZEDINIT],
                               capture_output=True, text=True)
        out += ["", f"Link order: {check.stdout.strip() or check.stderr.strip()} "
                "(bench/zedinit-order regenerates it)"]
    zs = [v for v in variants if v.startswith("zedinit") and uss[v]]
    if zs:
        # Where PID 1's private pages are, by kind (last round, kB).
        def kind(label):
            if label == os.path.basename(ZEDINIT):
                return "zedinit binary"
            if ".so" in label:
                return "shared libraries (relocated data, unshared text)"
            if label == "[heap]":
                return "[heap] (main malloc arena)"
            if "arena" in label:
                return "thread malloc arena"
            if label.startswith("stack"):
                return "thread stacks"
            return "other anonymous"
        kinds = ["zedinit binary", "[heap] (main malloc arena)", "thread malloc arena", "thread stacks",
                 "shared libraries (relocated data, unshared text)", "other anonymous"]
        out += ["", "zedinit PID 1's private pages by kind (last round, kB, Private_Clean + Private_Dirty):", "",
                "| kind | " + " | ".join(zs) + " |", "|---|" + "---|" * len(zs)]
        for k in kinds + ["total"]:
            cells = []
            for v in zs:
                maps = uss[v][-1]["maps"]
                sel = [m for m in maps if k == "total" or kind(m[0]) == k]
                cells.append(f"{sum(m[4] + m[5] for m in sel)} ({sum(m[4] for m in sel)} clean)")
            out.append(f"| {k} | " + " | ".join(cells) + " |")
        for v in zs:
            maps = uss[v][-1]["maps"]
            out += ["", f"{v} PID 1, every mapping with private pages (last round, kB):", "",
                    "| mapping | perms | size | Rss | Private_Clean | Private_Dirty |",
                    "|---|---|---|---|---|---|"]
            for label, perms, size, rss, pc, pd in maps:
                out.append(f"| {label} | {perms} | {size} | {rss} | {pc} | {pd} |")
            out.append(f"| **total** | | | | {sum(m[4] for m in maps)} | {sum(m[5] for m in maps)} |")
    return out


def rotated(items, r):
    r %= len(items)
    return items[r:] + items[:r]


def cpu_busy(seconds):
    """Percent of all CPUs busy over `seconds` (from /proc/stat)."""
    def sample():
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:]]
        return sum(v), v[3] + v[4]  # total, idle + iowait
    t1, i1 = sample()
    time.sleep(seconds)
    t2, i2 = sample()
    return 100.0 * (1 - (i2 - i1) / max(1, t2 - t1))


def versions():
    def dpkg(p):
        try:
            return subprocess.run(["dpkg-query", "-W", "-f=${Version}", p], capture_output=True,
                                  text=True).stdout or "?"
        except OSError:
            return "?"
    rev = subprocess.run(["git", "-C", REPO, "describe", "--always", "--dirty"],
                         capture_output=True, text=True).stdout.strip()
    cpu = "?"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"{cpu}, {os.cpu_count()} CPUs, Linux {platform.release()}, "
                   f"{platform.freedesktop_os_release().get('PRETTY_NAME', '?')}",
        "versions": f"zedinit {rev}, tini {dpkg('tini')}, dumb-init {dpkg('dumb-init')}, "
                    f"runit {dpkg('runit')}, s6 {dpkg('s6')}",
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="~1.5 minutes: fewer rounds, 5 s idle")
    ap.add_argument("--only", default="idle,restart,orphans,exec5",
                    help="comma-separated metrics to run: idle, restart, orphans, exec5 "
                         "(the default) and uss (issue 4, only when asked for)")
    ap.add_argument("--inits", default=",".join(INITS), help="comma-separated inits")
    ap.add_argument("--rounds", type=int, help="rounds for every metric (default: per metric)")
    ap.add_argument("--no-build", action="store_true", help="use target/release as it is")
    ap.add_argument("--zedinit", help="this zedinit binary instead of target/release/zedinit "
                                      "(e.g. one built with another profile; implies --no-build)")
    ap.add_argument("--busy", action="store_true",
                    help="run one busy loop per CPU throughout (a loaded machine)")
    ap.add_argument("--out", help="also write the markdown report to this file")
    ap.add_argument("--keep", action="store_true", help="keep the work directory (logs)")
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("bench/supervisors.py: needs root (pid namespaces)")
    for tool in ["unshare", "gcc", "/usr/bin/tini", "/usr/bin/dumb-init", "/usr/bin/runsvdir",
                 "/usr/bin/s6-svscan"]:
        if not shutil.which(tool):
            sys.exit(f"bench/supervisors.py: {tool} missing: run bench/install-peers")
    if args.zedinit:
        global ZEDINIT
        ZEDINIT = os.path.abspath(args.zedinit)
        args.no_build = True
    if not args.no_build:
        # The one build zedinit's link order is made for (bench/zedinit-order).
        log("building every binary (cargo build --release --workspace --bins)...")
        subprocess.run(["cargo", "build", "--quiet", "--release", "--workspace", "--bins"],
                       cwd=REPO, check=True)
    # A binary the linker has just written sits in the page cache as dirty pages, which
    # smaps counts as Private_Dirty and the kernel cannot reclaim before writeback; on a
    # device the image's binaries are clean. Write them back before measuring.
    os.sync()
    inits = args.inits.split(",")
    if args.quick:
        rounds = {"exec5": 5, "restart": 2, "orphans": 3, "idle": 1, "uss": 2}
        idle_window, zed_restarts, slow_restarts, uss_settle = 5, 200, 3, 3
    else:
        rounds = {"exec5": 15, "restart": 3, "orphans": 8, "idle": 3, "uss": 5}
        idle_window, zed_restarts, slow_restarts, uss_settle = 20, 200, 5, 5
    only = set(args.only.split(","))
    rounds = {k: n for k, n in rounds.items() if k in only}

    if args.rounds:
        rounds = {k: args.rounds for k in rounds}
    work = tempfile.mkdtemp(prefix="zedctr-bench.", dir=work_parent())
    helper = os.path.join(work, "bench-helper")
    subprocess.run(["gcc", "-O2", "-static", "-Wall", "-o", helper,
                    os.path.join(REPO, "bench", "helper.c")], check=True)
    bench = Bench(work, helper)
    if "uss" in only:
        os.makedirs(os.path.join(work, "bin"))
        bench.chatter = os.path.join(work, "bin", "chatter")
        subprocess.run(["gcc", "-O2", "-static", "-Wall", "-o", bench.chatter,
                        os.path.join(REPO, "bench", "chatter.c")], check=True)
        os.chmod(work, 0o755)  # the children (uid 65534) exec from under it
        for tool in ["/usr/bin/chpst", "/usr/bin/svlogd", "/usr/bin/s6-log"]:
            if not os.path.exists(tool):
                sys.exit(f"bench/supervisors.py: {tool} missing: run bench/install-peers")
    uss_variants = [v for v, (base, _) in USS_VARIANTS.items() if base in inits]
    uss = {v: [] for v in uss_variants}
    res = {m: {i: [] for i in inits + [BARE]} for m in
           ["exec5", "restart", "orphans_end", "orphans_exited", "orphans_lag", "storm", "idle_cs1", "idle_cpu1",
            "idle_csT", "idle_cpuT"]}
    notes = []

    busy = []
    if args.busy:
        busy = [subprocess.Popen(["sh", "-c", "while :; do :; done"]) for _ in range(os.cpu_count())]

    def bye(*_):
        raise KeyboardInterrupt
    signal.signal(signal.SIGTERM, bye)
    busy_before = cpu_busy(1.0)
    t_begin = time.monotonic()
    try:
        inits = inits + [BARE]
        if "idle" in only:
            for r in range(rounds["idle"]):
                order = rotated(inits, r)
                log(f"idle round {r + 1}/{rounds['idle']} ({idle_window} s): {' '.join(order)}")
                for init, (cs1, cpu1, csT, cpuT) in bench.idle(order, idle_window).items():
                    res["idle_cs1"][init].append(cs1)
                    res["idle_cpu1"][init].append(cpu1)
                    res["idle_csT"][init].append(csT)
                    res["idle_cpuT"][init].append(cpuT)
        if "uss" in only:
            # Variants of the same init never run at the same time: a binary mapped by
            # two instances has its pages counted as shared, not private, by both.
            by_base = {}
            for v in uss_variants:
                by_base.setdefault(USS_VARIANTS[v][0], []).append(v)
            groups = [[vs[k] for vs in by_base.values() if k < len(vs)]
                      for k in range(max(map(len, by_base.values()), default=0))]
            for r in range(rounds["uss"]):
                for g, group in enumerate(rotated(groups, r)):
                    order = rotated(group, r)
                    log(f"uss round {r + 1}/{rounds['uss']}, group {g + 1}/{len(groups)} "
                        f"({uss_settle} s): {' '.join(order)}")
                    for variant, m in bench.uss(order, uss_settle).items():
                        uss[variant].append(m)
        if "exec5" in only:
            for r in range(rounds["exec5"]):
                order = rotated(inits, r)
                log(f"exec5 round {r + 1}/{rounds['exec5']}: {' '.join(order)}")
                launches = bench.prepare_all(order, Bench.five)
                for init in order:
                    res["exec5"][init].append(bench.exec5(launches[init]))
        if "restart" in only:
            restarters = [i for i in inits if i in RESTARTING]
            for r in range(rounds["restart"]):
                order = rotated(restarters, r)
                log(f"restart round {r + 1}/{rounds['restart']}: {' '.join(order)}")
                launches = bench.prepare_all(order, Bench.flap)
                for init in order:
                    n = slow_restarts if init in ("runit", "s6") else zed_restarts
                    res["restart"][init].extend(bench.restart(launches[init], n))
        if "orphans" in only:
            for r in range(rounds["orphans"]):
                order = rotated(inits, r)
                log(f"orphans round {r + 1}/{rounds['orphans']}: {' '.join(order)}")
                launches = bench.prepare_all(order, Bench.storm)
                for init in order:
                    o = bench.orphans(launches[init])
                    res["orphans_end"][init].append(o["end"])
                    res["storm"][init].append(o["storm"])
                    res["orphans_exited"][init].append(o["exited"])
                    res["orphans_lag"][init].append(o["lag"])
                    if o["reaped"] is not None and o["reaped"] < ORPHANS:
                        notes.append(f"zedinit reported reaped_orphans={o['reaped']} < {ORPHANS}")
    except KeyboardInterrupt:
        log("interrupted: cleaning up")
        raise
    finally:
        for b in busy:
            b.kill()
            b.wait()
        for proc, pid1 in list(LIVE):
            if pid1:
                Bench.stop(proc, pid1)
            else:
                proc.kill()
                proc.wait()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
        else:
            log(f"work directory kept: {work}")
    elapsed = time.monotonic() - t_begin

    v = versions()
    custom = args.rounds or args.zedinit or args.only != ap.get_default("only") or args.inits != ap.get_default("inits")
    mode = ("quick" if args.quick else "full") + (", custom" if custom or args.busy else "")
    lines = [
        f"Run: {v['date']}, `{' '.join(['bench/supervisors.py'] + sys.argv[1:])}` ({mode}"
        f"{', one busy loop per CPU' if args.busy else ''}, "
        f"{elapsed:.0f} s)  ",
        f"Machine: {v['machine']}  ",
        f"Versions: {v['versions']}" + (f" (zedinit binary: {ZEDINIT})" if args.zedinit else "") + "  ",
        f"CPU busy in the second before the run: {busy_before:.0f} % (other work on the "
        "machine adds noise)",
        "",
        "Each cell: median (IQR p25–p75, range min–max); n: samples per init. Rounds: "
        + ", ".join(f"{k} {n}" for k, n in rounds.items())
        + (f"; idle window {idle_window} s" if "idle" in only else "")
        + (f"; restarts per round: zedinit and bare {zed_restarts}, runit and s6 {slow_restarts}"
           if "restart" in only else "")
        + (f"; uss read {uss_settle} s after the last child is up" if "uss" in only else "") + ".",
        "",
    ]
    rows = [
        ("idle: PID 1 context switches", "idle_cs1", ""),
        ("idle: PID 1 CPU (ms)", "idle_cpu1", ""),
        ("idle: whole tree context switches", "idle_csT", ""),
        ("idle: whole tree CPU (ms)", "idle_cpuT", ""),
        ("child exit → next exec (ms)", "restart", ""),
        (f"{ORPHANS} orphans exit at once: release → none left (ms)", "orphans_end", ""),
        ("  of which: release → last orphan exited (ms)", "orphans_exited", ""),
        ("  of which: last orphan exited → last reaped (ms)", "orphans_lag", ""),
        (f"(making the {ORPHANS} orphans, not timed above, ms)", "storm", ""),
        ("exec → 5 children running (ms)", "exec5", ""),
    ]
    cols = inits
    rows = [r for r in rows if any(res[r[1]][c] for c in cols)]
    if rows:
        lines.append("| metric | " + " | ".join(cols) + " |")
        lines.append("|---|" + "---|" * len(cols))
    for label, key, unit in rows:
        if not any(res[key][c] for c in cols):
            continue
        cells = [summary(res[key][c], unit) for c in cols]
        ns = sorted({len(res[key][c]) for c in cols if res[key][c]})
        lines.append(f"| {label} (n={'/'.join(map(str, ns))}) | " + " | ".join(cells) + " |")
    if "restart" in only:
        lines.append("")
        lines.append("Restart p90 (ms): " + ", ".join(
            f"{c} {fmt(q(res['restart'][c], .9))}" for c in cols if res["restart"][c]))
    if rows:
        lines += ["", "Targets for zedinit (issue 3), this run:"]
        lines += targets(res, inits)
    if "uss" in only:
        lines += uss_report(uss, uss_variants)
    lines += [""] + notes
    report = "\n".join(lines)
    print(report)
    if args.out:
        with open(args.out, "w") as f:
            f.write(report + "\n")


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Investigation aid for "exec → 5 children running": is waiting for each child's exec
before starting the next what makes zedinit's start-up slow on a busy machine?

Runs, interleaved, zedinit and four 20-line C PID 1s that start the same 5 children:
  fork           fork+exec all five, never waiting (what tini's and dumb-init's helper,
                 s6-supervise and runsv do: nobody waits for an exec)
  fork+cgroup    the same, each child in a new cgroup of its own as zedinit's are (mkdir
                 a directory, then per child mkdir and clone3 CLONE_INTO_CGROUP): the
                 like-for-like yardstick (the cgroups go under this process's cgroup2
                 directory as zedctr-cgmodel.N and are removed after each series)
  fork+wait      fork, then block until that child has exec'd (EOF on a CLOEXEC pipe)
                 before the next: what Rust's std::process::Command::spawn does
  posix_spawn    glibc posix_spawn (clone(CLONE_VM|CLONE_VFORK)), POSIX_SPAWN_SETSID
first on a quiet machine, then with one busy loop per CPU. Root:

    bench/probe-spawn.py [ROUNDS]
    ZEDINIT_BEFORE=/path/to/older/zedinit bench/probe-spawn.py [ROUNDS]   # adds it, interleaved
"""
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

sys.dont_write_bytecode = True  # no __pycache__ in bench/
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import supervisors as S  # noqa: E402

VARIANTS = {"fork": "spawn", "fork+cgroup": "spawn-cgroup", "fork+wait": "spawn-sync",
            "posix_spawn": "spawn-vfork"}
CGROUP_PREFIX = "zedctr-cgmodel."


def cgroup_parent():
    """This process's cgroup2 directory (zedinit makes its own beside the same place)."""
    mount = next(m for m in ("/sys/fs/cgroup/unified", "/sys/fs/cgroup")
                 if os.path.isfile(os.path.join(m, "cgroup.procs"))
                 and not os.path.isfile(os.path.join(os.path.dirname(m), "cgroup.procs")))
    own = next(l[3:] for l in open("/proc/self/cgroup").read().splitlines() if l.startswith("0::"))
    return os.path.join(mount, own.lstrip("/"))


def remove_cgroups(parent):
    """Removes the model's cgroups (their processes are gone with their namespace)."""
    for d in sorted(os.listdir(parent)):
        if not d.startswith(CGROUP_PREFIX):
            continue
        top = os.path.join(parent, d)
        for sub in [os.path.join(top, s) for s in os.listdir(top)
                    if os.path.isdir(os.path.join(top, s))] + [top]:
            for _ in range(100):  # EBUSY until the killed children have exited
                try:
                    os.rmdir(sub)
                    break
                except OSError:
                    time.sleep(0.01)


BEFORE = os.environ.get("ZEDINIT_BEFORE")


class Probe(S.Bench):
    def prepare(self, init, services, d):
        if init == "zedinit-before":
            argv = super().prepare("zedinit", services, d)
            return [BEFORE] + argv[1:]
        if init == "fork+cgroup":
            argv = list(services.values())[0]
            self.cgseq = getattr(self, "cgseq", 0) + 1
            cg = os.path.join(self.cgparent, f"{CGROUP_PREFIX}{os.getpid()}.{self.cgseq}")
            return [self.helper, "spawn-cgroup", str(len(services)), cg, self.helper] + argv
        if init in VARIANTS:
            argv = list(services.values())[0]
            return [self.helper, VARIANTS[init], str(len(services)), self.helper] + argv
        return super().prepare(init, services, d)


def run(bench, rounds):
    names = ["zedinit"] + (["zedinit-before"] if BEFORE else []) + list(VARIANTS)
    res = {n: [] for n in names}
    for r in range(rounds):
        order = S.rotated(names, r)
        launches = bench.prepare_all(order, S.Bench.five)
        for n in order:
            res[n].append(bench.exec5(launches[n]))
    remove_cgroups(bench.cgparent)
    for n in names:
        v = res[n]
        print(f"  {n:12s} median {statistics.median(v):7.2f} ms  "
              f"(range {min(v):.2f}–{max(v):.2f}, n={len(v)})")
        if os.environ.get("PROBE_RAW"):
            print(f"    {n} by round: " + " ".join(f"{x:.1f}" for x in v))
    # Each round's zedinit against the same round's never-wait model: on a machine that
    # other work loads unevenly, a ratio within a round is steadier than one of medians.
    # And against the model with the same per-service cgroups.
    for n in names[:2] if BEFORE else names[:1]:
        for m in ("fork", "fork+cgroup"):
            r = sorted(z / f for z, f in zip(res[n], res[m]))
            print(f"  {n + ' ÷ ' + m:12s} per round: median {statistics.median(r):.2f}×  "
                  f"(p25 {r[len(r) // 4]:.2f}×, p75 {r[(3 * len(r)) // 4]:.2f}×)")


def main():
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 10
    work = tempfile.mkdtemp(prefix="zedctr-probe.", dir=S.work_parent())
    busy = []
    try:
        helper = os.path.join(work, "bench-helper")
        subprocess.run(["gcc", "-O2", "-static", "-o", helper,
                        os.path.join(S.REPO, "bench", "helper.c")], check=True)
        bench = Probe(work, helper)
        bench.cgparent = cgroup_parent()
        print("exec → 5 children running, quiet machine:")
        run(bench, rounds)
        busy = [subprocess.Popen(["sh", "-c", "while :; do :; done"])
                for _ in range(os.cpu_count())]
        print(f"the same with {len(busy)} busy loops (one per CPU):")
        run(bench, rounds)
    finally:
        for b in busy:
            b.kill()
            b.wait()
        for proc, pid1 in list(S.LIVE):
            S.Bench.stop(proc, pid1)
        shutil.rmtree(work, ignore_errors=True)
        remove_cgroups(cgroup_parent())


if __name__ == "__main__":
    main()

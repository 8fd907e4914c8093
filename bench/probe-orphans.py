#!/usr/bin/env python3
"""Investigation aid for the orphan storm of bench/supervisors.py: runs one init on the
same work, pauses 1.5 s between making the 10,000 orphans and releasing them, and runs
TOOL against the init's PID 1 during that pause ("{pid}" in TOOL is replaced), stopping
it with SIGINT 0.3 s after the drain. Examples (root):

    bench/probe-orphans.py zedinit
    bench/probe-orphans.py zedinit perf stat -e task-clock,context-switches,syscalls:sys_enter_wait4 -p {pid}
    bench/probe-orphans.py zedinit perf record -e cpu-clock -F 20000 -g -o /tmp/orphans.data -p {pid}
    bench/probe-orphans.py s6 strace -c -p {pid}
"""
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.dont_write_bytecode = True  # no __pycache__ in bench/
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import supervisors as S  # noqa: E402


def main():
    if len(sys.argv) < 2 or sys.argv[1] not in S.INITS + [S.BARE]:
        sys.exit(__doc__)
    init, tool = sys.argv[1], sys.argv[2:]
    work = tempfile.mkdtemp(prefix="zedctr-probe.")
    try:
        helper = os.path.join(work, "bench-helper")
        subprocess.run(["gcc", "-O2", "-static", "-o", helper,
                        os.path.join(S.REPO, "bench", "helper.c")], check=True)
        bench = S.Bench(work, helper)
        launch = bench.prepare_all([init], lambda d: S.Bench.storm(d, pause_ms=1500))[init]
        proc, pid1 = bench.start(launch)
        try:
            watch = subprocess.Popen([helper, "watch", str(pid1), launch["go"], launch["done"]],
                                     stdout=subprocess.PIPE, text=True)
            S.wait_until(lambda: len(S.children(pid1)) >= S.ORPHANS, 30, step=0.005,
                         what="the orphans")
            t = subprocess.Popen([a.replace("{pid}", str(pid1)) for a in tool]) if tool else None
            out = watch.communicate(timeout=90)[0].split()
            start, release, reaped, polls, made, left, exited, zombies = map(int, out)
            print(f"{init}: release → all reaped {(reaped - release) / 1e6:.1f} ms "
                  f"(→ all exited {(exited - release) / 1e6:.1f} ms, then "
                  f"{(reaped - exited) / 1e6:.1f} ms more to reap); left {left}, zombies {zombies}")
            if t:
                time.sleep(0.3)
                t.send_signal(signal.SIGINT)
                t.wait(timeout=30)
        finally:
            S.Bench.stop(proc, pid1)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()

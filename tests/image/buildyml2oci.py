#!/usr/bin/env python3
"""Translate zedctr's linuxkit build.yml (its `config:` block) into what linuxkit would run.

The image tier runs the image the way EVE's linuxkit/containerd would, but with podman
or plain runc, so build.yml's settings have to be turned into their flags:

  buildyml2oci.py build.yml --podman [--remap SRC=DST ...] [--pid new|host] [--drop-missing-caps]
      -> `podman run` arguments, one per line
         (mapfile -t A < <(buildyml2oci.py ...); podman run "${A[@]}" IMAGE)
  buildyml2oci.py build.yml --oci bundle/config.json [same options]
      -> patches an OCI runtime config (from umoci unpack) in place, the way
         linuxkit's pkg/moby ConfigToOCI does
  buildyml2oci.py build.yml --oci spec.json --image-config INSPECT.json --rootfs DIR ...
      -> the same on a spec of containerd's (`ctr oci spec`), for `ctr run --config`:
         the process (entrypoint, cmd, env, working directory) is the image's
         (`podman image inspect` output), the root the image as containerd mounted it
  buildyml2oci.py build.yml --caps [--drop-missing-caps]
      -> the capabilities the container will get, one per line (for the CapEff check)

`devices:` entries are linuxkit's (`path`, `type`, `major`, `minor`, `mode`; `path: all`
with a `type` for every device of that type): each becomes a device-cgroup rule. The
nodes themselves come from build.yml's /dev bind (the host's), so a device this machine
lacks (/dev/watchdog here) is still allowed, not refused.

--remap SRC=DST     rewrite a bind source: a test must never bind the real host /run,
                    /var/log, /var/config or / into a container it starts.
--pid new|host      override `pid:`; the test runs both (PID 1 vs subreaper semantics).
--drop-missing-caps drop capabilities absent from this machine's bounding set (e.g. our
                    machines lack CAP_SYS_RESOURCE: runc fails "unable to apply caps",
                    podman would drop it silently). Dropped ones are named on stderr.
--netns PATH        the network namespace that stands for the host's (`net: host`): the
                    test's device namespace, so nothing the image's services listen on
                    (sshd's port 22, dnsmasq) reaches this machine's own network.
--rootfs DIR        the container's root (absolute): `ctr run --config` makes no
                    snapshot, so the test mounts the imported image itself.
--image-config FILE the image's process, from `podman image inspect` (a spec that is not
                    umoci's has none of it).
--cgroups-path P    linux.cgroupsPath (each container of a run in a group of its own).

Semantics follow linuxkit: net/ipc/uts default to the host's, pid defaults to new, always
a new mount and cgroup namespace; binds default to "rw,rbind,rshared"; `capabilities:
[all]` means every capability; readonly defaults to false; no seccomp, no AppArmor, no
masked or read-only /proc paths.

A config key this script does not translate is an error, not silently ignored: when
build.yml grows a key, teach it here, or the test would run something EVE would not.
"""
import argparse
import json
import sys

import yaml

# Index == capability number (linux/capability.h).
ALL_CAPS = ["CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID",
    "CAP_KILL", "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE", "CAP_NET_BROADCAST", "CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_IPC_LOCK",
    "CAP_IPC_OWNER", "CAP_SYS_MODULE", "CAP_SYS_RAWIO", "CAP_SYS_CHROOT", "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE", "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE", "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL", "CAP_SETFCAP", "CAP_MAC_OVERRIDE", "CAP_MAC_ADMIN", "CAP_SYSLOG",
    "CAP_WAKE_ALARM", "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ", "CAP_PERFMON", "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE"]

# The config keys translated below; anything else in build.yml is an error.
KNOWN_KEYS = {"binds", "capabilities", "ambient", "net", "pid", "ipc", "uts", "readonly",
              "devices", "tmpfs", "oomScoreAdj", "command", "noNewPrivileges", "env", "cwd"}


def die(msg):
    print(f"buildyml2oci: {msg}", file=sys.stderr)
    sys.exit(2)


def bounding_set():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("CapBnd:"):
                mask = int(line.split()[1], 16)
                return {c for i, c in enumerate(ALL_CAPS) if mask >> i & 1}
    return set(ALL_CAPS)


def load(a):
    with open(a.buildyml) as f:
        doc = yaml.safe_load(f)
    c = doc.get("config")
    if not isinstance(c, dict):
        die(f"{a.buildyml}: no `config:` mapping")
    unknown = sorted(set(c) - KNOWN_KEYS)
    if unknown:
        die(f"{a.buildyml}: config keys not translated yet: {unknown} (teach tests/image/buildyml2oci.py)")
    caps = c.get("capabilities") or []
    if len(caps) == 1 and caps[0].lower() == "all":
        caps = list(ALL_CAPS)
    elif len(caps) == 1 and caps[0].lower() == "none":
        caps = []
    bad = [x for x in caps if x not in ALL_CAPS]
    if bad:
        die(f"{a.buildyml}: unknown capabilities {bad}")
    if a.drop_missing_caps:
        have = bounding_set()
        dropped = [x for x in caps if x not in have]
        if dropped:
            print(f"buildyml2oci: dropping capabilities not in this machine's bounding set: {dropped}",
                  file=sys.stderr)
        caps = [x for x in caps if x in have]
    remap = dict(r.split("=", 1) for r in a.remap)
    binds = []
    for b in c.get("binds") or []:
        p = b.split(":")
        if len(p) not in (2, 3):
            die(f"{a.buildyml}: bad bind {b!r}")
        src, dst = p[0], p[1]
        opts = p[2].split(",") + ["rbind"] if len(p) == 3 else ["rw", "rbind", "rshared"]
        binds.append((remap.get(src, src), dst, opts))
    pid = a.pid or c.get("pid", "new")
    return c, sorted(set(caps), key=ALL_CAPS.index), binds, pid


def is_host(v):
    return v in ("host", "root")


def device_rule(d):
    """A linuxkit `devices:` entry as a device-cgroup rule, `TYPE MAJOR:MINOR rwm`."""
    if not isinstance(d, dict) or "path" not in d:
        die(f"devices: {d!r} is not a linuxkit device (path, type, major, minor, mode)")
    if d["path"] == "all":
        return f"{d.get('type', 'a')} *:* rwm"
    for k in ("type", "major", "minor"):
        if k not in d:
            die(f"devices: {d['path']}: no `{k}`")
    return f"{d['type']} {d['major']}:{d['minor']} rwm"


def podman_args(c, caps, binds, pid, netns):
    out = ["--cap-drop=all"] + [f"--cap-add={x}" for x in caps]
    if not is_host(c.get("net", "host")):
        out += ["--network=none"]
    elif netns:
        out += [f"--network=ns:{netns}"]
    else:
        out += ["--network=host"]
    out += ["--ipc=host" if is_host(c.get("ipc", "host")) else "--ipc=private"]
    out += ["--uts=host" if is_host(c.get("uts", "host")) else "--uts=private"]
    out += ["--pid=host"] if is_host(pid) else ["--pid=private"]
    out += ["--cgroupns=private", "--security-opt=seccomp=unconfined",
            "--security-opt=apparmor=unconfined", "--security-opt=unmask=ALL"]
    if c.get("noNewPrivileges"):
        out += ["--security-opt=no-new-privileges"]
    if c.get("readonly"):
        # podman would put tmpfs on /run, /tmp, /var/tmp of a read-only container;
        # linuxkit does not, so neither do we.
        out += ["--read-only", "--read-only-tmpfs=false"]
    for d in c.get("devices") or []:
        out += [f"--device-cgroup-rule={device_rule(d)}"]
    for src, dst, opts in binds:
        # podman binds are rprivate; linuxkit's are rshared. Nothing zedinit does depends
        # on propagation back to the host, so only ro/rw is carried over.
        o = [x for x in opts if x in ("ro", "rw")]
        out += [f"--volume={src}:{dst}" + (":" + ",".join(o) if o else "")]
    for t in c.get("tmpfs") or []:
        out += [f"--tmpfs={t}"]
    if c.get("oomScoreAdj") is not None:
        out += [f"--oom-score-adj={c['oomScoreAdj']}"]
    for e in c.get("env") or []:
        out += [f"--env={e}"]
    if c.get("cwd"):
        out += [f"--workdir={c['cwd']}"]
    return out


def image_process(p, inspect_file):
    """The image's own process, as containerd's WithImageConfig would set it."""
    with open(inspect_file) as f:
        doc = json.load(f)
    cfg = (doc[0] if isinstance(doc, list) else doc).get("Config") or {}
    args = (cfg.get("Entrypoint") or []) + (cfg.get("Cmd") or [])
    if not args:
        die(f"{inspect_file}: the image has no entrypoint or cmd")
    p["args"] = args
    p["env"] = cfg.get("Env") or ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]
    p["cwd"] = cfg.get("WorkingDir") or "/"


def patch_oci(path, c, caps, binds, pid, netns, a=None):
    with open(path) as f:
        spec = json.load(f)
    ro = bool(c.get("readonly"))
    p = spec["process"]
    if a is not None and a.image_config:
        image_process(p, a.image_config)
    p["terminal"] = False
    if c.get("command"):
        p["args"] = c["command"]
    if c.get("env"):
        p["env"] = list(p.get("env") or []) + list(c["env"])
    if c.get("cwd"):
        p["cwd"] = c["cwd"]
    p["capabilities"] = {k: caps for k in ("bounding", "effective", "inheritable", "permitted")}
    p["capabilities"]["ambient"] = c.get("ambient") or []
    p["noNewPrivileges"] = bool(c.get("noNewPrivileges"))
    # umoci's rlimits (nofile 1024) are fine to keep out: linuxkit sets none.
    p.pop("rlimits", None)
    p.pop("apparmorProfile", None)
    if c.get("oomScoreAdj") is not None:
        p["oomScoreAdj"] = c["oomScoreAdj"]
    spec["root"] = {"path": (a.rootfs if a is not None and a.rootfs else "rootfs"), "readonly": ro}
    if a is not None and a.cgroups_path:
        spec["linux"]["cgroupsPath"] = a.cgroups_path
    spec.pop("hostname", None)
    ns = [] if is_host(pid) else [{"type": "pid"}]
    for k, t in (("net", "network"), ("ipc", "ipc"), ("uts", "uts")):
        if not is_host(c.get(k, "host")):
            ns.append({"type": t})
        elif t == "network" and netns:
            ns.append({"type": t, "path": netns})
    spec["linux"]["namespaces"] = ns + [{"type": "mount"}, {"type": "cgroup"}]
    spec["linux"]["maskedPaths"] = []
    spec["linux"]["readonlyPaths"] = []
    spec["linux"].pop("seccomp", None)
    spec["linux"].pop("uidMappings", None)
    spec["linux"].pop("gidMappings", None)
    res = {}
    for d in c.get("devices") or []:
        kind, numbers, access = device_rule(d).split()
        major, minor = numbers.split(":")
        rule = {"allow": True, "type": kind, "access": access}
        if major != "*":
            rule["major"] = int(major)
        if minor != "*":
            rule["minor"] = int(minor)
        res.setdefault("devices", []).append(rule)
    spec["linux"]["resources"] = res
    m = {
        "/proc": {"destination": "/proc", "type": "proc", "source": "proc",
                  "options": ["nosuid", "nodev", "noexec", "relatime"]},
        "/dev": {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
                 "options": ["nosuid", "strictatime", "mode=755", "size=65536k"] + (["ro"] if ro else [])},
        "/dev/pts": {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
                     "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"]},
        "/sys": {"destination": "/sys", "type": "sysfs", "source": "sysfs",
                 "options": ["nosuid", "noexec", "nodev"] + (["ro"] if ro else [])},
        "/sys/fs/cgroup": {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
                           "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]},
    }
    for t in c.get("tmpfs") or []:
        dst, _, opts = t.partition(":")
        m[dst] = {"destination": dst, "type": "tmpfs", "source": "tmpfs",
                  "options": opts.split(",") if opts else []}
    for src, dst, opts in binds:
        m[dst] = {"destination": dst, "type": "bind", "source": src, "options": opts}
    # Sorted by destination, so a parent is mounted before what goes inside it.
    spec["mounts"] = [m[k] for k in sorted(m)]
    with open(path, "w") as f:
        json.dump(spec, f, indent=2)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("buildyml")
    g = ap.add_mutually_exclusive_group(required=True)
    g.add_argument("--podman", action="store_true")
    g.add_argument("--oci", metavar="CONFIG_JSON")
    g.add_argument("--caps", action="store_true")
    ap.add_argument("--remap", action="append", default=[], metavar="SRC=DST")
    ap.add_argument("--pid", choices=["new", "host"])
    ap.add_argument("--drop-missing-caps", action="store_true")
    ap.add_argument("--netns", metavar="PATH")
    ap.add_argument("--rootfs", metavar="DIR")
    ap.add_argument("--image-config", metavar="INSPECT_JSON")
    ap.add_argument("--cgroups-path", metavar="PATH")
    a = ap.parse_args()
    c, caps, binds, pid = load(a)
    if a.podman:
        print("\n".join(podman_args(c, caps, binds, pid, a.netns)))
    elif a.caps:
        print("\n".join(caps))
    else:
        patch_oci(a.oci, c, caps, binds, pid, a.netns, a)


if __name__ == "__main__":
    main()

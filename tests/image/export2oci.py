#!/usr/bin/env python3
"""Turn `supctl export linuxkit` into one OCI spec per service, as linuxkit would run each.

The image tier runs every exported service as a container of its own under a private
containerd (`ctr run --config SPEC ID`), from the same image, so each entry of the
export (onboot first, then services, in the export's order) becomes a runtime spec:

  export2oci.py plan EXPORT.yml --base SPEC.json --out-dir DIR --rootfs DIR
                [--remap SRC=DST ...] [--host-netns PATH] [--device-bind DEV=FILE]
                [--image-root DIR]
      -> DIR/NN-NAME.json for each entry, and on stdout one line per entry, in order:
         `run SECTION NAME SPEC` or `skip SECTION NAME REASON`. It also makes each
         entry's `runtime: mkdir:` directories on the (remapped) host side, owned by
         root as linuxkit makes them, then gives them the owners the export's comments
         say zedinit gave them (`zedinit makes P owned by U:G, mode M: linuxkit's mkdir
         sets neither`): what whoever assembles the device must do, since linuxkit can't.
  export2oci.py verify EXPORT.yml NAME PROBE_OUTPUT --host-netns PATH
      -> compares what a probe read from inside a container made from NAME's spec
         (/proc/self/status, /proc/self/ns/*, /proc/self/mountinfo) with the entry:
         one `ok ...` or `FAIL ...` line per check.

linuxkit's semantics (pkg/moby ConfigToOCI): the default mounts (/proc, a /dev tmpfs,
/dev/pts, /dev/shm, /dev/mqueue, /sys read-only, /sys/fs/cgroup read-only), then the
entry's `mounts:` in order; a new mount and pid namespace (unless `pid: host`), the
host's network (`net: host`, here the test's device namespace) or a new one (`net:
new`), the host's ipc and uts; the capability sets exactly `capabilities:` (ambient
`ambient:`), `noNewPrivileges`, `uid`/`gid`/`additionalGids` (numbers: linuxkit reads
a name as a user of its own making), `rlimits`, `readonly`, `devices:` (the node made
in the container's /dev and allowed in its device cgroup); no seccomp, no masked paths.
A key of an entry this script does not translate is an error.

Conditions (`# zedinit runs it only if P exists` comments) have no linuxkit word; the
plan skips an entry whose condition path is absent where that entry would see it (its
bind's host side, else the image's root), as zedinit would have.

--device-bind DEV=FILE  bind FILE over the device node DEV instead of making the node
                        (this machine has no watchdog: a FIFO stands in for it, as in
                        the podman runs); the device cgroup rule stays.
"""
import argparse
import copy
import json
import os
import re
import shutil
import sys

import yaml

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from buildyml2oci import ALL_CAPS  # noqa: E402  (index == capability number)

KNOWN_KEYS = {"name", "image", "command", "capabilities", "ambient", "mounts", "net", "pid",
              "readonly", "uid", "gid", "additionalGids", "noNewPrivileges", "oomScoreAdj",
              "rlimits", "env", "cwd", "devices", "runtime"}

# linuxkit's default mounts for every container (before the entry's own).
DEFAULT_MOUNTS = [
    {"destination": "/proc", "type": "proc", "source": "proc", "options": ["nosuid", "nodev", "noexec", "relatime"]},
    {"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
    {"destination": "/dev/pts", "type": "devpts", "source": "devpts", "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"]},
    {"destination": "/dev/shm", "type": "tmpfs", "source": "shm", "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
    {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": ["nosuid", "noexec", "nodev"]},
    {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", "ro"]},
    {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup", "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]},
]

OWNER = re.compile(r"zedinit makes (\S+) owned by (\S+), mode (\d+): linuxkit's mkdir sets neither")
CONDITION = re.compile(r"zedinit runs it only if (\S+) (exists|does not exist)")


def die(msg):
    print(f"export2oci: {msg}", file=sys.stderr)
    sys.exit(2)


def entries(path):
    """(section, entry, its comment lines) in the export's order: onboot, then services."""
    with open(path) as f:
        text = f.read()
    doc = yaml.safe_load(text)
    # The comments of each entry (YAML readers drop them): the lines between its
    # `- name:` and the next.
    comments, name = {}, None
    for line in text.splitlines():
        m = re.match(r'\s+- name: "?([^"]+)"?$', line)
        if m:
            name = m.group(1)
            comments[name] = []
        elif name and line.strip().startswith("#"):
            comments[name].append(line.strip()[1:].strip())
    out = []
    for section in ("onboot", "services"):
        for e in doc.get(section) or []:
            unknown = sorted(set(e) - KNOWN_KEYS)
            if unknown:
                die(f"{e.get('name')}: keys not translated yet: {unknown} (teach tests/image/export2oci.py)")
            out.append((section, e, comments.get(e["name"], [])))
    return out


def remapper(pairs):
    table = sorted((r.split("=", 1) for r in pairs), key=lambda p: -len(p[0]))

    def remap(path):
        for src, dst in table:
            if path == src or path.startswith(src.rstrip("/") + "/"):
                return dst + path[len(src):]
        return path
    return remap


def where(e, path, remap, image_root):
    """Where `path` (inside the entry's container) is on this machine."""
    best = None
    for m in e.get("mounts") or []:
        d = m["destination"]
        if m["type"] == "bind" and (path == d or path.startswith(d.rstrip("/") + "/")):
            if best is None or len(d) > len(best["destination"]):
                best = m
    if best is not None:
        return remap(best["source"] + path[len(best["destination"]):])
    if path.startswith("/proc/") or path.startswith("/sys/"):
        return path
    # A device node: the host's /dev (remapped: the test's own, with its watchdog FIFO).
    if path.startswith("/dev/"):
        return remap(path)
    return os.path.join(image_root, path.lstrip("/"))


def spec_for(e, base, a, remap):
    spec = copy.deepcopy(base)
    p = spec["process"]
    p["terminal"] = False
    p["args"] = list(e["command"])
    p["env"] = ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"] + list(e.get("env") or [])
    p["cwd"] = e.get("cwd") or "/"
    p["user"] = {"uid": int(e.get("uid", 0)), "gid": int(e.get("gid", 0))}
    if e.get("additionalGids"):
        p["user"]["additionalGids"] = [int(g) for g in e["additionalGids"]]
    caps = list(e.get("capabilities") or [])
    bad = [c for c in caps + list(e.get("ambient") or []) if c not in ALL_CAPS]
    if bad:
        die(f"{e['name']}: unknown capabilities {bad}")
    p["capabilities"] = {k: caps for k in ("bounding", "effective", "inheritable", "permitted")}
    p["capabilities"]["ambient"] = list(e.get("ambient") or [])
    p["noNewPrivileges"] = bool(e.get("noNewPrivileges"))
    p["rlimits"] = []
    for r in e.get("rlimits") or []:
        kind, soft, hard = r.split(",")
        p["rlimits"].append({"type": "RLIMIT_" + kind.upper(), "soft": int(soft), "hard": int(hard)})
    if e.get("oomScoreAdj") is not None:
        p["oomScoreAdj"] = e["oomScoreAdj"]
    p.pop("apparmorProfile", None)
    spec["root"] = {"path": a.rootfs, "readonly": bool(e.get("readonly"))}
    spec.pop("hostname", None)
    linux = spec["linux"]
    ns = [{"type": "mount"}]
    if e.get("pid") != "host":
        ns.append({"type": "pid"})
    if e.get("net", "host") == "host":
        if a.host_netns:
            ns.append({"type": "network", "path": a.host_netns})
    else:
        ns.append({"type": "network"})
    linux["namespaces"] = ns
    linux["maskedPaths"] = []
    linux["readonlyPaths"] = []
    linux.pop("seccomp", None)
    linux["cgroupsPath"] = f"{a.cgroup_parent}/{e['name']}"
    mounts = copy.deepcopy(DEFAULT_MOUNTS)
    for m in e.get("mounts") or []:
        m = dict(m)
        if m["type"] == "bind":
            m["source"] = remap(m["source"])
        mounts.append(m)
    devbind = dict(d.split("=", 1) for d in a.device_bind)
    res = {"devices": [{"allow": False, "access": "rwm"}]}
    devices = []
    for d in e.get("devices") or []:
        res["devices"].append({"allow": True, "type": d["type"], "major": int(d["major"]),
                               "minor": int(d["minor"]), "access": "rwm"})
        if d["path"] in devbind:
            mounts.append({"destination": d["path"], "type": "bind", "source": devbind[d["path"]],
                           "options": ["bind", "rprivate"]})
        else:
            devices.append({"path": d["path"], "type": d["type"], "major": int(d["major"]),
                            "minor": int(d["minor"]), "fileMode": int(str(d.get("mode", "0600")), 8),
                            "uid": 0, "gid": 0})
    # The usual character devices every container gets (null, zero, ...), as containerd's
    # default spec allows them.
    for r in (base.get("linux", {}).get("resources", {}).get("devices") or []):
        if r.get("allow"):
            res["devices"].append(r)
    linux["resources"] = res
    linux["devices"] = devices
    spec["mounts"] = mounts
    return spec


def plan(a):
    with open(a.base) as f:
        base = json.load(f)
    remap = remapper(a.remap)
    os.makedirs(a.out_dir, exist_ok=True)
    for i, (section, e, comments) in enumerate(entries(a.export)):
        name = e["name"]
        skip = None
        for c in comments:
            m = CONDITION.search(c)
            if m:
                exists = os.path.lexists(where(e, m.group(1), remap, a.image_root))
                if exists != (m.group(2) == "exists"):
                    skip = f"{m.group(1)} {'does not exist' if m.group(2) == 'exists' else 'exists'} (zedinit's condition)"
        if skip:
            print(f"skip {section} {name} {skip}")
            continue
        # runtime.mkdir, as linuxkit does (root's), then the owners zedinit gave.
        for d in ((e.get("runtime") or {}).get("mkdir") or []):
            os.makedirs(remap(d), exist_ok=True)
        for c in comments:
            m = OWNER.search(c)
            if m:
                host = where(e, m.group(1), remap, a.image_root)
                user, _, group = m.group(2).partition(":")
                os.makedirs(host, exist_ok=True)
                shutil.chown(host, user=user, group=group or None)
                os.chmod(host, int(m.group(3), 8))
        path = os.path.join(a.out_dir, f"{i:02d}-{name}.json")
        with open(path, "w") as f:
            json.dump(spec_for(e, base, a, remap), f, indent=2)
        print(f"run {section} {name} {path}")


def caps_of(mask):
    return sorted(c for i, c in enumerate(ALL_CAPS) if int(mask, 16) >> i & 1)


def verify(a):
    e = next((e for _, e, _ in entries(a.export) if e["name"] == a.name), None)
    if e is None:
        die(f"{a.name}: not in {a.export}")
    with open(a.probe) as f:
        probe = f.read()
    status = dict(line.split(":", 1) for line in probe.splitlines() if re.match(r"^(Cap\w+|NoNewPrivs|Uid|Gid|Groups):", line))
    status = {k: v.strip() for k, v in status.items()}
    ns = dict(re.findall(r"^ns (\w+) (\S+)$", probe, re.M))
    mounts = {}
    for line in probe.splitlines():
        f = line.split()
        if line.startswith("mi ") and len(f) > 7:
            mounts[f[5]] = f[6].split(",")
    n = a.name
    out = []

    def check(ok, what, detail=""):
        out.append(("ok   " if ok else "FAIL ") + f"[{n}] {what}" + ("" if ok else f": {detail}"))

    caps = sorted(e.get("capabilities") or [])
    bnd = caps_of(status.get("CapBnd", "0"))
    check(bnd == caps, f"CapBnd is exactly its capabilities ({', '.join(caps) or 'none'})", f"have {bnd}")
    uid = int(e.get("uid", 0))
    # A process of another uid keeps only its ambient capabilities across exec.
    want_eff = caps if uid == 0 else sorted(e.get("ambient") or [])
    eff = caps_of(status.get("CapEff", "0"))
    check(eff == want_eff, f"CapEff is {', '.join(want_eff) or 'empty'}", f"have {eff}")
    nnp = "1" if e.get("noNewPrivileges") else "0"
    check(status.get("NoNewPrivs") == nnp, f"NoNewPrivs is {nnp}", f"have {status.get('NoNewPrivs')}")
    check(status.get("Uid", "").split()[:1] == [str(uid)], f"uid {uid}", f"have {status.get('Uid')}")
    gid = int(e.get("gid", 0))
    check(status.get("Gid", "").split()[:1] == [str(gid)], f"gid {gid}", f"have {status.get('Gid')}")
    host_pid = os.readlink("/proc/self/ns/pid")
    if e.get("pid") == "host":
        check(ns.get("pid") == host_pid, "the host's pid namespace (pid: host)", f"{ns.get('pid')} vs {host_pid}")
    else:
        check(ns.get("pid") not in (None, host_pid), "a pid namespace of its own", f"{ns.get('pid')}")
    host_net = os.readlink("/proc/self/ns/net")
    dev_net = "net:[%d]" % os.stat(a.host_netns).st_ino if a.host_netns else host_net
    if e.get("net", "host") == "host":
        check(ns.get("net") == dev_net, "the device's network namespace (net: host)", f"{ns.get('net')} vs {dev_net}")
    else:
        check(ns.get("net") not in (None, host_net, dev_net), "a network namespace of its own (net: new)", f"{ns.get('net')}")
    check(ns.get("mnt") not in (None, os.readlink("/proc/self/ns/mnt")), "a mount namespace of its own", f"{ns.get('mnt')}")
    root_ro = "ro" in mounts.get("/", [])
    check(root_ro == bool(e.get("readonly")), f"root filesystem {'read-only' if e.get('readonly') else 'writable'}", f"{mounts.get('/')}")
    for m in e.get("mounts") or []:
        d = m["destination"]
        want_ro = "ro" in (m.get("options") or [])
        have = mounts.get(d)
        check(have is not None and ("ro" in have) == want_ro,
              f"{m['type']} {d} mounted {'read-only' if want_ro else 'read-write'}", f"{have}")
    print("\n".join(out))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("plan")
    p.add_argument("export")
    p.add_argument("--base", required=True)
    p.add_argument("--out-dir", required=True)
    p.add_argument("--rootfs", required=True)
    p.add_argument("--image-root", help="the image's files, for conditions (default: --rootfs)")
    p.add_argument("--remap", action="append", default=[], metavar="SRC=DST")
    p.add_argument("--host-netns", metavar="PATH")
    p.add_argument("--device-bind", action="append", default=[], metavar="DEV=FILE")
    p.add_argument("--cgroup-parent", default="/zedctr-services")
    v = sub.add_parser("verify")
    v.add_argument("export")
    v.add_argument("name")
    v.add_argument("probe")
    v.add_argument("--host-netns", metavar="PATH")
    a = ap.parse_args()
    if a.cmd == "plan":
        a.image_root = a.image_root or a.rootfs
        plan(a)
    else:
        verify(a)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Writes the seed corpus (fuzz/corpus/<target>/): the repository's own definitions,
build.yml and examples, plus a few hand-made edge cases per target. Run from the
repository root; `bench/fuzz` adds what the fuzzer finds (after `cargo fuzz cmin`)."""
import glob, json, os, struct

ROOT = os.getcwd()
OUT = os.path.join(ROOT, "fuzz", "corpus")


def put(target, name, data):
    d = os.path.join(OUT, target)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def read(path):
    with open(os.path.join(ROOT, path), "rb") as f:
        return f.read()


# Service definitions and their [run] tables.
defs = sorted(glob.glob("rootfs/etc/zedctr/services/*.toml") + glob.glob("demo/services/*.toml"))
for path in defs:
    name = path.replace("/", "_").replace("rootfs_etc_zedctr_services_", "image_").replace("demo_services_", "demo_")
    text = read(path)
    put("definition", name, text)
    if b"\n[run]\n" in text:
        put("export_roundtrip", name, text)
        run = text.split(b"\n[run]\n", 1)[1]
        put("run_table", name, run)
put("definition", "edge_empty", "")
put("definition", "edge_cycle", 'command = ["/bin/x"]\nrequires = ["svc"]\nafter = ["svc"]\n')
put("definition", "edge_all_keys", '''command = ["/bin/app", "--flag"]
type = "longrun"
critical = true
after = ["a"]
requires = ["b"]
condition-path-exists = "!/run/no"
heartbeat = { max-age = "30s" }
[restart]
policy = "on-failure"
backoff-base = "100ms"
backoff-max = "1m"
[stop]
signal = "SIGINT"
timeout = "2s"
[ready]
tcp = "127.0.0.1:80"
timeout = "5s"
''')
put("definition", "edge_bad_values", 'command = []\ntype = "forking"\n[restart]\npolicy = 3\n[stop]\nsignal = "SIGNOPE"\ntimeout = "-1s"\n')
put("run_table", "edge_all_keys", '''uid = "nobody"
gid = 65534
additional-gids = ["adm", 4]
capabilities = ["CAP_NET_ADMIN", "net_raw"]
ambient = ["CAP_NET_ADMIN"]
binds = ["/var/log:/var/log:ro", "/run/x:/run/x"]
mkdir = [{ path = "/run/x/y", owner = "nobody:nogroup", mode = "0750" }]
devices = ["/dev/watchdog"]
net = "none"
pid = "new"
readonly = true
rlimits = ["nofile=1024:4096", "core=0"]
oom-score-adj = -500
no-new-privileges = true
env = { PATH = "/usr/bin", LANG = "C" }
cwd = "/run/x"
''')
put("run_table", "edge_bad", 'binds = ["relative:/x", "/a:/b:zz"]\nrlimits = ["nofile=9:1"]\nuid = -1\nmkdir = [{ path = "../x" }]\n')
put("export_roundtrip", "edge_quoting", '''command = ["/bin/app", "a\\u2028  pid: host", "\\"q\\" #c", "\\u0085"]
[run]
uid = "user\\u2028x"
gid = 7
binds = ["/hostfs/persist/a b:/data\\u2029y"]
env = { "K" = "v\\nnet: host" }
cwd = "/data"
''')

# build.yml.
put("build_yml", "repo_build.yml", read("build.yml"))
put("build_yml", "edge_comments_quotes", 'image: "zed #1" # the image\nconfig:\n  binds:\n    - /etc/ca:/etc/ca:ro\n    - "/a:/b" # why\n    - \'/c:/d:rbind,rshared\'\n')
put("build_yml", "edge_flow_list", 'image: x\nconfig:\n  binds: ["/a:/b"]\n')
put("build_yml", "edge_nested", 'image: x\nconfig:\n  binds:\n    - /:/hostfs\n    - /var/log:/hostfs/var/log/dom0\n  net: host\nonboot:\n  - name: x\n')

# Control protocol: the first byte is the read size minus one.
reqs = [
    {"version": 1, "verb": "status"},
    {"version": 1, "verb": "health"},
    {"version": 1, "verb": "status", "service": "app"},
    {"version": 1, "verb": "logs", "service": "app", "lines": 5, "follow": True},
    {"version": 1, "verb": "restart", "service": "app", "wait_ms": 500},
    {"version": 1, "verb": "stop", "service": "ticker", "wait_ms": 100},
    {"version": 1, "verb": "start", "service": "ticker"},
    {"version": 1, "verb": "signal", "service": "app", "signal": "USR1"},
    {"version": 1, "verb": "reload", "service": "app"},
    {"version": 1, "verb": "rescan"},
    {"version": 1, "verb": "shutdown"},
]
stream = b"".join(json.dumps(r).encode() + b"\n" for r in reqs)
put("control", "every_verb", b"\x07" + stream)
put("control", "one_byte_reads", b"\x00" + json.dumps(reqs[0]).encode() + b"\n")
put("control", "edge_errors", b"\xff" + b'{"version":2,"verb":"status"}\n{"version":1}\nnot json\n\n   \n{"version":1,"verb":"dance"}\n{"version":1,"verb":"signal","service":"app","signal":"99"}\n{"version":1,"verb":"logs"}\n{"version":1,"verb":"status","extra":1}\n{"version":1,"verb":"status"')

# Network instances (also rendered by dnsmasq-render).
full = '''bridge = "bn1"
ipv4 = "10.1.0.1/24"
dhcp-range = "10.1.0.100, 10.1.0.200"
servers = ["1.1.1.1", "2606:4700:4700::1111"]
hosts = [{ name = "app1", ip = "10.1.0.5" }, { name = "db.example", ip = "fd00::5" }]
dhcp-hosts = [
  { mac = "02:00:00:00:00:01", ip = "10.1.0.5", name = "app1" },
  { mac = "02:00:00:00:00:0A", ip = "10.1.0.6" },
]
lease-file = "/run/dnsmasq/bn1.leases"
'''
tables = '''dhcp-range = "10.2.0.10,10.2.0.20"
ipv4 = "10.2.0.1/16"
bridge = "br-blue.2"
[[dhcp-hosts]]
mac = "02:00:00:00:00:02"
name = "app1"
ip = "10.2.0.5"
[[hosts]]
name = "app1"
ip = "10.2.0.5"
'''
minimal = 'bridge = "bn1"\nipv4 = "10.1.0.1/24"\n'
static_only = 'bridge = "bn2"\nipv4 = "192.168.7.1/30"\ndhcp-hosts = [{ mac = "aa:bb:cc:dd:ee:ff", ip = "192.168.7.2" }]\n'
bad = 'bridge = "bn1 x"\nipv4 = "10.1.0.0/24"\ndhcp-range = "10.1.1.200,10.1.0.100"\nservers = ["nope"]\nlease-file = "/etc/shadow"\ncolour = 1\n'
for name, text in [("full", full), ("tables", tables), ("minimal", minimal), ("static_only", static_only), ("edge_bad", bad)]:
    put("netinst_instance", name, text)
    put("dnsmasq_render_roundtrip", name, text)

# dnsmasq lease files.
put("netinst_leases", "dnsmasq", "1767225600 02:00:00:00:00:01 10.1.0.5 app1 01:02:00:00:00:00:01\n0 02:00:00:00:00:0a 10.1.0.6 * *\nduid 00:01:00:01:2c:1f:aa:bb:02:00:00:00:00:ff\n1767225600 1234 fd00::5 app1 00:01:00:01\n")
put("netinst_leases", "edge_bad", "x 02:00:00:00:00:01 10.1.0.5\n1 zz:00 10.1.0.999 a b c d\n\n   \n1767225600 20-01-02-03 10.1.0.7 * *\n18446744073709551616 02:00:00:00:00:01 10.1.0.5 * *\n")

# Downloader requests.
sha = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
put("downloader_request", "good", json.dumps({"name": "ubuntu", "url": "http://10.1.0.5:8080/img.qcow2", "sha256": sha, "size": 123456}))
put("downloader_request", "local_https", json.dumps({"name": "app", "url": "https://app1.local/a", "sha256": sha.upper(), "size": 0, "ca_chain": None}))
put("downloader_request", "bad_pem", json.dumps({"name": "x", "url": "https://x/a", "sha256": sha, "size": 1, "ca_chain": "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"}))
put("downloader_request", "edge_bad", '{"name":"","url":"ftp://x/a","sha256":"abc","size":-1,"colour":1}')
put("downloader_request", "edge_not_object", '[1, "two", {"three": 3}]')

# logtail state files.
state = {"version": 1, "clean": False, "files": [
    {"path": "/var/log/a.log", "dev": 2049, "ino": 77, "born": 5, "offset": 1234, "rotated": False},
    {"path": "/var/log/b.log", "dev": 2049, "ino": 78, "offset": 0},
    {"path": "/var/log/a.log", "dev": 2049, "ino": 79, "born": 0, "offset": 18446744073709551615, "rotated": True},
]}
put("logtail_state", "saved", json.dumps(state))
put("logtail_state", "clean_empty", '{"version":1,"clean":true,"files":[]}')
put("logtail_state", "edge_version", '{"version":9,"clean":true,"files":[]}')

# logtail lines: read size - 1, line limit - 1, then the bytes.
put("logtail_lines", "plain", b"\x0f\x3f" + b"first line\nsecond\r\n\n\tindented\nunfinished")
put("logtail_lines", "long_line", b"\x02\x07" + b"a very long line cut in pieces\nshort\n" + b"x" * 40)
put("logtail_lines", "hostile", b"\xff\xff" + "\x1b[2J\x07title\u009b31m\xc2\n\xff\xfe ok \u2028\n".encode("utf-8", "surrogateescape"))


# DNS / mDNS packets.
def name(n):
    out = b""
    for label in n.split("."):
        out += bytes([len(label)]) + label.encode()
    return out + b"\x00"


def rr(owner, rtype, data, cls=1):
    return owner + struct.pack(">HHIH", rtype, cls, 120, len(data)) + data


a_resp = struct.pack(">HHHHHH", 0x1234, 0x8400, 1, 1, 0, 0) + name("app1.local") + b"\x00\x01\x00\x01" + rr(b"\xc0\x0c", 1, bytes([10, 1, 0, 5]), 0x8001)
multi = struct.pack(">HHHHHH", 0x1234, 0x8400, 0, 3, 0, 1) + rr(name("App1.Local"), 1, bytes([10, 1, 0, 9])) + rr(b"\xc0\x0c", 28, b"\xfd" + b"\x00" * 15) + rr(b"\xc0\x0c", 1, bytes([10, 1, 0, 5])) + rr(name("other.local"), 1, bytes([10, 1, 0, 5]))
loop = struct.pack(">HHHHHH", 0x1234, 0x8400, 0, 1, 0, 0) + b"\xc0\x0c" + b"\x00\x01\x00\x01\x00\x00\x00\x78\x00\x04\x0a\x01\x00\x05"
query = struct.pack(">HHHHHH", 0, 0, 1, 0, 0, 0) + name("app1.local") + b"\x00\x01\x00\x01"
ptr = struct.pack(">HHHHHH", 0, 0x8400, 0, 1, 0, 3) + rr(name("_http._tcp.local"), 12, name("app1._http._tcp.local"))
ptr += rr(name("app1._http._tcp.local"), 33, struct.pack(">HHH", 0, 0, 8080) + name("app1.local"), 0x8001)
ptr += rr(name("app1._http._tcp.local"), 16, b"\x09path=/img", 0x8001)
ptr += rr(name("app1.local"), 1, bytes([10, 1, 0, 5]), 0x8001)
for target in ("localds_dns_answer", "mdns_sd_packet"):
    put(target, "a_response", a_resp)
    put(target, "several_records", multi)
    put(target, "pointer_loop", loop)
    put(target, "query", query)
    put(target, "browse_answer", ptr)
put("localds_dns_answer", "name_text", "app1.local.")

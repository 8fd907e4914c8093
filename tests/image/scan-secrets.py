#!/usr/bin/env python3
"""Scan every layer of an OCI image layout for secrets an image must never carry.

  scan-secrets.py OCI_DIR[:TAG]

Each layer is read on its own, so a file an upper layer deletes (a whiteout) is still
found in the layer that added it: deleting a secret in a later step does not take it
out of the image. Reported, one per line, and exit 1 if any:
  - an ssh host key (etc/ssh/ssh_host_*_key): host keys are made per device at its
    first start (sshd-keys), never baked (init.sh's image shared one across devices);
  - a PEM private key block (`-----BEGIN ... PRIVATE KEY-----` followed by base64), in
    any regular file but programs and libraries (ELF): those carry known test vectors
    (GnuTLS's self-tests embed keys), a baked key is a file of its own;
  - a password hash in etc/shadow or etc/passwd (a field that is not empty, `*`, `!`,
    `!*`, `x`: init.sh's image set a root password at build time).
Exit 0 and a summary line when clean; 2 when the layout can't be read.
"""
import gzip
import json
import os
import re
import sys
import tarfile

PEM = re.compile(rb"-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----\r?\n[A-Za-z0-9+/=\r\n]{64,}")
HOST_KEY = re.compile(r"(^|/)etc/ssh/ssh_host_[a-z0-9]+_key$")
NO_PASSWORD = {"", "*", "!", "!*", "!!", "x"}


def blob(layout, digest):
    algo, hexdigest = digest.split(":", 1)
    return os.path.join(layout, "blobs", algo, hexdigest)


def manifest(layout, tag):
    with open(os.path.join(layout, "index.json")) as f:
        index = json.load(f)
    entries = index["manifests"]
    if tag:
        entries = [m for m in entries
                   if m.get("annotations", {}).get("org.opencontainers.image.ref.name") == tag]
    if len(entries) != 1:
        raise ValueError(f"{layout}: want one manifest{' tagged ' + tag if tag else ''}, found {len(entries)}")
    with open(blob(layout, entries[0]["digest"])) as f:
        return json.load(f)


def open_layer(path):
    with open(path, "rb") as f:
        magic = f.read(2)
    return tarfile.open(fileobj=gzip.open(path) if magic == b"\x1f\x8b" else open(path, "rb"), mode="r|")


def password_hashes(name, data):
    field = 1
    found = []
    for line in data.decode("utf-8", "replace").splitlines():
        parts = line.split(":")
        if len(parts) > field and parts[field] not in NO_PASSWORD:
            found.append(f"{name}: a password hash for {parts[0]}")
    return found


def scan_layer(label, path):
    findings = []
    files = 0
    with open_layer(path) as tar:
        for member in tar:
            if not member.isfile():
                continue
            files += 1
            name = member.name.lstrip("./")
            if HOST_KEY.search(name):
                findings.append(f"{label}: {name}: an ssh host key")
            data = tar.extractfile(member).read()
            if not data.startswith(b"\x7fELF") and PEM.search(data):
                findings.append(f"{label}: {name}: a private key")
            if name in ("etc/shadow", "etc/shadow-", "etc/passwd", "etc/passwd-"):
                findings += [f"{label}: {x}" for x in password_hashes(name, data)]
    return findings, files


def main():
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    layout, _, tag = sys.argv[1].partition(":")
    try:
        layers = manifest(layout, tag)["layers"]
    except (OSError, ValueError, KeyError) as e:
        print(f"scan-secrets: {e}", file=sys.stderr)
        return 2
    findings = []
    total = 0
    for i, layer in enumerate(layers):
        found, files = scan_layer(f"layer {i + 1} ({layer['digest'][:19]})", blob(layout, layer["digest"]))
        findings += found
        total += files
    for f in findings:
        print(f)
    print(f"scan-secrets: {len(layers)} layers, {total} files, {len(findings)} findings")
    return 1 if findings else 0


if __name__ == "__main__":
    sys.exit(main())

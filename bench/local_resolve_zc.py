#!/usr/bin/env python3
"""One python-zeroconf lookup of a `.local` host, for bench/local_resolve.py.

    local_resolve_zc.py browse|host HOST BRIDGE_IP TIMEOUT_MS

browse: a `_workstation._tcp.local.` browse until an instance whose SRV host is HOST
        resolves to an IPv4 address (what EVE's Go downloader does);
host:   python-zeroconf's host lookup, AddressResolverIPv4(HOST).request(zc, timeout).

Bound to the bridge only (Zeroconf(interfaces=[BRIDGE_IP]), IPv4 only). Prints one JSON
line as soon as the answer is known (before closing Zeroconf), with CLOCK_MONOTONIC
stamps in ns so the caller can split the time: "t_main" (the script's first line ran:
interpreter started), "t_imported" (zeroconf imported), "t_zc" (Zeroconf() returned,
sockets bound, its loop thread running), "t_answer". Exit 0 found, 1 not found.
"""

import time

T_MAIN = time.monotonic_ns()

import json  # noqa: E402
import queue  # noqa: E402
import sys  # noqa: E402

from zeroconf import (  # noqa: E402
    AddressResolverIPv4,
    IPVersion,
    ServiceBrowser,
    ServiceListener,
    Zeroconf,
)

T_IMPORTED = time.monotonic_ns()

WORKSTATION = "_workstation._tcp.local."


def norm(name):
    return (name or "").rstrip(".").lower()


def browse(zc, host, deadline):
    names = queue.Queue()

    class Listener(ServiceListener):
        def add_service(self, zc, type_, name):
            names.put(name)

        def update_service(self, zc, type_, name):
            names.put(name)

        def remove_service(self, zc, type_, name):
            pass

    browser = ServiceBrowser(zc, WORKSTATION, listener=Listener())
    try:
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            try:
                name = names.get(timeout=left)
            except queue.Empty:
                return None
            left_ms = int((deadline - time.monotonic()) * 1000)
            if left_ms <= 0:
                return None
            # avahi sends SRV, TXT, A (and AAAA) with the PTR: this is normally a cache hit.
            info = zc.get_service_info(WORKSTATION, name, timeout=left_ms)
            if info is None or norm(info.server) != norm(host):
                continue
            v4 = info.parsed_addresses(IPVersion.V4Only)
            if v4:
                return v4[0]
    finally:
        browser.cancel()


def host_lookup(zc, host, deadline):
    resolver = AddressResolverIPv4(norm(host) + ".")
    left_ms = int((deadline - time.monotonic()) * 1000)
    if resolver.request(zc, left_ms):
        v4 = resolver.parsed_addresses(IPVersion.V4Only)
        if v4:
            return v4[0]
    return None


def main():
    mode, host, bridge_ip, timeout_ms = sys.argv[1:5]
    deadline = time.monotonic() + int(timeout_ms) / 1000
    zc = Zeroconf(interfaces=[bridge_ip], ip_version=IPVersion.V4Only)
    t_zc = time.monotonic_ns()
    try:
        ip = (browse if mode == "browse" else host_lookup)(zc, host, deadline)
        t_answer = time.monotonic_ns()
        print(
            json.dumps(
                {
                    "ip": ip,
                    "t_main": T_MAIN,
                    "t_imported": T_IMPORTED,
                    "t_zc": t_zc,
                    "t_answer": t_answer,
                }
            ),
            flush=True,
        )
    finally:
        zc.close()
    return 0 if ip else 1


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env bash
# The demo device: what a real EVE device has around zedctr, made on this machine.
#
#   netns zdemo-dev (the device; zedinit runs here)   netns zdemo-app (a datastore app)
#     bridge bn-demo 10.77.0.1/24  <--- veth --->      eth0 10.77.0.5/24
#                                                     busybox httpd :80 serving www/
#                                                     avahi-daemon: host-name demo-app
#
#   demo/device.sh up WORK     make it (WORK: a directory for web root, pid files and
#                              the network-instance file WORK/network-instances/demo.toml)
#   demo/device.sh down WORK   remove it (also what `up` does first if it is there)
#
# zedctr itself creates no bridges: on a device zedrouter does; here this script does.
# Traffic never leaves the machine: everything is inside these two namespaces.
set -euo pipefail

# shellcheck source=demo/lib/app-avahi.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib/app-avahi.sh"

DEV=${DEMO_DEV_NS:-zdemo-dev}
APP=${DEMO_APP_NS:-zdemo-app}
BR=bn-demo
APP_IP=10.77.0.5
APP_MAC=02:77:00:00:00:05

up() {
    local work=$1
    down "$work" 2>/dev/null || true
    mkdir -p "$work/www" "$work/network-instances" "$work/run"
    ip netns add "$DEV"
    ip netns add "$APP"
    for ns in "$DEV" "$APP"; do
        # Stray DNS lookups stay inside the namespace (ip netns exec binds this file).
        mkdir -p "/etc/netns/$ns" && echo "nameserver 127.0.0.1" >"/etc/netns/$ns/resolv.conf"
        ip -n "$ns" link set lo up
    done
    ip -n "$DEV" link add "$BR" type bridge stp_state 0
    ip -n "$DEV" addr add 10.77.0.1/24 dev "$BR"
    ip -n "$DEV" link set "$BR" up
    ip -n "$DEV" link add v-demo-app type veth peer name eth0 netns "$APP"
    ip -n "$DEV" link set v-demo-app master "$BR" up
    ip -n "$APP" link set eth0 address "$APP_MAC" multicast on up
    ip -n "$APP" addr add "$APP_IP/24" dev eth0
    ip -n "$APP" route add default via 10.77.0.1
    # The demo image: 16 MiB of random bytes, and its digest for the download request.
    head -c $((16 * 1024 * 1024)) /dev/urandom >"$work/www/demo.img"
    sha256sum "$work/www/demo.img" | cut -d' ' -f1 >"$work/demo.img.sha256"
    # busybox httpd answers Range requests with 206 (resumable downloads).
    ip netns exec "$APP" busybox httpd -f -p "$APP_IP:80" -h "$work/www" &
    echo $! >"$work/run/httpd.pid"
    # The app publishes itself by mDNS (docs/local-datastore.md): the downloader finds
    # http://demo-app.local/ on the bridge. No D-Bus, a private /run for avahi.
    start_app_avahi "$APP" demo-app "$work/avahi"
    echo $! >"$work/run/avahi.pid"
    cat >"$work/network-instances/demo.toml" <<EOT
# The demo's one network instance: the bridge the datastore app hangs off.
bridge = "$BR"
ipv4 = "10.77.0.1/24"
dhcp-range = "10.77.0.100,10.77.0.200"
dhcp-hosts = [{ mac = "$APP_MAC", ip = "$APP_IP", name = "demo-app" }]
hosts = [{ name = "demo-app", ip = "$APP_IP" }]
lease-file = "$work/dnsmasq/$BR.leases"
EOT
    # Wait until the app answers (the veth takes a moment to carry).
    for _ in $(seq 100); do
        ip netns exec "$DEV" busybox wget -q -O /dev/null "http://$APP_IP/demo.img" --spider 2>/dev/null && return 0
        sleep 0.1
    done
    echo "demo/device.sh: the app's HTTP server does not answer" >&2
    return 1
}

down() {
    local work=$1
    for pidfile in "$work/run/httpd.pid" "$work/run/avahi.pid"; do
        if [ -f "$pidfile" ]; then
            kill "$(cat "$pidfile")" 2>/dev/null || true
            rm -f "$pidfile"
        fi
    done
    ip netns pids "$APP" 2>/dev/null | xargs -r kill 2>/dev/null || true
    ip netns del "$APP" 2>/dev/null || true
    ip netns del "$DEV" 2>/dev/null || true
    rm -rf "/etc/netns/$APP" "/etc/netns/$DEV"
}

case "${1:-}" in
    up) up "${2:?WORK directory}" ;;
    down) down "${2:?WORK directory}" ;;
    *) echo "usage: $0 up|down WORK" >&2; exit 2 ;;
esac

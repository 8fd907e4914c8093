# A datastore app's mDNS responder, as the demo device and the image tier's simulated
# device both run it (sourced by demo/device.sh and tests/image/lib/device.sh): a real
# avahi-daemon in the app's network namespace, without D-Bus, in a private /run, with
# its services directory bound from the host side.

# start_app_avahi NETNS HOST-NAME DIR: avahi-daemon in NETNS publishing HOST-NAME.local
# on its eth0; DIR/avahi-daemon.conf its configuration, DIR/services bound at
# /etc/avahi/services, DIR/avahi.log its output. Runs in the background: $! is its pid.
start_app_avahi() {
    local ns=$1 host=$2 dir=$3
    mkdir -p "$dir/services"
    cat >"$dir/avahi-daemon.conf" <<EOT
[server]
host-name=$host
use-ipv6=no
allow-interfaces=eth0
enable-dbus=no
[publish]
publish-workstation=yes
publish-aaaa-on-ipv4=no
EOT
    ip netns exec "$ns" unshare --mount --propagation private sh -c \
        "mount -t tmpfs -o mode=0755 $host-run /run && mount --bind '$dir/services' /etc/avahi/services && exec avahi-daemon --file='$dir/avahi-daemon.conf' --no-rlimits" \
        >"$dir/avahi.log" 2>&1 &
}

# Step 4: the simulated EVE device, and the image run on it.
# Sourced by tests/image/smoke.sh, in its place in the run: it uses the run's
# variables ($tmp, $image, $tag, $repo, $here, ...) and the helpers of lib/common.sh.

# --- 4 the device -------------------------------------------------------------------
# The simulated EVE device (names end in this run's pid; addresses in 10.88.0.0/24):
#   netns zsdev (the device; zedctr's `net: host`)     netns zsapp (a datastore app)
#     bridge bnzs 10.88.0.1/24 <--- veth --->           eth0 10.88.0.5 02:88:00:00:00:05
#       (network instance zs)                             avahi-daemon: zs-app.local
#                              <--- veth --->           busybox httpd :80
#     uplink0 (a veth: the uplink the device's          netns zscli (a DHCP client)
#       config names for tcp-offload)                     eth0 02:88:00:00:00:07, reserved
#                                                         10.88.0.7 as client1
dev_ns=zsdev$$ app_ns=zsapp$$ cli_ns=zscli$$
app_mac=02:88:00:00:00:05 cli_mac=02:88:00:00:00:07

# device_up WORK: the namespaces, the bridge, the app (avahi + httpd) and the client.
device_up() {
    local w=$1 ns
    for ns in "$dev_ns" "$app_ns" "$cli_ns"; do make_netns "$ns" || return 1; done
    ip -n "$dev_ns" link add bnzs type bridge stp_state 0 &&
        ip -n "$dev_ns" addr add 10.88.0.1/24 dev bnzs &&
        ip -n "$dev_ns" link set bnzs up || return 1
    ip -n "$dev_ns" link add vapp type veth peer name eth0 netns "$app_ns" &&
        ip -n "$dev_ns" link set vapp master bnzs up &&
        ip -n "$app_ns" link set eth0 address "$app_mac" multicast on up &&
        ip -n "$app_ns" addr add 10.88.0.5/24 dev eth0 &&
        ip -n "$app_ns" route add default via 10.88.0.1 || return 1
    ip -n "$dev_ns" link add vcli type veth peer name eth0 netns "$cli_ns" &&
        ip -n "$dev_ns" link set vcli master bnzs up &&
        ip -n "$cli_ns" link set eth0 address "$cli_mac" multicast on up || return 1
    # The uplink, GRO on, so "off" is tcp-offload's doing.
    ip -n "$dev_ns" link add uplink0 type veth peer name uplink0p &&
        ip -n "$dev_ns" link set uplink0 up &&
        ip netns exec "$dev_ns" ethtool -K uplink0 gro on || return 1
    # The app's image, served by a real HTTP server, and published by a real avahi
    # (no D-Bus; a private /run).
    mkdir -p "$w/www"
    head -c $((2 * 1024 * 1024)) /dev/urandom > "$w/www/image.img"
    ip netns exec "$app_ns" busybox httpd -f -p 10.88.0.5:80 -h "$w/www" &
    ns_pids+=($!)
    # Killed between phases: no job notice for it.
    disown "$!"
    start_app_avahi "$app_ns" zs-app "$w/avahi"
    ns_pids+=($!)
    # Killed between phases: no job notice for it.
    disown "$!"
    # The DHCP client's script: set the address it was given.
    cat > "$w/udhcpc.sh" <<'EOT'
#!/bin/sh
case $1 in bound | renew) ip addr flush dev "$interface" && ip addr add "$ip/$mask" dev "$interface" ;; esac
EOT
    chmod 755 "$w/udhcpc.sh"
    wait_until 10 grep -q 'Server startup complete' "$w/avahi/avahi.log" || return 1
}

# device_config HOSTDIR WORK: what the device holds for zedctr: the network instance (as
# zedrouter writes it), the operator's authorized key, the uplinks for tcp-offload, and
# a log of the host's.
device_config() {
    local h=$1 w=$2
    mkdir -p "$h/run/zedctr/network-instances" "$h/config/zedctr"
    write_atomically "$h/run/zedctr/network-instances/zs.toml" "$(cat <<EOT
# The device's one network instance: the bridge the app and the client hang off.
bridge = "bnzs"
ipv4 = "10.88.0.1/24"
dhcp-range = "10.88.0.100,10.88.0.200"
dhcp-hosts = [{ mac = "$cli_mac", ip = "10.88.0.7", name = "client1" }]
EOT
)"
    ssh-keygen -q -t ed25519 -N '' -f "$w/id_ed25519" || return 1
    install -m 0600 "$w/id_ed25519.pub" "$h/config/authorized_keys"
    printf '# the device uplinks\nuplink0\n' > "$h/config/zedctr/offload"
    printf 'x: before zedctr\n' > "$h/log/x.log"
    # A critical service of the device's (generated, like dnsmasq@'s): while it is
    # failed, zedinit's health says unhealthy and zedwatchdog must stop feeding.
    cat > "$h/run/zedctr/services/vital.toml" <<'EOT'
command = ["/bin/sh", "-c", "while :; do sleep 1; done"]
critical = true
[restart]
policy = "never"
[run]
capabilities = []
EOT
    # The device's /dev: the nodes zedinit gives every service, and the watchdog. This
    # machine has no watchdog (and no softdog), so a FIFO stands in for it, as in
    # zedwatchdog's own tests: it takes the writes the driver takes and answers no
    # ioctl. A /dev of the test's own, not the host's: a mount point podman made for a
    # bind over the host's /dev/watchdog would be left in the host's /dev, and other
    # tests' conditions would see it.
    mkdir -p "$h/dev" || return 1
    mknod -m 666 "$h/dev/null" c 1 3 && mknod -m 666 "$h/dev/zero" c 1 5 &&
        mknod -m 666 "$h/dev/full" c 1 7 && mknod -m 666 "$h/dev/random" c 1 8 &&
        mknod -m 666 "$h/dev/urandom" c 1 9 && mknod -m 666 "$h/dev/tty" c 5 0 &&
        mkfifo -m 600 "$h/dev/watchdog" || return 1
    # Its reader keeps every byte fed (opened read-write, it never sees an end when
    # the writer closes).
    : > "$w/fed"
    cat 0<>"$h/dev/watchdog" >> "$w/fed" &
    ns_pids+=($!)
    # Killed between phases: no job notice for it.
    disown "$!"
}

# ssh_device ARGS...: ssh from the DHCP client to the device's bridge address.
ssh_device() {
    ip netns exec "$cli_ns" ssh -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR \
        -o BatchMode=yes -o ConnectTimeout=5 "$@"
}

# device_ready LABEL HOST-SIDE WORK: the simulated device up (namespaces, bridge, avahi,
# httpd) with the host-side directories and the device's configuration; says what failed.
device_ready() {
    local label=$1 h=$2 w=$3
    mkdir -p "$w"
    if ! device_up "$w"; then
        bad "[$label] the simulated device (namespaces, bridge, avahi, httpd)" "$(tail -n 5 "$w/avahi/avahi.log" 2>&1)"
        return 1
    fi
    host_dirs "$h"
    device_config "$h" "$w" || { bad "[$label] the device's configuration"; return 1; }
}

run_device() {
    local c=$tag-device h=$tmp/host-device-$engine w=$tmp/device-$engine label="$engine device pid=host" st
    device_ready "$label" "$h" "$w" || return
    start_container "$label" "$c" "$h" host "$dev_ns" || return
    wait_until 10 settled in_container "$c"
    if st=$(status_json in_container "$c"); then
        ok "[$label] supctl status --json parses"
        check_status "$label" "$st" host
    else
        bad "[$label] supctl status --json parses"
    fi
    check_shipped "$label" done running in_container "$c"
    in_container "$c" /usr/bin/supctl status 2>&1 | sed 's/^/     /'
    local fed0
    fed0=$(stat -c %s "$w/fed")
    if wait_until 15 fed_since "$w/fed" "$fed0"; then
        ok "[$label] zedwatchdog feeds /dev/watchdog (the test's FIFO) while all is healthy"
    else
        bad "[$label] zedwatchdog feeds /dev/watchdog while all is healthy" "$(logs_of "$c" 2>&1 | grep zedwatchdog | tail -n 5 | tr '\n' '|')"
    fi

    # tcp-offload: the uplink the device's config names has GRO off.
    check "[$label] tcp-offload turned GRO off on the configured uplink" \
        bash -c "ip netns exec $dev_ns ethtool -k uplink0 | grep -qx 'generic-receive-offload: off'"

    # dnsmasq@bnzs, generated from the network instance, runs inside the image; the
    # client gets its reserved address and the device's DNS answers its name.
    if wait_until 20 service_is dnsmasq@bnzs running in_container "$c"; then
        ok "[$label] dnsmasq@bnzs (generated from the network instance) is running"
    else
        bad "[$label] dnsmasq@bnzs is running" "$(in_container "$c" /usr/bin/supctl status 2>&1 | tr '\n' '|')"
    fi
    if wait_until 30 ip netns exec "$cli_ns" busybox udhcpc -i eth0 -n -q -t 5 -T 1 -s "$w/udhcpc.sh" &&
        ip -n "$cli_ns" -4 addr show eth0 | grep -q 'inet 10.88.0.7/24'; then
        ok "[$label] the DHCP client got its reserved address 10.88.0.7 from the image's dnsmasq"
    else
        bad "[$label] the DHCP client got its reserved address 10.88.0.7" "$(ip -n "$cli_ns" -4 addr show eth0 | tr '\n' ' ')"
    fi
    check "[$label] the lease is in the host's /run/zedctr/dnsmasq/bnzs.leases" \
        grep -q " $cli_mac 10.88.0.7 " "$h/run/zedctr/dnsmasq/bnzs.leases"
    check "[$label] the image's dnsmasq answers client1 with 10.88.0.7" \
        bash -c "ip netns exec $cli_ns busybox nslookup -type=a client1 10.88.0.1 | grep -q 'Address: 10.88.0.7'"

    # A `.local` download requested on the host side ends downloaded, verified, found
    # by mDNS on the bridge.
    local sha size status=$h/run/downloader/status/zs.json
    sha=$(sha256sum "$w/www/image.img" | cut -d' ' -f1) size=$(stat -c %s "$w/www/image.img")
    t=$(date +%s%N)
    if wait_until 20 test -d "$h/run/downloader/config" &&
        write_atomically "$h/run/downloader/config/zs.json" \
            "{\"name\":\"zs\",\"url\":\"http://zs-app.local/image.img\",\"sha256\":\"$sha\",\"size\":$size}" &&
        wait_until 60 jq -e '.state == "downloaded"' "$status"; then
        ok "[$label] a .local download ends downloaded ($(ms_since "$t") ms)"
    else
        bad "[$label] a .local download ends downloaded" "status: $(tr '\n' ' ' < "$status" 2>&1)"
    fi
    check "[$label] its status says the bridge (bnzs) and how the app was found (resolved_by)" \
        jq -e '.bridge == "bnzs" and (.resolved_by | type == "string" and length > 0)' "$status"
    check "[$label] the verified file is on the host side (/persist/downloads/<sha256>)" \
        bash -c "[ \"\$(sha256sum < '$h/persist/downloads/$sha' | cut -d' ' -f1)\" = $sha ]"
    # localds, for operators, finds the same app from inside the container.
    check "[$label] localds resolve zs-app.local (for operators) finds the app on bnzs" \
        bash -c "in_container $c /usr/bin/localds resolve zs-app.local | jq -e '.candidates[0].bridge == \"bnzs\" and .candidates[0].ip == \"10.88.0.5\"'"

    # ssh: a key from the device's authorized_keys logs in; a password never does; the
    # host keys were made on this device, into the host's /persist.
    if wait_until 20 ssh_device -i "$w/id_ed25519" root@10.88.0.1 true &&
        [ "$(ssh_device -i "$w/id_ed25519" root@10.88.0.1 'echo in-as-$(id -u)')" = in-as-0 ]; then
        ok "[$label] ssh from the client with the device's key logs in as root"
    else
        bad "[$label] ssh from the client with the device's key logs in as root" \
            "$(ssh_device -i "$w/id_ed25519" root@10.88.0.1 true 2>&1 | tail -n 2 | tr '\n' ' ')"
    fi
    check "[$label] ssh with a password is refused (only keys are offered)" \
        bash -c "ip netns exec $cli_ns ssh -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o BatchMode=yes -o ConnectTimeout=5 -o PubkeyAuthentication=no -o PreferredAuthentications=password,keyboard-interactive root@10.88.0.1 true 2>&1 | grep -q 'Permission denied (publickey)'"
    # Service output reaches the container's stdout/stderr (EVE's log pipeline), each
    # line tagged by zedinit with the service and stream.
    check "[$label] service output is on the container's stderr, tagged (sshd.err: Accepted publickey)" \
        bash -c "logs_of $c 2>&1 >/dev/null | grep -q '^sshd.err: Accepted publickey for root'"
    check "[$label] the device's ssh host key was made at first start, in the host's /persist" \
        bash -c "[ \"\$(stat -c %a '$h/persist/ssh/etc/ssh/ssh_host_ed25519_key')\" = 600 ]"

    # logtail prints what is appended to a log on the host's /var/log.
    printf 'x: appended by the host %s\n' "$$" >> "$h/log/x.log"
    # logtail writes to the container's stdout itself (`log = "console"`).
    if wait_until 15 bash -c "logs_of $c 2>/dev/null | grep -qF '/var/log/x.log: x: appended by the host $$'"; then
        ok "[$label] logtail prints a line appended to the host's /var/log/x.log"
    else
        bad "[$label] logtail prints a line appended to the host's /var/log/x.log" "$(logs_of "$c" 2>&1 | tail -n 5 | tr '\n' '|')"
    fi

    check_container "$label" "$c" "$h" "$st"
    withhold_and_reset "$label" "$c" "$h" "$w" || return
    # The device after the reset: the same host side, a new container.
    label="$engine device after the reset" c=$tag-device2
    start_container "$label" "$c" "$h" host "$dev_ns" || return
    local last=$h/persist/zedctr/watchdog/last-boot.json
    if wait_until 20 jq -e '(.reason | test("stopped feeding.*vital")) and .previous_withholding != null' "$last"; then
        ok "[$label] the reason is recorded in the host's /persist (last-boot.json: $(jq -r .reason "$last"))"
    else
        bad "[$label] last-boot.json in the host's /persist gives the reason" "$(tr '\n' ' ' < "$last" 2>&1)"
    fi
    check "[$label] the previous boot's withholding.json was taken into last-boot.json" \
        test ! -e "$h/persist/zedctr/watchdog/withholding.json"
    fed0=$(stat -c %s "$w/fed")
    check "[$label] vital runs again and the watchdog is fed again" wait_until 15 fed_since "$w/fed" "$fed0"
    stop_container "$label" "$c"
}

# withhold_and_reset LABEL CONTAINER HOSTDIR WORK: the critical test service fails:
# zedwatchdog stops feeding and writes why to the host's /persist at once. Then the
# hardware's reset, played by SIGKILL of the whole container: nothing disarms or
# cleans up. Returns 1 if the container could not be reset.
withhold_and_reset() {
    local label=$1 c=$2 h=$3 w=$4 pid fed0 held=$h/persist/zedctr/watchdog/withholding.json
    pid=$(status_json in_container "$c" | jq -r '.services[] | select(.name == "vital") | .pid // empty')
    if [ -z "$pid" ]; then
        bad "[$label] the critical test service vital is running" "$(in_container "$c" /usr/bin/supctl status 2>&1 | grep -E '^vital ' | tr -s ' ')"
        return 1
    fi
    # pid: host, so zedinit's pid of it is the host's.
    kill -KILL "$pid"
    if wait_until 20 jq -e '.reasons | tostring | test("vital")' "$held"; then
        ok "[$label] vital (critical) failed: zedwatchdog withholds and says why in the host's /persist ($(jq -c .reasons "$held"))"
    else
        bad "[$label] withholding.json in the host's /persist names vital" "$(tr '\n' ' ' < "$held" 2>&1)"
    fi
    # Not fed: nothing more reaches the device for over two of its 5 s rounds.
    fed0=$(stat -c %s "$w/fed")
    sleep 12
    if [ "$(stat -c %s "$w/fed")" = "$fed0" ]; then
        ok "[$label] while vital is failed the watchdog is not fed (12 s, over two rounds)"
    else
        bad "[$label] while vital is failed the watchdog is not fed" "$fed0 -> $(stat -c %s "$w/fed") bytes"
    fi
    kill_container "$c"
    check "[$label] the withholding record outlives the reset" test -s "$held"
    # A reset is a new boot; the kernel's boot_id can't change here, so the record is
    # made the previous boot's, as zedwatchdog's own tests do.
    write_atomically "$held" "$(jq -c '.boot_id = "an-earlier-boot"' "$held")" || return 1
}

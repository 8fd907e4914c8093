# The run-time fixture and the checks every container of the image gets.
# Sourced by tests/image/smoke.sh, in its place in the run: it uses the run's
# variables ($tmp, $image, $tag, $repo, $here, ...) and the helpers of lib/common.sh.

# --- the run-time fixture ---------------------------------------------------------
# host_dirs DIR: a fake host for build.yml's bind sources, with three test definitions
# in what the container sees as /run/zedctr/services (beside the image's own).
host_dirs() {
    local h=$1
    mkdir -p "$h"/{run/zedctr/services,config,log,persist}
    cp /etc/resolv.conf "$h/resolv.conf" 2>/dev/null || : > "$h/resolv.conf"
    cat > "$h/run/zedctr/services/hello.toml" <<'EOT'
# A oneshot: ticker waits for it to succeed.
command = ["/bin/true"]
type = "oneshot"
# Generated definitions must be confined (zedinit refuses them otherwise).
[run]
capabilities = []
EOT
    cat > "$h/run/zedctr/services/ticker.toml" <<'EOT'
# A longrun started after hello.
command = ["/bin/sh", "-c", "while :; do sleep 1; done"]
after = ["hello"]
[run]
capabilities = []
EOT
    cat > "$h/run/zedctr/services/orphans.toml" <<'EOT'
# Leaves two orphans: their parent exits at once, so they are re-parented to zedinit
# (PID 1, or the child subreaper under pid: host) and must be reaped there. Not in a pid
# namespace of its own (pid = "host"), or they would die with it.
command = ["/bin/sh", "-c", "sleep 0.2 & sleep 0.3 & exit 0"]
type = "oneshot"
[run]
capabilities = []
EOT
}
# remaps DIR: buildyml2oci.py options that point build.yml's bind sources into DIR.
# /dev stays the real one: the container needs real device nodes, as on EVE.
remaps() {
    local h=$1
    echo --remap "/run=$h/run" --remap "/var/config=$h/config" --remap "/var/log=$h/log" \
        --remap "/persist=$h/persist" --remap "/etc/resolv.conf=$h/resolv.conf"
    # A /dev of the run's own (the device run's, with its watchdog), else the host's.
    if [ -d "$h/dev" ]; then echo --remap "/dev=$h/dev"; fi
}
# Capabilities the container should have: build.yml's, minus those this machine lacks.
want_caps=$(python3 "$here/buildyml2oci.py" "$repo/build.yml" --caps --drop-missing-caps 2>/dev/null |
    tr '[:upper:]' '[:lower:]' | sort | paste -sd, -)

# service_state JSON NAME: the state of one service in `supctl status --json`.
service_state() { jq -r --arg n "$2" '.services[] | select(.name == $n) | .state' <<<"$1"; }
# status_json EXEC...: `supctl status --json` through an exec command, printed if it parses.
status_json() {
    local out
    out=$("$@" /usr/bin/supctl status --json 2>/dev/null) && jq -e . >/dev/null 2>&1 <<<"$out" && echo "$out"
}
# service_is NAME STATE EXEC...: service NAME is in STATE.
service_is() {
    local name=$1 want=$2 st
    shift 2
    st=$(status_json "$@") && [ "$(service_state "$st" "$name")" = "$want" ]
}
# settled EXEC...: hello done and ticker running.
settled() {
    local st
    st=$(status_json "$@") || return 1
    [ "$(service_state "$st" hello)" = "done" ] && [ "$(service_state "$st" ticker)" = running ]
}
# orphans_reaped EXEC...: zedinit counted the orphans the `orphans` service left.
orphans_reaped() {
    local st
    st=$(status_json "$@") && jq -e '.supervisor.reaped_orphans >= 2' >/dev/null <<<"$st"
}
# write_atomically FILE TEXT: as writers should (a hidden name, then a rename), so the
# watcher never reads half a file.
write_atomically() {
    local dir name
    dir=$(dirname "$1") name=$(basename "$1")
    printf '%s' "$2" > "$dir/.$name.tmp" && mv "$dir/.$name.tmp" "$1"
}
# downloader_sees_instances EXEC...: the running downloader's own mounts hold the network
# instances and the lease directory, both read-only (mountinfo, as the downloader's root
# shows them: field 5 the mount point, field 6 its options).
downloader_sees_instances() {
    local st pid
    st=$(status_json "$@") || return 1
    pid=$(jq -r '.services[] | select(.name == "downloader") | .pid // empty' <<<"$st")
    [ -n "$pid" ] || return 1
    "$@" cat "/proc/$pid/mountinfo" | awk '
        $5 == "/run/zedctr/network-instances" && $6 ~ /^ro(,|$)/ { ni = 1 }
        $5 == "/run/zedctr/dnsmasq" && $6 ~ /^ro(,|$)/ { leases = 1 }
        END { exit !(ni && leases) }'
}

# check_status LABEL JSON PIDMODE: zedinit's place, and the test definitions.
check_status() {
    local label=$1 st=$2 pidmode=$3 s
    if [ "$pidmode" = new ]; then
        check "[$label] supervisor.pid == 1 (zedinit is PID 1)" jq -e '.supervisor.pid == 1' <<<"$st"
    else
        check "[$label] supervisor.pid != 1 (pid: host)" jq -e '.supervisor.pid != 1' <<<"$st"
        check "[$label] supervisor.subreaper == true" jq -e '.supervisor.subreaper == true' <<<"$st"
    fi
    s=$(service_state "$st" hello)
    if [ "$s" = "done" ]; then ok "[$label] hello (oneshot) is done"; else bad "[$label] hello (oneshot) is done" "state '${s}'"; fi
    s=$(service_state "$st" ticker)
    if [ "$s" = running ]; then ok "[$label] ticker is running"; else bad "[$label] ticker is running" "state '${s}'"; fi
}

# check_shipped LABEL OFFLOAD WATCHDOG EXEC...: the image's own services, each in the
# state this machine allows: running or done; skipped where their condition's path is
# absent (no Xen, no device-steps hook, no IPsec configuration; tcp-offload without an
# offload file unless OFFLOAD=done; zedwatchdog without a device unless WATCHDOG=running).
check_shipped() {
    local label=$1 offload=$2 watchdog=$3 pair name want
    shift 3
    for pair in zedctr-dirs=done downloader=running logtail=running dnsmasq-render=running \
        sshd-keys=done sshd=running crond=running "tcp-offload=$offload" xen=skipped \
        device-steps=skipped strongswan=skipped; do
        name=${pair%%=*} want=${pair#*=}
        if wait_until 20 service_is "$name" "$want" "$@"; then
            ok "[$label] the image's $name is $want"
        else
            bad "[$label] the image's $name is $want" "$("$@" /usr/bin/supctl status 2>&1 | grep -E "^($name) " | tr -s ' ')"
        fi
    done
    check_watchdog "$label" "$watchdog" "$@"
}

# check_watchdog LABEL WANT EXEC...: zedwatchdog is WANT: `skipped` where the container
# has no /dev/watchdog (its condition), `running` where the test gave it one.
check_watchdog() {
    local label=$1 want=$2
    shift 2
    if wait_until 10 service_is zedwatchdog "$want" "$@"; then
        ok "[$label] the image's zedwatchdog is $want"
    else
        bad "[$label] the image's zedwatchdog is $want" "$("$@" /usr/bin/supctl status 2>&1 | tr '\n' '|')"
    fi
}

# fed_since FILE SIZE: the watchdog FIFO's reader has taken more than SIZE bytes.
fed_since() { [ "$(stat -c %s "$1")" -gt "$2" ]; }

# check_container LABEL CONTAINER HOSTDIR ZEDINIT_STATUS: the container's own checks.
check_container() {
    local label=$1 c=$2 h=$3 st=$4
    check "[$label] the image carries dnsmasq for dnsmasq@<bridge>" in_container "$c" /usr/sbin/dnsmasq --version
    if wait_until 10 downloader_sees_instances in_container "$c"; then
        ok "[$label] the downloader's root has /run/zedctr/network-instances and /run/zedctr/dnsmasq, read-only"
    else
        bad "[$label] the downloader's root has /run/zedctr/network-instances and /run/zedctr/dnsmasq, read-only"
    fi
    if wait_until 5 orphans_reaped in_container "$c"; then
        ok "[$label] orphans re-parented to zedinit are reaped (supervisor.reaped_orphans >= 2)"
    else
        bad "[$label] orphans re-parented to zedinit are reaped" \
            "reaped_orphans=$(status_json in_container "$c" | jq -c '.supervisor.reaped_orphans')"
    fi
    # zedinit runs with build.yml's capabilities, no more and no fewer.
    local zpid capeff have
    zpid=$(jq -r '.supervisor.pid // empty' <<<"${st:-null}" 2>/dev/null)
    capeff=$(in_container "$c" cat "/proc/${zpid:-1}/status" 2>/dev/null | awk '/^CapEff:/ {print $2}')
    have=$(capsh --decode="${capeff:-0}" 2>/dev/null | sed 's/.*=//' | tr ',' '\n' | grep . | sort | paste -sd, -)
    if [ -n "$capeff" ] && [ "$have" = "$want_caps" ]; then
        ok "[$label] zedinit's CapEff == build.yml capabilities"
    else
        bad "[$label] zedinit's CapEff == build.yml capabilities" "have '$have', want '$want_caps'"
    fi
    # The write must fail for the right reason (not because exec itself failed).
    check "[$label] root filesystem is read-only" \
        bash -c "in_container $c sh -c ': > /zedctr-ro-probe' 2>&1 | grep -q 'Read-only file system'"
    check "[$label] control socket on the host side of /run ($h/run/zedctr/control.sock)" \
        test -S "$h/run/zedctr/control.sock"
    # The host (e.g. another EVE container sharing /run) can talk to zedinit directly.
    check "[$label] host-side supctl over the bound socket" \
        "$bin_dir/supctl" --control-socket "$h/run/zedctr/control.sock" status
}

# stop_container LABEL CONTAINER: SIGTERM (podman stop, ctr tasks kill); zedinit's ordered
# shutdown ends with 0 (2 would mean a service missed its stop timeout and needed SIGKILL).
stop_container() {
    local label=$1 c=$2 code stop_ms
    t=$(date +%s%N)
    stop_engine "$c"
    code=$stop_code
    stop_ms=$(ms_since "$t")
    if [ "$code" = 0 ] && logs_of "$c" 2>&1 | grep -q 'zedinit: shutdown complete' &&
        ! logs_of "$c" 2>&1 | grep -q 'did not stop within'; then
        ok "[$label] stopped (SIGTERM): every service stopped in its turn, exit code 0 ($stop_ms ms)"
    else
        bad "[$label] stopped (SIGTERM): exit code 0, no service needed SIGKILL" "exit code '$code' after $stop_ms ms"
        logs_of "$c" 2>&1 | tail -n 30 | sed 's/^/     log: /'
    fi
    [ "${ZEDCTR_SMOKE_KEEP:-0}" = 1 ] || remove_container "$c"
}

# start_container LABEL CONTAINER HOSTDIR PIDMODE NETNS: the image with build.yml's
# settings under $engine, net: host being NETNS; waits for supctl. Returns 1 if it did
# not start.
start_container() {
    local label=$1 c=$2 h=$3 pidmode=$4 netns=$5
    t=$(date +%s%N)
    start_engine "$c" "$h" "$pidmode" "$netns" || { bad "[$label] $engine run" "$(tail -n 5 "$tmp/run-$c.log" 2>&1)"; return 1; }
    if wait_until 10 in_container "$c" /usr/bin/supctl status; then
        ok "[$label] supctl status inside the container (after $(ms_since "$t") ms)"
    else
        bad "[$label] supctl status inside the container (10 s deadline)"
        logs_of "$c" 2>&1 | tail -n 30 | sed 's/^/     log: /'
        return 1
    fi
}

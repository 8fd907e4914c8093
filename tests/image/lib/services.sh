# Step 7: each exported service as its own container under containerd.
# Sourced by tests/image/smoke.sh, in its place in the run: it uses the run's
# variables ($tmp, $image, $tag, $repo, $here, ...) and the helpers of lib/common.sh.

# --- 7 each exported service as its own container under containerd -----------------
# `supctl export linuxkit` of the image's own definitions (names made numbers through
# the image's /etc/passwd), each entry turned into an OCI spec (export2oci.py) and run
# from the same imported image on the simulated device: the oneshots (onboot) first, in
# the export's order, each to its end; then every service at once, as linuxkit does.
# A probe (a container of the same spec, its command a shell reading /proc/self) shows
# what each gets: capabilities, no-new-privileges, ids, namespaces, mounts, compared
# with the entry. Then the features, each from its own container.
svc_probe='cat /proc/self/status; for n in pid net mnt; do echo "ns $n $(readlink /proc/self/ns/$n)"; done; sed "s/^/mi /" /proc/self/mountinfo'
svc_running() { ctd tasks ls 2>/dev/null | awk -v id="$1" '$1 == id && $3 == "RUNNING" {f = 1} END {exit !f}'; }
run_services() {
    local label="exported" h=$tmp/host-svc w=$tmp/svc x=$tmp/svc/export.yml
    local kind section name spec code c
    local -a planned=() longruns=()
    device_ready "$label" "$h" "$w" || return
    if "$bin_dir/supctl" export linuxkit --services-dir "$ctd_dir/rootfs/etc/zedctr/services" \
        --build-yml "$repo/build.yml" --root "$ctd_dir/rootfs" > "$x" 2> "$w/export.err"; then
        ok "[$label] supctl export linuxkit of the image's definitions ($(grep -c '^  - name:' "$x") entries)"
    else
        bad "[$label] supctl export linuxkit of the image's definitions" "$(tr '\n' '|' < "$w/export.err")"
        return
    fi
    check "[$label] uid and gid are numbers in the export (linuxkit reads names as its own users)" \
        bash -c "! grep -E '^    (uid|gid): [^0-9]' '$x'"
    # shellcheck disable=SC2046
    if ! python3 "$here/export2oci.py" plan "$x" --base "$tmp/ctd-spec.json" --out-dir "$w/specs" \
        --rootfs "$ctd_dir/rootfs" $(remaps "$h") --host-netns "/run/netns/$dev_ns" \
        --device-bind "/dev/watchdog=$h/dev/watchdog" --cgroup-parent "/zedctr-smoke-$$-svc" > "$w/plan" 2> "$w/plan.err"; then
        bad "[$label] export2oci.py plan" "$(tail -n 5 "$w/plan.err" | tr '\n' '|')"
        return
    fi
    sed 's/^/     plan: /' "$w/plan"
    while read -r kind section name spec; do
        case $kind in
        skip) ok "[$label] $name ($section) not run: $spec" ;;
        run) planned+=("$section $name $spec") ;;
        esac
    done < "$w/plan"

    # The oneshots, in order, each to its end.
    local entry
    for entry in "${planned[@]}"; do
        read -r section name spec <<<"$entry"
        [ "$section" = onboot ] || continue
        c=$tag-svc-$name
        ctd_ids+=("$c")
        timeout 60 ctr -a "$ctd_sock" run --rm --config "$spec" "$c" < /dev/null > "$tmp/run-$c.out" 2> "$tmp/run-$c.err"
        code=$?
        if [ "$code" = 0 ]; then
            ok "[$label] onboot $name ran to exit 0 in a container of its own"
        else
            bad "[$label] onboot $name ran to exit 0" "exit $code: $(tail -n 3 "$tmp/run-$c.err" | tr '\n' '|')"
        fi
    done
    check "[$label] tcp-offload (onboot) turned GRO off on the configured uplink" \
        bash -c "ip netns exec $dev_ns ethtool -k uplink0 | grep -qx 'generic-receive-offload: off'"
    check "[$label] zedctr-dirs (onboot) made the shared directories on the host side" \
        test -d "$h/run/crond" -a -d "$h/run/zedctr/dnsmasq" -a -d "$h/persist/zedctr/watchdog"
    check "[$label] sshd-keys (onboot) made the device's host keys in the host's /persist" \
        test -s "$h/persist/ssh/etc/ssh/ssh_host_ed25519_key"

    # What each container gets, read from inside one of exactly its spec.
    for entry in "${planned[@]}"; do
        read -r section name spec <<<"$entry"
        c=$tag-probe-$name
        jq --arg p "$svc_probe" '.process.args = ["/bin/sh", "-c", $p]' "$spec" > "$w/probe-$name.json"
        ctd_ids+=("$c")
        if ! timeout 30 ctr -a "$ctd_sock" run --rm --config "$w/probe-$name.json" "$c" < /dev/null > "$w/probe-$name.out" 2>&1; then
            bad "[$label] $name: a probe of its spec ran" "$(tail -n 3 "$w/probe-$name.out" | tr '\n' '|')"
            continue
        fi
        local line
        while IFS= read -r line; do
            case $line in
            "ok   "*) ok "[$label] ${line#ok   }" ;;
            "FAIL "*) bad "[$label] ${line#FAIL }" ;;
            esac
        done < <(python3 "$here/export2oci.py" verify "$x" "$name" "$w/probe-$name.out" --host-netns "/run/netns/$dev_ns" 2>&1)
    done

    # The services, all at once (linuxkit's services: have no order).
    for entry in "${planned[@]}"; do
        read -r section name spec <<<"$entry"
        [ "$section" = services ] || continue
        c=$tag-svc-$name
        ctd_ids+=("$c")
        ctr -a "$ctd_sock" run --rm --config "$spec" "$c" < /dev/null > "$tmp/run-$c.out" 2> "$tmp/run-$c.err" &
        ctr_pids[$c]=$!
        longruns+=("$name")
    done
    for name in "${longruns[@]}"; do
        if wait_until 10 svc_running "$tag-svc-$name"; then
            ok "[$label] service $name is running in a container of its own"
        else
            bad "[$label] service $name is running" "$(tail -n 3 "$tmp/run-$tag-svc-$name.err" | tr '\n' '|')"
        fi
    done

    # dnsmasq-render --supervise serves the bridge itself: the reserved lease, the name.
    if wait_until 30 ip netns exec "$cli_ns" busybox udhcpc -i eth0 -n -q -t 5 -T 1 -s "$w/udhcpc.sh" &&
        ip -n "$cli_ns" -4 addr show eth0 | grep -q 'inet 10.88.0.7/24'; then
        ok "[$label] dnsmasq-render (its own container) serves bnzs: the client got 10.88.0.7"
    else
        bad "[$label] dnsmasq-render serves bnzs: the client got 10.88.0.7" "$(tail -n 5 "$tmp/run-$tag-svc-dnsmasq-render.err" | tr '\n' '|')"
    fi
    check "[$label] the image's dnsmasq (under dnsmasq-render) answers client1 with 10.88.0.7" \
        bash -c "ip netns exec $cli_ns busybox nslookup -type=a client1 10.88.0.1 | grep -q 'Address: 10.88.0.7'"
    # The downloader (uid 65534, no capabilities) verifies a .local download.
    local sha size status=$h/run/downloader/status/zs.json
    sha=$(sha256sum "$w/www/image.img" | cut -d' ' -f1) size=$(stat -c %s "$w/www/image.img")
    if write_atomically "$h/run/downloader/config/zs.json" \
        "{\"name\":\"zs\",\"url\":\"http://zs-app.local/image.img\",\"sha256\":\"$sha\",\"size\":$size}" &&
        wait_until 60 jq -e '.state == "downloaded"' "$status" &&
        [ "$(sha256sum < "$h/persist/downloads/$sha" | cut -d' ' -f1)" = "$sha" ]; then
        ok "[$label] the downloader (its own container) verified a .local download into the host's /persist"
    else
        bad "[$label] the downloader verified a .local download" "status: $(tr '\n' ' ' < "$status" 2>&1) $(tail -n 3 "$tmp/run-$tag-svc-downloader.err" | tr '\n' '|')"
    fi
    # logtail follows the host's log (its output is its container's stdout).
    printf 'x: appended for the exported logtail %s\n' "$$" >> "$h/log/x.log"
    if wait_until 15 grep -qF "/var/log/x.log: x: appended for the exported logtail $$" "$tmp/run-$tag-svc-logtail.out"; then
        ok "[$label] logtail (its own container) follows the host's /var/log/x.log"
    else
        bad "[$label] logtail follows the host's /var/log/x.log" "$(tail -n 3 "$tmp/run-$tag-svc-logtail.out" "$tmp/run-$tag-svc-logtail.err" | tr '\n' '|')"
    fi
    # sshd, with the keys sshd-keys made, lets the device's key in.
    if wait_until 20 ssh_device -i "$w/id_ed25519" root@10.88.0.1 true; then
        ok "[$label] sshd (its own container) lets the device's key in"
    else
        bad "[$label] sshd lets the device's key in" "$(tail -n 3 "$tmp/run-$tag-svc-sshd.err" | tr '\n' '|')"
    fi
    # zedwatchdog --without-zedinit feeds (the test's FIFO for /dev/watchdog).
    local fed0
    fed0=$(stat -c %s "$w/fed")
    if wait_until 15 fed_since "$w/fed" "$fed0"; then
        ok "[$label] zedwatchdog --without-zedinit (its own container) feeds /dev/watchdog"
    else
        bad "[$label] zedwatchdog --without-zedinit feeds /dev/watchdog" "$(tail -n 3 "$tmp/run-$tag-svc-zedwatchdog.err" | tr '\n' '|')"
    fi

    # Each stops on SIGTERM (ctr tasks kill), as linuxkit's shutdown asks. The init of a
    # pid namespace ignores a signal it neither catches nor blocks (pid_namespaces(7)):
    # cron has no SIGTERM handler, so, as zedinit does, SIGKILL instead (under linuxkit
    # it would wait for its stop timeout).
    local hpid how
    for name in "${longruns[@]}"; do
        t=$(date +%s%N)
        hpid=$(ctd tasks ls 2>/dev/null | awk -v id="$tag-svc-$name" '$1 == id {print $2}')
        how=SIGTERM
        if [ -n "$hpid" ] && ! jq -e '.linux.namespaces | any(.type == "pid" and (.path // "") == "")' \
            "$w/specs/"*"-$name.json" > /dev/null 2>&1; then
            : # pid: host: not a namespace init
        elif [ -n "$hpid" ] && [ $(( (0x$(awk '/^SigCgt:/ {print $2}' "/proc/$hpid/status") |
            0x$(awk '/^SigBlk:/ {print $2}' "/proc/$hpid/status")) >> 14 & 1 )) = 0 ]; then
            # Neither caught nor blocked (a signalfd reader blocks it): dropped.
            how="SIGKILL (PID 1 of its namespace, no SIGTERM handler)"
            ctd tasks kill -s SIGKILL "$tag-svc-$name" > /dev/null 2>&1
        fi
        stop_engine "$tag-svc-$name"
        if ! svc_running "$tag-svc-$name" && [ "$(ms_since "$t")" -lt 20000 ]; then
            ok "[$label] service $name stopped on $how (exit $stop_code, $(ms_since "$t") ms)"
        else
            bad "[$label] service $name stopped on $how within 20 s" "exit $stop_code"
        fi
    done
}

#!/bin/bash
# Image tier smoke test (DESIGN.md "Tests, in tiers", 4): build ./Dockerfile offline with
# the host-built zedinit and supctl, run it the way build.yml says, and check zedinit
# supervises services from inside the container, as PID 1 and under `pid: host`.
#
#   sudo tests/image/smoke.sh          (or run by the README's test command)
#
# Needs root (podman as root, runc). Not root: a loud skip, exit 0; with CI=true: exit 1.
# Packages: scripts/install-deps.
#
# Environment:
#   ZEDCTR_BIN_DIR      where zedinit and supctl are (default target/release; if they
#                       are missing there, `cargo build --release` makes them)
#   ZEDCTR_IMAGE_DIR    the tier's own podman store and cache (default /var/tmp/zedctr-image)
#   ZEDCTR_SMOKE_KEEP=1 keep containers and the temporary directory, for a post-mortem
#   ZEDCTR_SMOKE_RUNC=0 skip the plain-OCI-bundle-under-runc check
#
# What it does:
#   1 base image once per machine (mmdebstrap + podman import, cached in the store)
#   2 podman build --pull=never --network=none of a context made of the binaries,
#     the Dockerfile and rootfs/
#   3 for pid in new, host: podman run with build.yml's settings, every bind source
#     remapped into a temporary host directory (never the real /run, /var/log, /), with
#     two service definitions written into the host side of /run/zedctr/services;
#     checks; podman stop; exit code
#   4 the same image as a plain OCI bundle (skopeo + umoci) under runc, pid new
# Every check prints "ok" or "FAIL"; the last line is "N passed, N failed"; the exit
# code is non-zero when anything failed.

# Functions called through trap, check and wait_until look unreachable to shellcheck.
# shellcheck disable=SC2317
set -uo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
here=$repo/tests/image
# Resolved against the caller's directory, before anything changes it.
bin_dir=$(realpath -m "${ZEDCTR_BIN_DIR:-$repo/target/release}")

if [ "$(id -u)" != 0 ]; then
    if [ "${CI:-}" = true ]; then
        echo "FAIL tests/image/smoke.sh needs root (podman and runc as root); CI=true, so this is a failure" >&2
        exit 1
    fi
    cat >&2 <<'EOM'
######################################################################
##  SKIPPED: image tier (tests/image/smoke.sh) needs root.          ##
##  The container image was NOT built or tested.                    ##
##  Run:  sudo tests/image/smoke.sh                                 ##
######################################################################
EOM
    exit 0
fi

missing=()
for tool in podman runc skopeo umoci mmdebstrap jq python3 capsh flock; do
    command -v "$tool" >/dev/null || missing+=("$tool")
done
python3 -c 'import yaml' 2>/dev/null || missing+=(python3-yaml)
if [ ${#missing[@]} -gt 0 ]; then
    echo "FAIL missing tools: ${missing[*]} (run scripts/install-deps)" >&2
    exit 1
fi

# shellcheck source=tests/image/podman-env.sh
. "$here/podman-env.sh"

# One image tier at a time per machine: runs share the store and the image tag.
exec 9>"$ZEDCTR_IMAGE_DIR/lock"
if ! flock -n 9; then
    echo "zedctr image: another image test holds $ZEDCTR_IMAGE_DIR/lock; waiting (up to 10 min)" >&2
    flock -w 600 9 || { echo "FAIL could not get $ZEDCTR_IMAGE_DIR/lock" >&2; exit 1; }
fi

# Holding the lock, anything left by an earlier run that was killed (SIGKILL, reboot)
# is stale: remove its containers and temporary directories.
podman ps -a --filter name=zedctr-smoke- --format '{{.Names}}' 2>/dev/null |
    xargs -r podman rm -f -t 0 >/dev/null 2>&1
runc --root "$ZEDCTR_RUNC_ROOT" list -q 2>/dev/null | grep '^zedctr-smoke-' |
    xargs -r -n1 runc --root "$ZEDCTR_RUNC_ROOT" delete -f >/dev/null 2>&1
for d in "$ZEDCTR_IMAGE_DIR"/run.*; do
    [ -d "$d" ] && ! grep -q " $d" /proc/self/mountinfo && rm -rf "$d"
done

image=localhost/zedctr:smoke
tag=zedctr-smoke-$$
tmp=$(mktemp -d "$ZEDCTR_IMAGE_DIR/run.XXXXXX")
containers=()
runc_ids=()
pass=0
fail=0
failed=()
t_start=$(date +%s%N)

ms_since() { echo $(( ($(date +%s%N) - $1) / 1000000 )); }
say() { echo "## $*"; }
ok() { echo "ok   $1"; pass=$((pass + 1)); }
bad() {
    echo "FAIL $1${2:+: $2}"
    fail=$((fail + 1))
    failed+=("$1")
}
# check NAME COMMAND...: ok when COMMAND succeeds.
check() {
    local name=$1
    shift
    if "$@" >/dev/null 2>&1; then ok "$name"; else bad "$name"; fi
}
# wait_until SECONDS COMMAND...: retry COMMAND (every 0.1 s) until it succeeds or the
# deadline passes. No fixed sleeps: the test is as fast as zedinit is.
wait_until() {
    local deadline=$(( $(date +%s%N) + $1 * 1000000000 ))
    shift
    while :; do
        "$@" >/dev/null 2>&1 && return 0
        [ "$(date +%s%N)" -ge "$deadline" ] && return 1
        sleep 0.1
    done
}

cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    if [ "${ZEDCTR_SMOKE_KEEP:-0}" = 1 ]; then
        echo "## kept (ZEDCTR_SMOKE_KEEP=1): $tmp; containers: ${containers[*]:-none} ${runc_ids[*]:-}"
        echo "##   inspect with: . tests/image/podman-env.sh; podman ps -a; runc --root $ZEDCTR_RUNC_ROOT list"
        exit "$rc"
    fi
    local c
    for c in "${containers[@]}"; do
        podman rm -f -t 0 "$c" >/dev/null 2>&1
    done
    for c in "${runc_ids[@]}"; do
        runc --root "$ZEDCTR_RUNC_ROOT" delete -f "$c" >/dev/null 2>&1
    done
    # Never delete through a mount: the host directories were only bound inside the
    # containers' own mount namespaces, but make sure before rm -rf.
    if grep -q " $tmp" /proc/self/mountinfo; then
        echo "## WARNING: something is still mounted under $tmp; not removing it" >&2
    else
        rm -rf "$tmp"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'echo "## interrupted" >&2; exit 130' INT TERM

# --- binaries ---------------------------------------------------------------------
if [ ! -x "$bin_dir/zedinit" ] || [ ! -x "$bin_dir/supctl" ] || [ ! -x "$bin_dir/downloader" ] || [ ! -x "$bin_dir/logtail" ] || [ ! -x "$bin_dir/zedwatchdog" ] || [ ! -x "$bin_dir/dnsmasq-render" ]; then
    if [ -n "${ZEDCTR_BIN_DIR:-}" ]; then
        echo "FAIL ZEDCTR_BIN_DIR=$ZEDCTR_BIN_DIR has no zedinit and supctl" >&2
        exit 1
    fi
    say "building zedinit and supctl (cargo build --release)"
    (cd "$repo" && "${CARGO:-cargo}" build --release --bin zedinit --bin supctl --bin downloader --bin logtail --bin zedwatchdog --bin dnsmasq-render) || {
        echo "FAIL cargo build --release --bin zedinit --bin supctl --bin downloader --bin logtail --bin zedwatchdog --bin dnsmasq-render" >&2
        exit 1
    }
fi
# A stale binary would test old code: say so loudly (we do not rebuild as root here,
# which would leave root-owned files in a user's target/).
if [ -z "${ZEDCTR_BIN_DIR:-}" ] && [ -n "$(find "$repo/supervisor/src" "$repo/supervisor/Cargo.toml" "$repo/Cargo.toml" -newer "$bin_dir/zedinit" -print -quit 2>/dev/null)" ]; then
    echo "## WARNING: $bin_dir/zedinit is older than the sources; run cargo build --release first" >&2
fi
say "binaries from $bin_dir"

# --- 1 base image -----------------------------------------------------------------
t=$(date +%s%N)
zedctr_base_image || { echo "FAIL base image $ZEDCTR_BASE_IMAGE" >&2; exit 1; }
say "base image $ZEDCTR_BASE_IMAGE: $(ms_since "$t") ms"

# --- 2 image build ----------------------------------------------------------------
t=$(date +%s%N)
ctx=$tmp/ctx
mkdir -p "$ctx/rootfs"
cp "$repo/Dockerfile" "$ctx/"
cp "$bin_dir/zedinit" "$bin_dir/supctl" "$bin_dir/downloader" "$bin_dir/logtail" "$bin_dir/zedwatchdog" "$bin_dir/dnsmasq-render" "$ctx/"
# rootfs/ may hold only empty directories, which git does not keep: tolerate its absence.
[ -d "$repo/rootfs" ] && cp -a "$repo/rootfs/." "$ctx/rootfs/"
if ! podman build -q --pull=never --network=none -t "$image" "$ctx" > "$tmp/build.log" 2>&1; then
    cat "$tmp/build.log" >&2
    echo "FAIL podman build" >&2
    exit 1
fi
# Each build leaves the previous image untagged; drop those so the store does not grow.
podman image prune -f >/dev/null 2>&1
say "image build $image: $(ms_since "$t") ms"

# --- the run-time fixture ---------------------------------------------------------
# host_dirs DIR: a fake host for build.yml's bind sources, with three service
# definitions in what the container sees as /run/zedctr/services.
host_dirs() {
    local h=$1
    mkdir -p "$h"/{run/zedctr/services,config,log,modules,hostfs}
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
# (PID 1, or the child subreaper under pid: host) and must be reaped there.
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
        --remap "/lib/modules=$h/modules" --remap "/=$h/hostfs" --remap "/etc/resolv.conf=$h/resolv.conf"
}
# Capabilities the container should have: build.yml's, minus those this machine lacks.
want_caps=$(python3 "$here/buildyml2oci.py" "$repo/build.yml" --caps --drop-missing-caps 2>/dev/null |
    tr '[:upper:]' '[:lower:]' | sort | paste -sd, -)

# service_state JSON NAME: the state of one service in `supctl status --json`.
service_state() { jq -r --arg n "$2" '.services[] | select(.name == $n) | .state' <<<"$1"; }

# check_status LABEL JSON PIDMODE: the checks on one `supctl status --json` answer.
check_status() {
    local label=$1 st=$2 pidmode=$3
    if [ "$pidmode" = new ]; then
        check "[$label] supervisor.pid == 1 (zedinit is PID 1)" jq -e '.supervisor.pid == 1' <<<"$st"
    else
        check "[$label] supervisor.pid != 1 (pid: host)" jq -e '.supervisor.pid != 1' <<<"$st"
        check "[$label] supervisor.subreaper == true" jq -e '.supervisor.subreaper == true' <<<"$st"
    fi
    local s
    s=$(service_state "$st" hello)
    if [ "$s" = "done" ]; then ok "[$label] hello (oneshot) is done"; else bad "[$label] hello (oneshot) is done" "state '${s}'"; fi
    s=$(service_state "$st" ticker)
    if [ "$s" = running ]; then ok "[$label] ticker is running"; else bad "[$label] ticker is running" "state '${s}'"; fi
}
# downloader_running EXEC...: the image's downloader service runs.
downloader_running() {
    local st
    st=$(status_json "$@") && [ "$(service_state "$st" downloader)" = running ]
}
# logtail_running EXEC...: the image's logtail service runs (confined, with its ambient
# CAP_DAC_READ_SEARCH: a start that failed a step would show as failed or starting).
logtail_running() {
    local st
    st=$(status_json "$@") && [ "$(service_state "$st" logtail)" = running ]
}
# service_is NAME STATE EXEC...: the image's service NAME is in STATE.
service_is() {
    local name=$1 want=$2 st
    shift 2
    st=$(status_json "$@") && [ "$(service_state "$st" "$name")" = "$want" ]
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
# write_atomically FILE TEXT: as writers should (a hidden name, then a rename), so the
# watcher never reads half a file.
write_atomically() {
    local dir name
    dir=$(dirname "$1") name=$(basename "$1")
    printf '%s' "$2" > "$dir/.$name.tmp" && mv "$dir/.$name.tmp" "$1"
}
# orphans_reaped EXEC...: zedinit counted the orphans the `orphans` service left.
orphans_reaped() {
    local st
    st=$(status_json "$@") && jq -e '.supervisor.reaped_orphans >= 2' >/dev/null <<<"$st"
}

# status_json EXEC...: `supctl status --json` through an exec command, printed if it parses.
status_json() {
    local out
    out=$("$@" /usr/bin/supctl status --json 2>/dev/null) && jq -e . >/dev/null 2>&1 <<<"$out" && echo "$out"
}
# settled JSON: hello done and ticker running (or no point waiting any more).
settled() {
    local st
    st=$(status_json "$@") || return 1
    [ "$(service_state "$st" hello)" = "done" ] && [ "$(service_state "$st" ticker)" = running ]
}

# --- 3 podman, pid new and pid host -----------------------------------------------
run_podman() {
    local pidmode=$1 c=$tag-$1 h=$tmp/host-$1 args
    local label="podman pid=$pidmode"
    t=$(date +%s%N)
    host_dirs "$h"
    # shellcheck disable=SC2046  # remaps prints separate words on purpose
    if ! mapfile -t args < <(python3 "$here/buildyml2oci.py" "$repo/build.yml" --podman \
        --pid "$pidmode" --drop-missing-caps $(remaps "$h")) || [ ${#args[@]} -eq 0 ]; then
        bad "[$label] translate build.yml"
        return
    fi
    containers+=("$c")
    if ! podman run -d --name "$c" "${args[@]}" "$image" > "$tmp/run-$pidmode.log" 2>&1; then
        bad "[$label] podman run" "$(tail -n 5 "$tmp/run-$pidmode.log")"
        return
    fi

    if wait_until 10 podman exec "$c" /usr/bin/supctl status; then
        ok "[$label] supctl status inside the container (after $(ms_since "$t") ms)"
    else
        bad "[$label] supctl status inside the container (10 s deadline)"
        podman logs --tail 30 "$c" 2>&1 | sed 's/^/     log: /'
    fi
    podman exec "$c" /usr/bin/supctl status 2>&1 | sed 's/^/     /'
    wait_until 10 settled podman exec "$c"
    local st
    if st=$(status_json podman exec "$c"); then
        ok "[$label] supctl status --json parses"
        check_status "$label" "$st" "$pidmode"
    else
        bad "[$label] supctl status --json parses"
    fi

    # The image's own services: the downloader runs confined, after zedctr-dirs made
    # its bind sources on the host side.
    if wait_until 10 downloader_running podman exec "$c"; then
        ok "[$label] the image's downloader service is running (after zedctr-dirs)"
    else
        bad "[$label] the image's downloader service is running" "$(podman exec "$c" /usr/bin/supctl status 2>&1 | tr '\n' '|')"
    fi

    # logtail runs confined and saved where it left its files on the host side of /run
    # (the image's /var/log holds no *.log: the list is empty, the state valid JSON).
    if wait_until 10 logtail_running podman exec "$c" &&
        wait_until 5 jq -e '.version == 1 and (.files | type == "array")' "$h/run/logtail/state/positions.json"; then
        ok "[$label] the image's logtail service is running, its state on the host's /run"
    else
        bad "[$label] the image's logtail service is running, its state on the host's /run" \
            "$(podman exec "$c" /usr/bin/supctl status 2>&1 | tr '\n' '|') state: $(cat "$h/run/logtail/state/positions.json" 2>&1)"
    fi

    # dnsmasq-render runs confined, watching the (empty) network-instance directory.
    if wait_until 10 service_is dnsmasq-render running podman exec "$c"; then
        ok "[$label] the image's dnsmasq-render is running (no network instances: no dnsmasq)"
    else
        bad "[$label] the image's dnsmasq-render is running" "$(podman exec "$c" /usr/bin/supctl status 2>&1 | tr '\n' '|')"
    fi
    check "[$label] the image carries dnsmasq for dnsmasq@<bridge>" podman exec "$c" /usr/sbin/dnsmasq --version

    # The downloader sees the network instances and their leases (its own /run is a
    # tmpfs: without its binds every `.local` URL failed with "no network instance").
    if wait_until 10 downloader_sees_instances podman exec "$c"; then
        ok "[$label] the downloader's root has /run/zedctr/network-instances and /run/zedctr/dnsmasq, read-only"
    else
        bad "[$label] the downloader's root has /run/zedctr/network-instances and /run/zedctr/dnsmasq, read-only"
    fi
    # A `.local` request is looked up on the instance's bridge. The bridge does not exist
    # and its address is TEST-NET-1 (RFC 5737): nothing is sent. dnsmasq-render is
    # stopped first, so no dnsmasq is made for the instance on this machine's network.
    local request_status=$h/run/downloader/status/smoke.json
    if podman exec "$c" /usr/bin/supctl stop dnsmasq-render >/dev/null 2>&1 &&
        write_atomically "$h/run/zedctr/network-instances/smoke.toml" \
            "$(printf 'bridge = "zsmoke0"\nipv4 = "192.0.2.1/24"\n')" &&
        write_atomically "$h/run/downloader/config/smoke.json" \
            "{\"name\":\"smoke\",\"url\":\"http://app.local/x\",\"sha256\":\"$(printf x | sha256sum | cut -d' ' -f1)\",\"size\":1}" &&
        wait_until 20 grep -q 'on zsmoke0' "$request_status"; then
        ok "[$label] the downloader looks up a .local datastore on the network instance's bridge"
    else
        bad "[$label] the downloader looks up a .local datastore on the network instance's bridge" \
            "status: $(cat "$request_status" 2>&1 | tr '\n' ' ')"
    fi

    # The image carries no openssh yet: sshd-keys and sshd are skipped by their conditions.
    if wait_until 10 service_is sshd-keys skipped podman exec "$c" && wait_until 5 service_is sshd skipped podman exec "$c"; then
        ok "[$label] sshd-keys and sshd are skipped (no openssh in the image)"
    else
        bad "[$label] sshd-keys and sshd are skipped" "$(podman exec "$c" /usr/bin/supctl status 2>&1 | tr '\n' '|')"
    fi
    # zedwatchdog runs only where there is a watchdog device: this machine has none.
    local want_wd=skipped
    [ -e /dev/watchdog ] && want_wd=running
    if wait_until 10 service_is zedwatchdog "$want_wd" podman exec "$c"; then
        ok "[$label] the image's zedwatchdog is $want_wd (/dev/watchdog $( [ -e /dev/watchdog ] && echo present || echo absent))"
    else
        bad "[$label] the image's zedwatchdog is $want_wd" "$(podman exec "$c" /usr/bin/supctl status 2>&1 | tr '\n' '|')"
    fi

    if wait_until 5 orphans_reaped podman exec "$c"; then
        ok "[$label] orphans re-parented to zedinit are reaped (supervisor.reaped_orphans >= 2)"
    else
        bad "[$label] orphans re-parented to zedinit are reaped" \
            "reaped_orphans=$(status_json podman exec "$c" | jq -c '.supervisor.reaped_orphans')"
    fi

    # zedinit runs with build.yml's capabilities, no more and no fewer.
    local zpid capeff have
    zpid=$(jq -r '.supervisor.pid // empty' <<<"${st:-null}" 2>/dev/null)
    capeff=$(podman exec "$c" cat "/proc/${zpid:-1}/status" 2>/dev/null | awk '/^CapEff:/ {print $2}')
    have=$(capsh --decode="${capeff:-0}" 2>/dev/null | sed 's/.*=//' | tr ',' '\n' | grep . | sort | paste -sd, -)
    if [ -n "$capeff" ] && [ "$have" = "$want_caps" ]; then
        ok "[$label] zedinit's CapEff == build.yml capabilities"
    else
        bad "[$label] zedinit's CapEff == build.yml capabilities" "have '$have', want '$want_caps'"
    fi
    # The write must fail for the right reason (not because exec itself failed).
    check "[$label] root filesystem is read-only" \
        bash -c "podman exec $c sh -c ': > /zedctr-ro-probe' 2>&1 | grep -q 'Read-only file system'"
    check "[$label] control socket on the host side of /run ($h/run/zedctr/control.sock)" \
        test -S "$h/run/zedctr/control.sock"
    # The host (e.g. another EVE container sharing /run) can talk to zedinit directly.
    check "[$label] host-side supctl over the bound socket" \
        "$bin_dir/supctl" --control-socket "$h/run/zedctr/control.sock" status

    t=$(date +%s%N)
    podman stop -t 10 "$c" > /dev/null 2>&1
    local code stop_ms
    stop_ms=$(ms_since "$t")
    code=$(podman inspect -f '{{.State.ExitCode}}' "$c" 2>/dev/null)
    if [ "$code" = 0 ]; then
        ok "[$label] podman stop -t 10: exit code 0 (stopped in $stop_ms ms)"
    else
        bad "[$label] podman stop -t 10: exit code 0" "exit code '$code' after $stop_ms ms"
        podman logs --tail 30 "$c" 2>&1 | sed 's/^/     log: /'
    fi
    [ "${ZEDCTR_SMOKE_KEEP:-0}" = 1 ] || podman rm -f -t 0 "$c" >/dev/null 2>&1
}

# --- 4 plain OCI bundle under runc (what linuxkit/containerd hand to runc) ----------
run_bundle() {
    local id=$tag-runc h=$tmp/host-runc b=$tmp/bundle label="runc bundle pid=new"
    t=$(date +%s%N)
    host_dirs "$h"
    if ! skopeo copy -q "containers-storage:$image" "oci:$tmp/oci:smoke" > "$tmp/bundle.log" 2>&1 ||
        ! umoci unpack --image "$tmp/oci:smoke" "$b" >> "$tmp/bundle.log" 2>&1; then
        bad "[$label] skopeo copy + umoci unpack" "$(tail -n 5 "$tmp/bundle.log")"
        return
    fi
    # shellcheck disable=SC2046
    if ! python3 "$here/buildyml2oci.py" "$repo/build.yml" --oci "$b/config.json" \
        --pid new --drop-missing-caps $(remaps "$h") 2>> "$tmp/bundle.log"; then
        bad "[$label] translate build.yml" "$(tail -n 5 "$tmp/bundle.log")"
        return
    fi
    runc_ids+=("$id")
    # Detached, stdio to a file: runc keeps nothing of ours open.
    if ! runc --root "$ZEDCTR_RUNC_ROOT" run -d -b "$b" "$id" < /dev/null > "$tmp/runc-$id.log" 2>&1; then
        bad "[$label] runc run" "$(tail -n 5 "$tmp/runc-$id.log")"
        return
    fi
    if wait_until 10 runc --root "$ZEDCTR_RUNC_ROOT" exec "$id" /usr/bin/supctl status; then
        ok "[$label] supctl status inside the container (after $(ms_since "$t") ms)"
    else
        bad "[$label] supctl status inside the container (10 s deadline)"
        tail -n 30 "$tmp/runc-$id.log" | sed 's/^/     log: /'
    fi
    wait_until 10 settled runc --root "$ZEDCTR_RUNC_ROOT" exec "$id"
    local st
    if st=$(status_json runc --root "$ZEDCTR_RUNC_ROOT" exec "$id"); then
        ok "[$label] supctl status --json parses"
        check_status "$label" "$st" new
    else
        bad "[$label] supctl status --json parses"
    fi
    check "[$label] orphans re-parented to zedinit are reaped" \
        wait_until 5 orphans_reaped runc --root "$ZEDCTR_RUNC_ROOT" exec "$id"
    runc --root "$ZEDCTR_RUNC_ROOT" kill "$id" TERM >/dev/null 2>&1
    if wait_until 10 bash -c "runc --root '$ZEDCTR_RUNC_ROOT' state '$id' | jq -e '.status == \"stopped\"'"; then
        ok "[$label] SIGTERM stops it (runc keeps no exit code)"
    else
        bad "[$label] SIGTERM stops it within 10 s"
    fi
    [ "${ZEDCTR_SMOKE_KEEP:-0}" = 1 ] || runc --root "$ZEDCTR_RUNC_ROOT" delete -f "$id" >/dev/null 2>&1
}

for pidmode in new host; do
    t_phase=$(date +%s%N)
    run_podman "$pidmode"
    say "podman pid=$pidmode: $(ms_since "$t_phase") ms"
done
if [ "${ZEDCTR_SMOKE_RUNC:-1}" != 0 ]; then
    t_phase=$(date +%s%N)
    run_bundle
    say "runc bundle: $(ms_since "$t_phase") ms"
fi

say "total: $(ms_since "$t_start") ms"
echo "$pass passed, $fail failed"
if [ "$fail" -gt 0 ]; then
    printf 'failed: %s\n' "${failed[@]}"
    exit 1
fi
exit 0

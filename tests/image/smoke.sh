#!/bin/bash
# Image tier (DESIGN.md "Tests, in tiers", 4): build ./Dockerfile from source, offline,
# run it the way build.yml says, and check from outside that the image is the device's
# zedctr: zedinit supervises the shipped services, as PID 1 and under `pid: host`, and,
# on a simulated EVE device, every feature works inside it.
#
#   sudo tests/image/smoke.sh          (or run by scripts/test)
#
# Needs root (podman as root, runc, network namespaces). Not root: a loud skip, exit 0;
# with CI=true: exit 1. Packages: scripts/install-deps.
#
# Environment:
#   ZEDCTR_IMAGE_DIR    the tier's own podman store and cache (default /var/tmp/zedctr-image)
#   ZEDCTR_SMOKE_KEEP=1 keep containers, namespaces and the temporary directory
#   ZEDCTR_SMOKE_RUNC=0 skip the plain-OCI-bundle-under-runc check
#
# What it does:
#   1 base images once per machine (mmdebstrap + podman import, cached in the store):
#     the runtime (bookworm + the services' packages) and the builder (bookworm + gcc +
#     the host's Rust toolchain of rust-toolchain.toml's version)
#   2 cargo vendor into vendor/ (when Cargo.lock changed), then podman build
#     --pull=never --network=none of the repository with those two bases as the
#     Dockerfile's BUILDER_IMAGE and RUNTIME_IMAGE: every binary compiled in the builder
#     stage; zedinit's link order is checked against the image's zedinit; then every
#     layer of the image is scanned: no ssh host key, private key or password hash
#   3 podman, pid new, in an empty network namespace: the shipped services start
#     (or are skipped by their conditions), test definitions in the host side of
#     /run/zedctr/services run, orphans are reaped, capabilities are build.yml's
#   4 the device: podman with build.yml's settings (pid: host) inside a network
#     namespace standing for an EVE device, with a bridge and its network-instance
#     file, an app namespace on the bridge (avahi-daemon + busybox httpd) and a DHCP
#     client namespace. From outside: a `.local` download ends `downloaded` with the
#     verified file on the host side; dnsmasq@<bridge> in the image leases the reserved
#     address and answers the name; ssh logs in with a key and refuses a password;
#     logtail prints a line appended to the host's /var/log/x.log (on the container's
#     stdout); tcp-offload turns GRO off on the uplink the device's config names; the
#     watchdog (a FIFO given as /dev/watchdog) is fed while healthy, not fed once a
#     critical service fails, and after a reset (SIGKILL, a new container) the host's
#     /persist has the reason; the container stops with exit code 0
#   5 the same image as a plain OCI bundle (skopeo + umoci) under runc, pid new
#   6 3 and 4 again under a private containerd (its own root, state and socket under
#     the run's directory; never the host's): the image imported with `ctr images
#     import`, each container run with `ctr run --config` from an OCI spec made of
#     build.yml (buildyml2oci.py), its root the imported image (`ctr images mount`)
#   7 each service of `supctl export linuxkit` (the image's definitions) as a container
#     of its own under that containerd (export2oci.py): the onboot oneshots in order,
#     then the services; a probe of each entry's exact spec compared with the entry
#     (CapEff, CapBnd, NoNewPrivs, uid/gid, pid/net/mount namespaces, mounts); then
#     tcp-offload, zedctr-dirs and sshd-keys' work, dnsmasq-render --supervise serving
#     the bridge, a verified download, logtail following a log, an ssh login,
#     zedwatchdog --without-zedinit feeding, and each service stopping
# Every bind source is remapped into a temporary host directory (never the real /run,
# /var/log, /persist); nothing listens on this machine's own network (each container's
# `net: host` is a namespace of the test's). Every check prints "ok" or "FAIL"; the last
# line is "N passed, N failed"; the exit code is non-zero when anything failed.

# Functions called through trap, check and wait_until look unreachable to shellcheck.
# shellcheck disable=SC2317
set -uo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
here=$repo/tests/image

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
for tool in podman runc skopeo nm umoci mmdebstrap jq python3 capsh flock ip busybox avahi-daemon \
    ssh ssh-keygen ethtool sha256sum unshare; do
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

# drop_cgroup DIR: every process in the cgroup DIR (and below) killed, then the
# directories removed, deepest first.
drop_cgroup() {
    local f i
    for f in $(find "$1" -name cgroup.procs 2>/dev/null); do
        xargs -r kill -9 < "$f" 2>/dev/null
    done
    # A killed process leaves its cgroup when it is reaped, not at once.
    for i in $(seq 50); do
        [ -z "$(find "$1" -name cgroup.procs -exec cat {} + 2>/dev/null)" ] && break
        sleep 0.1
    done
    find "$1" -depth -type d -exec rmdir {} + 2>/dev/null
    return 0
}

# Holding the lock, anything left by an earlier run that was killed (SIGKILL, reboot)
# is stale: remove its containers and temporary directories.
podman ps -a --filter name=zedctr-smoke- --format '{{.Names}}' 2>/dev/null |
    xargs -r podman rm -f -t 0 >/dev/null 2>&1
runc --root "$ZEDCTR_RUNC_ROOT" list -q 2>/dev/null | grep '^zedctr-smoke-' |
    xargs -r -n1 runc --root "$ZEDCTR_RUNC_ROOT" delete -f >/dev/null 2>&1
# Network namespaces of the tier (zs<role><pid>) and what runs in them.
for ns in $(ip netns list 2>/dev/null | awk '$1 ~ /^zs(bare|dev|app|cli|runc)[0-9]+$/ {print $1}'); do
    ip netns pids "$ns" 2>/dev/null | xargs -r kill -9 2>/dev/null
    ip netns del "$ns" 2>/dev/null
    rm -rf "/etc/netns/$ns"
done
for d in "$ZEDCTR_IMAGE_DIR"/run.*; do
    [ -d "$d" ] || continue
    # A private containerd of a killed run: it, its shims (named by its socket), then
    # the image it mounted (and what its snapshotter mounted).
    if [ -s "$d/ctd/containerd.pid" ]; then
        p=$(cat "$d/ctd/containerd.pid")
        grep -qF -- "$d/ctd" "/proc/$p/cmdline" 2>/dev/null && kill -9 "$p" 2>/dev/null
        pgrep -f -- "-address $d/ctd/containerd.sock" | xargs -r kill -9 2>/dev/null
        awk -v d="$d/" 'index($5, d) == 1 {print $5}' /proc/self/mountinfo | sort -r | xargs -r -n1 umount -l 2>/dev/null
    fi
    grep -q " $d" /proc/self/mountinfo || rm -rf "$d"
done
# The containers of a killed run's containerd outlive its shims (pid: host has no
# namespace to end them): whatever is left in the cgroups of a run whose pid is gone
# (zedctr-smoke-PID...), then those cgroups and runc's state of its containers (the
# shim's runc keeps it in /run/containerd/runc/default; every id names its run).
for cg in $(find /sys/fs/cgroup -maxdepth 2 -type d -name 'zedctr-smoke-*' 2>/dev/null); do
    p=${cg##*/zedctr-smoke-} p=${p%%-*}
    kill -0 "$p" 2>/dev/null || drop_cgroup "$cg"
done
for st in /run/containerd/runc/default/zedctr-smoke-*; do
    [ -d "$st" ] || continue
    p=${st##*/zedctr-smoke-} p=${p%%-*}
    kill -0 "$p" 2>/dev/null || runc --root /run/containerd/runc/default delete -f "${st##*/}" >/dev/null 2>&1
done

image=localhost/zedctr:smoke
tag=zedctr-smoke-$$
tmp=$(mktemp -d "$ZEDCTR_IMAGE_DIR/run.XXXXXX")
containers=()
runc_ids=()
namespaces=()
ns_pids=()
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

# make_netns NAME: a network namespace of this run (its loopback up, its own
# resolv.conf so stray lookups stay inside), removed by cleanup.
make_netns() {
    ip netns add "$1" || return 1
    namespaces+=("$1")
    mkdir -p "/etc/netns/$1" && echo "nameserver 127.0.0.1" > "/etc/netns/$1/resolv.conf"
    ip -n "$1" link set lo up
}
# drop_namespaces: what this run started in its namespaces, then the namespaces.
drop_namespaces() {
    local pid ns
    for pid in "${ns_pids[@]}"; do
        kill "$pid" 2>/dev/null
    done
    for ns in "${namespaces[@]}"; do
        ip netns pids "$ns" 2>/dev/null | xargs -r kill -9 2>/dev/null
        ip netns del "$ns" 2>/dev/null
        rm -rf "/etc/netns/$ns"
    done
    namespaces=()
    ns_pids=()
}

cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    if [ "${ZEDCTR_SMOKE_KEEP:-0}" = 1 ]; then
        echo "## kept (ZEDCTR_SMOKE_KEEP=1): $tmp; containers: ${containers[*]:-none} ${runc_ids[*]:-}; namespaces: ${namespaces[*]:-none}"
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
    ctd_down
    drop_namespaces
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

# --- the engines: podman, and a private containerd ---------------------------------
# The checks reach a container through in_container CONTAINER CMD... and logs_of
# CONTAINER (its stdout on stdout, its stderr on stderr), whichever engine runs it
# ($engine); exported, so `bash -c` checks can use them too.
engine=podman
ctd_dir=$tmp/ctd
ctd_sock=$ctd_dir/containerd.sock
ctd_pid=
ctd_ids=()
declare -A ctr_pids=()
export engine tmp ctd_sock
ctd() { ctr -a "$ctd_sock" "$@"; }
in_container() {
    local c=$1
    shift
    case $engine in
    podman) podman exec "$c" "$@" ;;
    # Each exec needs an id of its own.
    containerd) ctr -a "$ctd_sock" tasks exec --exec-id "x$$-$RANDOM$RANDOM" "$c" "$@" ;;
    esac
}
logs_of() {
    case $engine in
    podman) podman logs "$1" ;;
    containerd) cat "$tmp/run-$1.out"; cat "$tmp/run-$1.err" >&2 ;;
    esac
}
export -f in_container logs_of

# start_engine CONTAINER HOSTDIR PIDMODE NETNS: run the image with build.yml's settings
# (buildyml2oci.py), detached, net: host being NETNS.
start_engine() {
    local c=$1 h=$2 pidmode=$3 netns=$4 args
    case $engine in
    podman)
        # shellcheck disable=SC2046  # remaps prints separate words on purpose
        mapfile -t args < <(python3 "$here/buildyml2oci.py" "$repo/build.yml" --podman \
            --pid "$pidmode" --netns "/run/netns/$netns" --drop-missing-caps $(remaps "$h") 2> "$tmp/run-$c.log")
        [ ${#args[@]} -gt 0 ] || return 1
        containers+=("$c")
        podman run -d --name "$c" "${args[@]}" "$image" >> "$tmp/run-$c.log" 2>&1
        ;;
    containerd)
        # containerd's own default spec, made build.yml's: the image's process, its
        # root the imported image as containerd mounted it (read-only, as `readonly:`).
        cp "$tmp/ctd-spec.json" "$tmp/spec-$c.json"
        # shellcheck disable=SC2046
        python3 "$here/buildyml2oci.py" "$repo/build.yml" --oci "$tmp/spec-$c.json" \
            --image-config "$tmp/inspect.json" --rootfs "$ctd_dir/rootfs" --cgroups-path "/zedctr-smoke-$$/$c" \
            --pid "$pidmode" --netns "/run/netns/$netns" --drop-missing-caps $(remaps "$h") > "$tmp/run-$c.log" 2>&1 || return 1
        ctd_ids+=("$c")
        # In the foreground of a background job: ctr passes the task's stdout and stderr
        # on, and exits with the task's exit code.
        ctr -a "$ctd_sock" run --rm --config "$tmp/spec-$c.json" "$c" < /dev/null > "$tmp/run-$c.out" 2> "$tmp/run-$c.err" &
        ctr_pids[$c]=$!
        ;;
    esac
}
# stop_engine CONTAINER: SIGTERM, up to 20 s, then SIGKILL; the exit code in $stop_code.
stop_engine() {
    local c=$1 p
    case $engine in
    podman)
        podman stop -t 20 "$c" > /dev/null 2>&1
        stop_code=$(podman inspect -f '{{.State.ExitCode}}' "$c" 2>/dev/null)
        ;;
    containerd)
        p=${ctr_pids[$c]:-}
        ctd tasks kill -s SIGTERM "$c" > /dev/null 2>&1
        wait_until 20 bash -c "! kill -0 $p" || ctd tasks kill -a -s SIGKILL "$c" > /dev/null 2>&1
        wait "$p"
        stop_code=$?
        unset "ctr_pids[$c]"
        ;;
    esac
}
# kill_container CONTAINER: SIGKILL, every process of it, and remove it.
kill_container() {
    local c=$1 p
    case $engine in
    podman)
        podman kill -s KILL "$c" > /dev/null 2>&1
        podman rm -f -t 0 "$c" > /dev/null 2>&1
        ;;
    containerd)
        p=${ctr_pids[$c]:-}
        ctd tasks kill -a -s SIGKILL "$c" > /dev/null 2>&1
        [ -n "$p" ] && wait "$p"
        unset "ctr_pids[$c]"
        remove_container "$c"
        ;;
    esac
}
remove_container() {
    case $engine in
    podman) podman rm -f -t 0 "$1" > /dev/null 2>&1 ;;
    containerd)
        ctd tasks delete -f "$1" > /dev/null 2>&1
        ctd containers delete "$1" > /dev/null 2>&1
        ;;
    esac
    return 0
}

# ctd_up: a private containerd (root, state and socket in this run's directory; the
# host's is never used, nor its configuration: --config /dev/null), the image imported
# (podman save --format oci-archive + ctr images import) and mounted, read-only, by
# containerd's snapshotter (`ctr run --config` makes no snapshot of its own).
ctd_up() {
    mkdir -p "$ctd_dir/rootfs"
    # Without fd 9 (the tier's lock): its shims outlive it, and would hold the lock.
    containerd --root "$ctd_dir/root" --state "$ctd_dir/state" --address "$ctd_sock" \
        --config /dev/null > "$ctd_dir/containerd.log" 2>&1 9>&- &
    ctd_pid=$!
    echo "$ctd_pid" > "$ctd_dir/containerd.pid"
    wait_until 20 ctd version || { echo "containerd did not answer"; tail -n 5 "$ctd_dir/containerd.log"; return 1; }
    podman save -q --format oci-archive -o "$ctd_dir/image.tar" "$image" || return 1
    ctd images import "$ctd_dir/image.tar" > "$ctd_dir/import.log" 2>&1 || { cat "$ctd_dir/import.log"; return 1; }
    rm -f "$ctd_dir/image.tar"
    ctd images ls -q | grep -qx "$image" || { echo "ctr images ls lacks $image"; return 1; }
    ctd images mount "$image" "$ctd_dir/rootfs" > /dev/null || return 1
    podman image inspect "$image" > "$tmp/inspect.json" && ctd oci spec > "$tmp/ctd-spec.json"
}
# ctd_down: every task killed, the image unmounted, containerd and its shims stopped.
ctd_down() {
    [ -n "$ctd_pid" ] || return 0
    local c p
    for c in "${ctd_ids[@]}"; do
        ctd tasks kill -a -s SIGKILL "$c" > /dev/null 2>&1
        ctd tasks delete -f "$c" > /dev/null 2>&1
        ctd containers delete "$c" > /dev/null 2>&1
    done
    for p in "${ctr_pids[@]}"; do
        kill "$p" 2>/dev/null
    done
    grep -q " $ctd_dir/rootfs " /proc/self/mountinfo && ctd images unmount --rm "$ctd_dir/rootfs" > /dev/null 2>&1
    kill "$ctd_pid" 2>/dev/null
    wait_until 10 bash -c "! kill -0 $ctd_pid"
    kill -9 "$ctd_pid" 2>/dev/null
    # The shims outlive containerd by design; ours are the ones given its socket.
    pgrep -f -- "-address $ctd_sock" | xargs -r kill -9 2>/dev/null
    # This run's cgroups (runc removes each container's, not the parents).
    local cg
    for cg in $(find /sys/fs/cgroup -maxdepth 2 -type d -name "zedctr-smoke-$$*" 2>/dev/null); do
        drop_cgroup "$cg"
    done
    # Anything containerd's snapshotter left mounted.
    awk -v d="$ctd_dir/" 'index($5, d) == 1 {print $5}' /proc/self/mountinfo | sort -r | xargs -r -n1 umount -l 2>/dev/null
    ctd_pid=
}

# --- 1 base images ----------------------------------------------------------------
t=$(date +%s%N)
zedctr_base_image || { echo "FAIL base image $ZEDCTR_BASE_IMAGE" >&2; exit 1; }
zedctr_builder_image || { echo "FAIL builder image $ZEDCTR_BUILDER_IMAGE" >&2; exit 1; }
say "base images $ZEDCTR_BASE_IMAGE, $ZEDCTR_BUILDER_IMAGE: $(ms_since "$t") ms"

# --- 2 image build, from source -----------------------------------------------------
# The crates, vendored into the build context (repository root, vendor/: .dockerignore
# admits it; .gitignore keeps it out of git), so the build needs no network. Redone only
# when Cargo.lock changed.
t=$(date +%s%N)
if ! cmp -s "$repo/Cargo.lock" "$repo/vendor/.zedctr-Cargo.lock"; then
    say "cargo vendor --locked vendor (Cargo.lock changed)"
    if ! (cd "$repo" && "${CARGO:-cargo}" vendor --locked --quiet vendor > "$tmp/vendor.log" 2>&1); then
        cat "$tmp/vendor.log" >&2
        echo "FAIL cargo vendor" >&2
        exit 1
    fi
    cp "$repo/Cargo.lock" "$repo/vendor/.zedctr-Cargo.lock"
    # Owned like the repository (this runs as root; the tree may be a user's).
    chown -R --reference="$repo" "$repo/vendor" 2>/dev/null
fi
say "vendored crates: $(ms_since "$t") ms"
t=$(date +%s%N)
# The Dockerfile as a user builds it, with the two local bases as build arguments: the
# builder compiles every binary (cargo build --release --locked --offline --workspace
# --bins, its target directory a cache mount), the final stage is the runtime base with
# the binaries and rootfs/.
if ! podman build --pull=never --network=none --build-arg "BUILDER_IMAGE=$ZEDCTR_BUILDER_IMAGE" \
    --build-arg "RUNTIME_IMAGE=$ZEDCTR_BASE_IMAGE" -t "$image" -f "$repo/Dockerfile" "$repo" > "$tmp/build.log" 2>&1; then
    tail -n 40 "$tmp/build.log" >&2
    echo "FAIL podman build" >&2
    exit 1
fi
# Each build leaves the previous image and stage untagged; drop those so the store does
# not grow (the base images are tagged and stay).
podman image prune -f >/dev/null 2>&1
say "image build from source $image: $(ms_since "$t") ms"

# The image's binaries, on the host: supctl talks to zedinit over the bound socket, and
# zedinit's link order (a list of symbol names) must fit the image's build too.
bin_dir=$tmp/bin
mkdir -p "$bin_dir"
if podman create --name "$tag-bin" "$image" > /dev/null 2>&1 &&
    podman cp "$tag-bin:/usr/bin/supctl" "$bin_dir/supctl" && podman cp "$tag-bin:/usr/bin/zedinit" "$bin_dir/zedinit"; then
    ok "the image's binaries were built from source in the image (supctl, zedinit copied out)"
else
    bad "the image's binaries copied out of the image"
fi
podman rm -f "$tag-bin" >/dev/null 2>&1
check "zedinit's link order (supervisor/zedinit/zedinit.order) fits the image's zedinit (bench/zedinit-order --check)" \
    python3 "$repo/bench/zedinit-order" --check --binary "$bin_dir/zedinit"
echo "     $(python3 "$repo/bench/zedinit-order" --check --binary "$bin_dir/zedinit" 2>&1)"

# The image's layers, each on its own (a secret deleted by a later layer is still in
# the earlier one): no ssh host key, no private key, no password hash. The OCI layout is
# kept for the runc bundle below.
t=$(date +%s%N)
if skopeo copy -q "containers-storage:$image" "oci:$tmp/oci:smoke" > "$tmp/scan.log" 2>&1 &&
    python3 "$here/scan-secrets.py" "$tmp/oci:smoke" >> "$tmp/scan.log" 2>&1; then
    ok "the image's layers hold no ssh host key, private key or password hash ($(tail -n 1 "$tmp/scan.log"))"
else
    bad "the image's layers hold no ssh host key, private key or password hash" "$(tail -n 5 "$tmp/scan.log" | tr '\n' '|')"
fi
say "layer scan: $(ms_since "$t") ms"

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

# --- 3 podman, pid new, in an empty network namespace -----------------------------
run_bare() {
    local c=$tag-new h=$tmp/host-new-$engine ns=zsbare$$ label="$engine pid=new" st
    make_netns "$ns" || { bad "[$label] network namespace $ns"; return; }
    host_dirs "$h"
    start_container "$label" "$c" "$h" new "$ns" || return
    wait_until 10 settled in_container "$c"
    in_container "$c" /usr/bin/supctl status 2>&1 | sed 's/^/     /'
    if st=$(status_json in_container "$c"); then
        ok "[$label] supctl status --json parses"
        check_status "$label" "$st" new
    else
        bad "[$label] supctl status --json parses"
    fi
    check_shipped "$label" skipped skipped in_container "$c"
    check_container "$label" "$c" "$h" "$st"
    stop_container "$label" "$c"
}

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
    mkdir -p "$w/www" "$w/avahi/services"
    head -c $((2 * 1024 * 1024)) /dev/urandom > "$w/www/image.img"
    ip netns exec "$app_ns" busybox httpd -f -p 10.88.0.5:80 -h "$w/www" &
    ns_pids+=($!)
    # Killed between phases: no job notice for it.
    disown "$!"
    cat > "$w/avahi/avahi-daemon.conf" <<EOT
[server]
host-name=zs-app
use-ipv6=no
allow-interfaces=eth0
enable-dbus=no
[publish]
publish-workstation=yes
publish-aaaa-on-ipv4=no
EOT
    ip netns exec "$app_ns" unshare --mount --propagation private sh -c \
        "mount -t tmpfs -o mode=0755 zs-run /run && mount --bind '$w/avahi/services' /etc/avahi/services && exec avahi-daemon --file='$w/avahi/avahi-daemon.conf' --no-rlimits" \
        > "$w/avahi/avahi.log" 2>&1 &
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

# --- 5 plain OCI bundle under runc (what linuxkit/containerd hand to runc) ----------
run_bundle() {
    local id=$tag-runc h=$tmp/host-runc b=$tmp/bundle ns=zsrunc$$ label="runc bundle pid=new"
    t=$(date +%s%N)
    make_netns "$ns" || { bad "[$label] network namespace $ns"; return; }
    host_dirs "$h"
    # The OCI layout was made for the layer scan.
    if ! { [ -d "$tmp/oci" ] || skopeo copy -q "containers-storage:$image" "oci:$tmp/oci:smoke"; } > "$tmp/bundle.log" 2>&1 ||
        ! umoci unpack --image "$tmp/oci:smoke" "$b" >> "$tmp/bundle.log" 2>&1; then
        bad "[$label] skopeo copy + umoci unpack" "$(tail -n 5 "$tmp/bundle.log")"
        return
    fi
    # shellcheck disable=SC2046
    if ! python3 "$here/buildyml2oci.py" "$repo/build.yml" --oci "$b/config.json" \
        --pid new --netns "/run/netns/$ns" --drop-missing-caps $(remaps "$h") 2>> "$tmp/bundle.log"; then
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
    if wait_until 20 bash -c "runc --root '$ZEDCTR_RUNC_ROOT' state '$id' | jq -e '.status == \"stopped\"'"; then
        ok "[$label] SIGTERM stops it (runc keeps no exit code)"
    else
        bad "[$label] SIGTERM stops it within 20 s"
    fi
    [ "${ZEDCTR_SMOKE_KEEP:-0}" = 1 ] || runc --root "$ZEDCTR_RUNC_ROOT" delete -f "$id" >/dev/null 2>&1
}

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

for engine in podman containerd; do
    if [ "$engine" = containerd ]; then
        t_phase=$(date +%s%N)
        if ctd_up > "$tmp/ctd-up.log" 2>&1; then
            ok "a private containerd ($(ctd version 2>/dev/null | awk '/Version/ {print $2; exit}')) imported the image ($(ms_since "$t_phase") ms)"
        else
            bad "a private containerd imported the image" "$(tail -n 5 "$tmp/ctd-up.log" | tr '\n' '|')"
            continue
        fi
    fi
    t_phase=$(date +%s%N)
    run_bare
    drop_namespaces
    say "$engine pid=new: $(ms_since "$t_phase") ms"
    t_phase=$(date +%s%N)
    run_device
    drop_namespaces
    say "$engine device (pid=host): $(ms_since "$t_phase") ms"
    if [ "$engine" = podman ] && [ "${ZEDCTR_SMOKE_RUNC:-1}" != 0 ]; then
        t_phase=$(date +%s%N)
        run_bundle
        drop_namespaces
        say "runc bundle: $(ms_since "$t_phase") ms"
    fi
    if [ "$engine" = containerd ]; then
        t_phase=$(date +%s%N)
        run_services
        drop_namespaces
        say "exported services, one container each: $(ms_since "$t_phase") ms"
    fi
done

say "total: $(ms_since "$t_start") ms"
echo "$pass passed, $fail failed"
if [ "$fail" -gt 0 ]; then
    printf 'failed: %s\n' "${failed[@]}"
    exit 1
fi
exit 0

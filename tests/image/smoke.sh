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
# The steps' functions live in tests/image/lib/ (common.sh: reporting, waits, namespaces;
# stale.sh: what a killed run left; engines.sh: podman and the private containerd;
# checks.sh: the fixture and the checks every container gets; bare.sh, device.sh,
# bundle.sh, services.sh: steps 3, 4, 5 and 7), sourced below; this file is the run.
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

# shellcheck source=tests/image/lib/common.sh
. "$here/lib/common.sh"

# shellcheck source=tests/image/lib/stale.sh
. "$here/lib/stale.sh"
# Holding the lock, anything left by an earlier run that was killed is stale.
remove_stale_runs

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

# The steps' functions (lib/: each file's header says what it holds).
# shellcheck source=demo/lib/app-avahi.sh
. "$repo/demo/lib/app-avahi.sh"
# shellcheck source=tests/image/lib/engines.sh
. "$here/lib/engines.sh"
# shellcheck source=tests/image/lib/checks.sh
. "$here/lib/checks.sh"
# shellcheck source=tests/image/lib/bare.sh
. "$here/lib/bare.sh"
# shellcheck source=tests/image/lib/device.sh
. "$here/lib/device.sh"
# shellcheck source=tests/image/lib/bundle.sh
. "$here/lib/bundle.sh"
# shellcheck source=tests/image/lib/services.sh
. "$here/lib/services.sh"

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

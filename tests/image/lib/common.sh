# Reporting (ok/bad/check), waits, network namespaces and cgroups of the image tier.
# Sourced by tests/image/smoke.sh; the counters (pass, fail, failed) and the lists of
# what a run made (namespaces, ns_pids) are the run's.

# shellcheck disable=SC2317  # functions called through trap, check and wait_until

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

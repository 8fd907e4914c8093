# What an earlier run of the image tier left when it was killed (SIGKILL, reboot).
# Sourced by tests/image/smoke.sh, which calls remove_stale_runs holding the tier's lock.

# remove_stale_runs: everything of a run that is not running any more: its containers,
# namespaces, private containerd, mounts, cgroups and temporary directories.
remove_stale_runs() {
    local ns d p cg st
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
}

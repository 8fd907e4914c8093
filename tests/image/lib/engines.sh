# The engines: podman, and a private containerd (step 6).
# Sourced by tests/image/smoke.sh, in its place in the run: it uses the run's
# variables ($tmp, $image, $tag, $repo, $here, ...) and the helpers of lib/common.sh.

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

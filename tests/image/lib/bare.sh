# Step 3: the image under podman or containerd, pid new, in an empty network namespace.
# Sourced by tests/image/smoke.sh, in its place in the run: it uses the run's
# variables ($tmp, $image, $tag, $repo, $here, ...) and the helpers of lib/common.sh.
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

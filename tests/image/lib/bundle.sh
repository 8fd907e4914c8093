# Step 5: the image as a plain OCI bundle under runc.
# Sourced by tests/image/smoke.sh, in its place in the run: it uses the run's
# variables ($tmp, $image, $tag, $repo, $here, ...) and the helpers of lib/common.sh.

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

//! [run]: every child gets exactly what it declares. A probe service (zedctr-testkit
//! probe) reports from /proc/self what it really got; each test compares that with
//! its definition.

mod common;
use common::*;
use serde_json::Value;

const CAP_NET_ADMIN: u64 = 1 << 12;
const CAP_NET_RAW: u64 = 1 << 13;
const CAP_NET_BIND_SERVICE: u64 = 1 << 10;

fn u64_of(v: &Value, key: &str) -> u64 {
    v[key].as_u64().unwrap_or_else(|| panic!("{key} in {v}"))
}

#[test]
fn an_unprivileged_user_with_groups_and_no_capabilities() {
    if !require_root("an_unprivileged_user_with_groups_and_no_capabilities") {
        return;
    }
    let mut lab = Lab::new();
    probe_service(
        &lab,
        "plain",
        "",
        "uid = 65534\ngid = 65534\nadditionalGids = [4, 27]\nenv = [\"HELLO=world\"]\ncwd = \"/run/out\"",
    );
    lab.start();
    let r = report(&lab, "plain");
    assert_eq!(
        r["uid"],
        serde_json::json!([65534, 65534, 65534, 65534]),
        "real, effective, saved, fs uid"
    );
    assert_eq!(r["gid"], serde_json::json!([65534, 65534, 65534, 65534]));
    assert_eq!(r["groups"], serde_json::json!([4, 27]));
    for set in ["cap_eff", "cap_prm", "cap_inh", "cap_bnd", "cap_amb"] {
        assert_eq!(u64_of(&r, set), 0, "{set}");
    }
    assert_eq!(r["cwd"], "/run/out");
    assert!(
        r["env"]
            .as_array()
            .expect("env")
            .contains(&Value::from("HELLO=world"))
    );
    assert_eq!(r["no_new_privs"], false, "not declared");
}

#[test]
fn root_with_two_capabilities_holds_only_those_in_every_set() {
    if !require_root("root_with_two_capabilities_holds_only_those_in_every_set") {
        return;
    }
    let mut lab = Lab::new();
    probe_service(
        &lab,
        "netroot",
        "",
        "capabilities = [\"CAP_NET_ADMIN\", \"CAP_NET_RAW\"]\nnoNewPrivileges = true",
    );
    lab.start();
    let r = report(&lab, "netroot");
    assert_eq!(r["uid"][0], 0);
    for set in ["cap_eff", "cap_prm", "cap_inh", "cap_bnd"] {
        assert_eq!(u64_of(&r, set), CAP_NET_ADMIN | CAP_NET_RAW, "{set}");
    }
    assert_eq!(u64_of(&r, "cap_amb"), 0, "no ambient declared");
    assert_eq!(r["no_new_privs"], true);
}

#[test]
fn an_unprivileged_user_with_one_ambient_capability_has_it_effective() {
    if !require_root("an_unprivileged_user_with_one_ambient_capability_has_it_effective") {
        return;
    }
    let mut lab = Lab::new();
    probe_service(
        &lab,
        "binder",
        "",
        "uid = 65534\ngid = 65534\ncapabilities = [\"CAP_NET_BIND_SERVICE\"]\nambient = [\"CAP_NET_BIND_SERVICE\"]",
    );
    lab.start();
    let r = report(&lab, "binder");
    assert_eq!(r["uid"][1], 65534);
    for set in ["cap_eff", "cap_prm", "cap_inh", "cap_bnd", "cap_amb"] {
        assert_eq!(u64_of(&r, set), CAP_NET_BIND_SERVICE, "{set}");
    }
}

#[test]
fn binds_mkdir_net_none_limits_and_an_own_root() {
    if !require_root("binds_mkdir_net_none_limits_and_an_own_root") {
        return;
    }
    let mut lab = Lab::new();
    let (ro, rw) = (lab.path("ro"), lab.path("rw"));
    for d in [&ro, &rw] {
        std::fs::create_dir(d).expect("dir");
        std::fs::set_permissions(d, std::os::unix::fs::PermissionsExt::from_mode(0o777))
            .expect("chmod");
    }
    let run = format!(
        "# binds: \"{}:/run/ro:ro\", \"{}:/run/rw\"\nuid = 65534\ngid = 65534\nmkdir = [{{ path = \"/run/data\", owner = \"65534:4\", mode = \"0710\" }}]\nnet = \"none\"\nrlimits = [\"nofile,256,512\", \"core,0,0\"]\noomScoreAdj = 500\nreadonly = true",
        ro.display(),
        rw.display()
    );
    probe_service(
        &lab,
        "boxed",
        ", \"--write\", \"/run/ro\", \"--write\", \"/run/rw\", \"--write\", \"/var/tmp\", \"--stat\", \"/run/data\", \"--exists\", \"/srv/marker\", \"--exists\", \"/mnt/marker\"",
        &run,
    );
    // zedinit's own mounts (standing in for the container's /hostfs and /config binds)
    // must not reach the service: its root is a non-recursive bind of the image root.
    lab.start_after("mount -t tmpfs hostfs /srv && touch /srv/marker && mount -t tmpfs config /mnt && touch /mnt/marker");
    let r = report(&lab, "boxed");
    assert_eq!(r["writable"]["/run/ro"], false, "read-only bind");
    assert_eq!(r["writable"]["/run/rw"], true, "read-write bind");
    assert_eq!(r["writable"]["/var/tmp"], false, "readonly root");
    assert_eq!(
        r["stat"]["/run/data"],
        serde_json::json!({"uid": 65534, "gid": 4, "mode": "710"})
    );
    assert_eq!(
        r["exists"]["/srv/marker"], false,
        "zedinit's /srv mount is not inherited"
    );
    assert_eq!(
        r["exists"]["/mnt/marker"], false,
        "zedinit's /mnt mount is not inherited"
    );
    assert_eq!(r["interfaces"], serde_json::json!(["lo"]));
    assert_eq!(r["rlimits"]["nofile"], serde_json::json!([256, 512]));
    assert_eq!(r["rlimits"]["core"], serde_json::json!([0, 0]));
    assert_eq!(r["oom_score_adj"], 500);
    let mounts: Vec<&str> = r["mounts"]
        .as_array()
        .expect("mounts")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    for expected in [
        "/",
        "/proc",
        "/dev",
        "/dev/null",
        "/dev/pts",
        "/run",
        "/run/ro",
        "/run/rw",
        "/run/out",
    ] {
        assert!(
            mounts.contains(&expected),
            "{expected} missing from {mounts:?}"
        );
    }
    assert!(
        !mounts.contains(&"/srv") && !mounts.contains(&"/mnt") && !mounts.contains(&"/sys"),
        "{mounts:?}"
    );
    // The service did not leave anything in the directories it could not write.
    assert!(std::fs::read_dir(&ro).expect("ro").next().is_none());
}

#[test]
fn impossible_definitions_fail_with_the_step_named_and_the_others_run() {
    if !require_root("impossible_definitions_fail_with_the_step_named_and_the_others_run") {
        return;
    }
    let mut lab = Lab::new();
    let never = "[restart]\npolicy = \"never\"\n";
    let sleeper = format!("command = {}\n{never}", sh("exec sleep 1000"));
    lab.write_service(
        "nouser",
        &format!("{sleeper}[run]\nuid = \"no-such-user-zedctr\""),
    );
    lab.write_service(
        "nosource",
        &format!("{sleeper}[run]\nbinds = [\"/nonexistent/zedctr:/run/x\"]"),
    );
    lab.write_service("lowoom", &format!("{sleeper}[run]\noomScoreAdj = -900"));
    lab.write_service(
        "bighard",
        &format!("{sleeper}[run]\nrlimits = [\"nofile,1024,100000000\"]"),
    );
    lab.write_service(
        "fine",
        &format!("command = {}\n[run]\nuid = 65534", sh("exec sleep 1000")),
    );
    lab.start();
    lab.wait_state("fine", "running");
    let has_sys_resource = std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|h| u64::from_str_radix(h.trim(), 16).ok())
        .is_some_and(|m| m & (1 << 24) != 0);
    let mut cases = vec![
        ("nouser", "run.uid: unknown user \"no-such-user-zedctr\""),
        ("nosource", "run.binds: source /nonexistent/zedctr"),
    ];
    if has_sys_resource {
        eprintln!(
            "note: this machine grants CAP_SYS_RESOURCE, so lowering oom_score_adj and raising hard limits are allowed here; those two cases are not checked"
        );
    } else {
        cases.push(("lowoom", "step \"oomScoreAdj\""));
        cases.push(("bighard", "step \"rlimits\""));
    }
    for (name, expected) in cases {
        lab.wait_state(name, "failed");
        let status = lab.status();
        let note = status
            .service(name)
            .and_then(|s| s.note.clone())
            .unwrap_or_default();
        assert!(
            note.contains(expected),
            "{name}: {note:?} lacks {expected:?}"
        );
    }
    assert_eq!(lab.state("fine"), "running");
}

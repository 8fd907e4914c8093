//! The image's definitions for init.sh's duties whose programs this machine lacks (xen,
//! device-steps, strongswan), run by zedinit as PID 1 with the privileges they declare:
//! each is `skipped` while its condition's path is absent; with it present, device-steps
//! runs a hook in the foreground with its binds, xen's start script finds no Xen tools
//! and ends `stopped` (not `failed`: the critical service must not make the device
//! unhealthy for tools the image does not have), and strongswan with a configuration but
//! no program fails its start saying so.
//!
//! Only the paths differ from the image: the test's files stand for /proc/xen,
//! /opt/zededa/bin/device-steps.sh and /run/strongswan, and the repository's
//! rootfs/usr/lib/zedctr holds xen's script.

mod common;

use common::*;
use std::os::unix::fs::PermissionsExt;

const SERVICES: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../rootfs/etc/zedctr/services"
);
const LIB: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../rootfs/usr/lib/zedctr");

fn shipped(name: &str) -> String {
    std::fs::read_to_string(format!("{SERVICES}/{name}.toml")).expect("shipped definition")
}

fn replaced(text: String, pairs: &[(&str, String)]) -> String {
    pairs.iter().fold(text, |text, (from, to)| {
        assert!(text.contains(from), "{from:?} in:\n{text}");
        text.replace(from, to)
    })
}

#[test]
fn the_shipped_xen_device_steps_and_strongswan_are_skipped_without_their_paths() {
    if !require_root("the_shipped_xen_device_steps_and_strongswan_are_skipped_without_their_paths")
    {
        return;
    }
    let mut lab = Lab::new();
    let lib = std::fs::canonicalize(LIB)
        .expect("rootfs/usr/lib/zedctr")
        .display()
        .to_string();
    let (absent, present) = (lab.path("absent"), lab.path("present"));
    std::fs::create_dir(&present).expect("present");
    let (absent, present) = (absent.display().to_string(), present.display().to_string());
    for dir in ["persist", "config", "var-log", "dev-xen"] {
        std::fs::create_dir(lab.path(dir)).expect("dir");
    }
    let dir = |name: &str| lab.path(name).display().to_string();

    // xen: its condition (/proc/xen), its script from the repository, the test's dirs.
    let xen = |condition: &str| {
        replaced(
            shipped("xen"),
            &[
                (
                    "condition-path-exists = \"/proc/xen\"",
                    format!("condition-path-exists = {}", toml_string(condition)),
                ),
                (
                    "command = [\"/usr/lib/zedctr/xen-start\"]",
                    format!("command = [{}]", toml_string(&format!("{lib}/xen-start"))),
                ),
                (
                    "\"/dev/xen:/dev/xen\",",
                    format!(
                        "{}, {},",
                        toml_string(&format!("{}:/dev/xen", dir("dev-xen"))),
                        toml_string(&format!("{lib}:{lib}:ro"))
                    ),
                ),
                (
                    "\"/var/log/dom0:/var/log\",",
                    format!("{},", toml_string(&format!("{}:/var/log", dir("var-log")))),
                ),
            ],
        )
    };
    lab.write_service("xen-none", &xen(&absent));
    lab.write_service("xen", &xen(&present));

    // device-steps: a hook that stays in the foreground and writes into /persist.
    let hook = lab.path("device-steps.sh");
    std::fs::write(
        &hook,
        "#!/bin/sh\necho \"agents started as $(id -u)\" > /persist/device-steps.ran\nexec sleep 1000\n",
    )
    .expect("hook");
    std::fs::set_permissions(&hook, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let hook = hook.display().to_string();
    let steps = |condition: &str| {
        replaced(
            shipped("device-steps"),
            &[
                (
                    "command = [\"/opt/zededa/bin/device-steps.sh\"]",
                    format!("command = [{}]", toml_string(&hook)),
                ),
                (
                    "condition-path-exists = \"/opt/zededa/bin/device-steps.sh\"",
                    format!("condition-path-exists = {}", toml_string(condition)),
                ),
                (
                    "\"/config:/config\",",
                    format!("{},", toml_string(&format!("{}:/config", dir("config")))),
                ),
                (
                    "\"/persist:/persist\",",
                    format!("{},", toml_string(&format!("{}:/persist", dir("persist")))),
                ),
                (
                    "\"/var/log/dom0:/var/log\",",
                    format!("{},", toml_string(&format!("{}:/var/log", dir("var-log")))),
                ),
            ],
        )
    };
    lab.write_service("device-steps-none", &steps(&absent));
    lab.write_service("device-steps", &steps(&hook));

    // strongswan: a configuration (never in the image), no program on this machine.
    let conf = lab.path("strongswan");
    std::fs::create_dir(&conf).expect("strongswan");
    std::fs::write(conf.join("ipsec.conf"), "config setup\n").expect("ipsec.conf");
    std::fs::write(conf.join("ipsec.secrets"), "").expect("ipsec.secrets");
    let conf = conf.display().to_string();
    let strongswan = |program: &str, config: &str| {
        replaced(
            shipped("strongswan"),
            &[
                (
                    "condition-path-exists = [\"/usr/sbin/ipsec\", \"/run/strongswan/ipsec.conf\"]",
                    format!(
                        "condition-path-exists = [{}, {}]",
                        toml_string(program),
                        toml_string(config)
                    ),
                ),
                (
                    "\"/run/strongswan/ipsec.conf:",
                    format!("\"{conf}/ipsec.conf:"),
                ),
                (
                    "\"/run/strongswan/ipsec.secrets:",
                    format!("\"{conf}/ipsec.secrets:"),
                ),
            ],
        )
    };
    let conf_file = format!("{conf}/ipsec.conf");
    // As shipped: no configuration, and no program on this machine (nor in the image).
    lab.write_service("strongswan-none", &strongswan("/usr/sbin/ipsec", &absent));
    // A configuration but no program: skipped too, naming the program.
    lab.write_service(
        "strongswan-noprog",
        &strongswan("/usr/sbin/ipsec", &conf_file),
    );
    // Both conditions met (the program's condition pointed at a file that exists): it
    // is started.
    lab.write_service("strongswan", &strongswan("/bin/sh", &conf_file));
    assert!(
        !std::path::Path::new("/usr/sbin/ipsec").exists(),
        "this test expects no strongswan on the machine"
    );

    lab.start();
    for name in [
        "xen-none",
        "device-steps-none",
        "strongswan-none",
        "strongswan-noprog",
    ] {
        lab.wait_state(name, "skipped");
    }
    let note = |name: &str| lab.status().service(name).and_then(|s| s.note.clone());
    assert_eq!(
        note("strongswan-noprog").as_deref(),
        Some("condition: /usr/sbin/ipsec does not exist")
    );
    // The hook runs confined, as root, with the device's /persist.
    lab.wait_state("device-steps", "running");
    wait_until("the hook wrote into /persist", || {
        std::fs::read_to_string(lab.path("persist/device-steps.ran"))
            .is_ok_and(|t| t.trim() == "agents started as 0")
    });
    // No Xen tools on this machine (nor in the image): stopped, said why, and healthy.
    assert!(!std::path::Path::new("/etc/init.d/xencommons").exists());
    lab.wait_state("xen", "stopped");
    wait_until("xen's script said why (its log)", || {
        lab.read("logs/xen.log")
            .contains("this image has no Xen tools")
    });
    let (code, out, _) = lab.supctl(&["health"]);
    assert_eq!(code, 0, "healthy: {out}");
    // Both conditions held: started, and (no program here) the start fails naming it.
    wait_until("strongswan's start fails naming /usr/sbin/ipsec", || {
        lab.status()
            .service("strongswan")
            .and_then(|s| s.note.clone())
            .is_some_and(|note| note.contains("cannot start: /usr/sbin/ipsec: No such file"))
    });
}

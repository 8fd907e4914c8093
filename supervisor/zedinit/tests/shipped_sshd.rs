//! The image's sshd-keys and sshd definitions (rootfs/etc/zedctr/services/), run by
//! zedinit as PID 1 with the privileges they declare, with the real OpenSSH: host keys
//! are made on the "device" at its first start, kept across restarts and differ between
//! devices (init.sh baked one into the image); a key in the device's authorized_keys logs
//! in as root; a password never does (there is none, and sshd offers only keys).
//!
//! Only the paths differ from the image: the test's directories stand for /persist/ssh
//! and /config, sshd listens on a free port of 127.0.0.1, and the repository's
//! rootfs/etc/zedctr holds sshd_config.

mod common;

use common::*;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

const SERVICES: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../rootfs/etc/zedctr/services"
);
const ETC: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../rootfs/etc/zedctr");

fn shipped(name: &str) -> String {
    std::fs::read_to_string(format!("{SERVICES}/{name}.toml")).expect("shipped definition")
}

fn replaced(text: String, pairs: &[(&str, String)]) -> String {
    pairs.iter().fold(text, |text, (from, to)| {
        assert!(
            text.contains(from),
            "{from:?} in the shipped definition:\n{text}"
        );
        text.replace(from, to)
    })
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

fn ssh(port: u16, args: &[&str]) -> std::process::Output {
    Command::new("ssh")
        .args(["-p", &port.to_string(), "-o", "StrictHostKeyChecking=no"])
        .args([
            "-o",
            "UserKnownHostsFile=/dev/null",
            "-o",
            "BatchMode=yes",
            "-o",
            "ConnectTimeout=10",
        ])
        .args(args)
        .output()
        .expect("ssh (scripts/install-deps installs openssh-client)")
}

#[test]
fn sshd_logs_in_with_the_devices_keys_only_and_host_keys_are_made_per_device() {
    if !require_root("sshd_logs_in_with_the_devices_keys_only_and_host_keys_are_made_per_device") {
        return;
    }
    let canonical_etc = std::fs::canonicalize(ETC)
        .expect("rootfs/etc/zedctr")
        .display()
        .to_string();
    let mut lab = Lab::new();
    let (persist, persist2, config) = (
        lab.path("persist-ssh"),
        lab.path("persist-ssh-2"),
        lab.path("config"),
    );
    for dir in [&persist, &persist2, &config] {
        std::fs::create_dir(dir).expect("dir");
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    }
    // The operator's key, in the device's authorized_keys.
    let key = lab.path("id_ed25519");
    let made = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(&key)
        .status()
        .expect("ssh-keygen");
    assert!(made.success());
    std::fs::copy(lab.path("id_ed25519.pub"), config.join("authorized_keys"))
        .expect("authorized_keys");

    let keys = |dir: &Path| {
        replaced(
            shipped("sshd-keys"),
            &[
                ("requires = [\"zedctr-dirs\"]", String::new()),
                (
                    "\"/persist/ssh:/persist/ssh\"",
                    toml_string(&format!("{}:/persist/ssh", dir.display())),
                ),
            ],
        )
    };
    lab.write_service("sshd-keys", &keys(&persist));
    lab.write_service("sshd-keys-2", &keys(&persist2));
    let port = free_port();
    lab.write_service(
        "sshd",
        &replaced(
            shipped("sshd"),
            &[
                (
                    "\"-f\", \"/etc/zedctr/sshd_config\"]",
                    format!(
                        "\"-f\", {}, \"-o\", \"ListenAddress=127.0.0.1:{port}\"]",
                        toml_string(&format!("{canonical_etc}/sshd_config"))
                    ),
                ),
                (
                    "\"/persist/ssh:/persist/ssh:ro\",",
                    format!(
                        "{}, {},",
                        toml_string(&format!("{}:/persist/ssh:ro", persist.display())),
                        toml_string(&format!("{canonical_etc}:{canonical_etc}:ro"))
                    ),
                ),
                (
                    "\"/config:/config:ro\",",
                    format!(
                        "{},",
                        toml_string(&format!("{}:/config:ro", config.display()))
                    ),
                ),
            ],
        ),
    );
    lab.start();
    lab.wait_state("sshd-keys", "done");
    lab.wait_state("sshd-keys-2", "done");
    lab.wait_state("sshd", "running");

    // Host keys made on the device, private to root, different on another device.
    let host_key = persist.join("etc/ssh/ssh_host_ed25519_key");
    let mode = std::fs::metadata(&host_key)
        .expect("host key made")
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600, "the host key is root's alone");
    let public = |dir: &Path| {
        std::fs::read_to_string(dir.join("etc/ssh/ssh_host_ed25519_key.pub")).expect("pub")
    };
    let first = public(&persist);
    assert_ne!(first, public(&persist2), "two devices, two host keys");

    // A key from authorized_keys logs in as root; sshd presents the device's host key.
    let mut login = None;
    wait_until("a key login", || {
        let out = ssh(
            port,
            &[
                "-i",
                &key.display().to_string(),
                "root@127.0.0.1",
                "echo logged-in-as-$(id -u)",
            ],
        );
        let ok = out.status.success();
        login = Some(out);
        ok
    });
    let out = login.expect("login");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "logged-in-as-0"
    );
    // An interactive session: a pty handed to the user (CHOWN, FOWNER) and its login
    // recorded (AUDIT_WRITE; without it sshd ends the session at once).
    let out = ssh(
        port,
        &[
            "-tt",
            "-i",
            &key.display().to_string(),
            "root@127.0.0.1",
            "tty && echo pty-ok",
        ],
    );
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        said.contains("/dev/pts/") && said.contains("pty-ok"),
        "a pty session: {said} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let scanned = Command::new("ssh-keyscan")
        .args(["-p", &port.to_string(), "-t", "ed25519", "127.0.0.1"])
        .output()
        .expect("ssh-keyscan");
    let presented = String::from_utf8_lossy(&scanned.stdout);
    let key_text = first.split_whitespace().nth(1).expect("key");
    assert!(
        presented.contains(key_text),
        "sshd presents the device's host key: {presented}"
    );

    // No password: sshd offers only public keys, and refuses without one.
    let out = ssh(
        port,
        &[
            "-o",
            "PubkeyAuthentication=no",
            "-o",
            "PreferredAuthentications=password,keyboard-interactive",
            "root@127.0.0.1",
            "true",
        ],
    );
    assert!(!out.status.success(), "a login without a key is refused");
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        said.contains("Permission denied (publickey)"),
        "only keys are offered: {said}"
    );

    // A restart of sshd-keys keeps the device's keys.
    let (code, _, stderr) = lab.supctl(&["restart", "sshd-keys"]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(
        public(&persist),
        first,
        "host keys survive: made once per device"
    );
}

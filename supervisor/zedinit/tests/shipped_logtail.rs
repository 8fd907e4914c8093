//! The image's own logtail definition (rootfs/etc/zedctr/services/logtail.toml), run by
//! zedinit as PID 1 with the privileges it declares — an unprivileged user, the read-only
//! root, no network, only CAP_DAC_READ_SEARCH, ambient — follows a root-only 0600 log and
//! prints its lines on zedinit's console, and stops cleanly on `supctl stop`. The same
//! definition without the capability can't read it: the capability is what it needs.
//!
//! Only the paths differ from the image: the binary's directory is bound in, and the
//! test's directories stand for /var/log and the host's /run/logtail.

mod common;

use common::*;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

const SHIPPED: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../rootfs/etc/zedctr/services/logtail.toml"
);

/// The logtail binary (another package's: the harness finds or builds it).
fn logtail_binary() -> String {
    lab::bin("logtail").display().to_string()
}

/// The shipped definition with the test's paths, and `tweak` applied to its text.
fn definition(logs: &Path, state: &Path, tweak: impl Fn(String) -> String) -> String {
    let binary = logtail_binary();
    let bin_dir = Path::new(&binary)
        .parent()
        .expect("bin dir")
        .display()
        .to_string();
    let text = std::fs::read_to_string(SHIPPED).expect("shipped logtail.toml");
    let text = text
        .replace("\"/usr/bin/logtail\"", &toml_string(&binary))
        .replace(
            "\"/var/log/dom0:/var/log:ro\",",
            &format!(
                "{}, {},",
                toml_string(&format!("{}:/var/log:ro", logs.display())),
                toml_string(&format!("{bin_dir}:{bin_dir}:ro")),
            ),
        )
        .replace(
            "\"/run/logtail:/run/logtail\",",
            &format!(
                "{},",
                toml_string(&format!("{}:/run/logtail", state.display()))
            ),
        )
        .replace("requires = [\"zedctr-dirs\"]", "");
    assert!(
        text.contains(&binary) && text.contains(":/var/log:ro"),
        "paths replaced:\n{text}"
    );
    tweak(text)
}

#[test]
fn the_shipped_logtail_reads_a_root_only_log_with_only_the_capability_it_declares() {
    if !require_root(
        "the_shipped_logtail_reads_a_root_only_log_with_only_the_capability_it_declares",
    ) {
        return;
    }
    let mut lab = Lab::new();
    let logs = lab.path("var-log");
    std::fs::create_dir(&logs).expect("logs");
    let secret = logs.join("secret.log");
    std::fs::write(&secret, "first line\n").expect("secret.log");
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    let (state, state_nocap) = (lab.path("run-logtail"), lab.path("run-logtail-nocap"));
    std::fs::create_dir(&state).expect("state");
    std::fs::create_dir(&state_nocap).expect("state");

    lab.write_service("logtail", &definition(&logs, &state, |t| t));
    lab.write_service(
        "logtail-nocap",
        &definition(&logs, &state_nocap, |t| {
            t.replace(
                "capabilities = [\"CAP_DAC_READ_SEARCH\"]",
                "capabilities = []",
            )
            .replace("ambient = [\"CAP_DAC_READ_SEARCH\"]", "")
        }),
    );
    lab.start();
    lab.wait_state("logtail", "running");
    lab.wait_state("logtail-nocap", "running");
    let console = |text: &str| lab.read("zedinit.log").contains(text);
    wait_until("the root-only log's line on the console", || {
        console("/var/log/secret.log: first line")
    });
    append_line(&secret, "second line");
    wait_until("a new line on the console", || {
        console("/var/log/secret.log: second line")
    });
    wait_until("without the capability: permission denied", || {
        // logtail says it as a JSON line (its stderr is a pipe): its message holds it.
        console("/var/log/secret.log: Permission denied")
    });
    assert_eq!(
        lab.read("zedinit.log")
            .matches("/var/log/secret.log: second line")
            .count(),
        1,
        "printed once, by the logtail that has the capability"
    );

    let (code, _, stderr) = lab.supctl(&["stop", "logtail"]);
    assert_eq!(code, 0, "supctl stop: {stderr}");
    let saved: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(state.join("state/positions.json")).expect("state file"),
    )
    .expect("state parses");
    assert_eq!(saved["clean"], true, "SIGTERM saved a clean state: {saved}");
    assert_eq!(saved["files"][0]["path"], "/var/log/secret.log");
    assert_eq!(saved["files"][0]["offset"], 23);
}

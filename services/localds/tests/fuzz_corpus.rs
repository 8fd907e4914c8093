//! The committed fuzz corpus (`fuzz/corpus/<target>/`: seeds, and inputs that once
//! crashed a target) replayed through this crate's fuzz entry points on the stable
//! toolchain, so a fixed crash stays fixed. Fuzzing itself: `bench/fuzz`.

use std::path::PathBuf;

/// Runs every file of `target`'s corpus through `run`, naming the file that fails.
fn replay(target: &str, run: impl Fn(&[u8]) + std::panic::RefUnwindSafe) {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/corpus")
        .join(target);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.expect("corpus entry").path())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "{}: no corpus", dir.display());
    for file in files {
        let data = std::fs::read(&file).expect("corpus file");
        if std::panic::catch_unwind(|| run(&data)).is_err() {
            panic!(
                "{target}: {} fails (run `cargo +nightly fuzz run {target} {}` in fuzz/)",
                file.display(),
                file.display()
            );
        }
    }
}

#[test]
fn localds_dns_answer_corpus() {
    replay("localds_dns_answer", localds::fuzzing::dns_answer);
}

#[test]
fn mdns_sd_packet_corpus() {
    replay("mdns_sd_packet", |data| {
        mdns_sd::fuzz_api::parse_packet(&localds::fuzzing::known_question_types(data))
    });
}

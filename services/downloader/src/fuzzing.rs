//! One entry point per fuzz target of this crate (`fuzz/fuzz_targets/`): a plain
//! function of the input bytes that returns on any input, panicking only when a parser
//! panicked or a checked property broke. `tests/fuzz_corpus.rs` replays the committed
//! corpus (`fuzz/corpus/<target>/`) through the same functions on the stable toolchain.

use std::path::Path;

/// A request file (`<config-dir>/<key>.json`): a request it accepts is one the engine
/// can act on, a refusal names the file and at least one problem.
pub fn request(data: &[u8]) {
    match crate::request::parse(Path::new("/persist/downloader/config/k.json"), data) {
        Ok(r) => {
            assert!(!r.name.is_empty());
            assert!(matches!(r.url.scheme(), "http" | "https") && r.url.host().is_some());
            assert!(
                r.sha256.len() == 64
                    && r.sha256
                        .bytes()
                        .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
            );
        }
        Err(e) => {
            assert!(!e.problems.is_empty(), "a refusal says why");
            assert!(
                e.to_string()
                    .starts_with("/persist/downloader/config/k.json: ")
            );
        }
    }
}

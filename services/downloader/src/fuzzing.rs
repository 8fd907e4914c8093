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

/// A response head as the plain-`http` path reads it ([`crate::http1`]): never a panic;
/// a head it accepts ends within what was read and within the limit, and a body length
/// it takes is a single agreed `Content-Length`.
pub fn http_head(data: &[u8]) {
    use crate::http1::{self, Framing, HEAD_LIMIT};
    let Ok(Some(head)) = http1::parse(data) else {
        return;
    };
    assert!(head.len <= data.len() && head.len <= HEAD_LIMIT);
    assert!(head.headers.len() <= http1::MAX_HEADERS);
    if let Ok(Framing::Length(n)) = http1::framing(&head) {
        let values: Vec<_> = head.headers.get_all("content-length").iter().collect();
        assert!(!values.is_empty());
        assert!(!head.headers.contains_key("transfer-encoding"));
        for v in values {
            let text = std::str::from_utf8(v.as_bytes()).expect("digits are ASCII");
            assert!(text.split(',').all(|m| m.trim().parse::<u64>() == Ok(n)));
        }
    }
}

//! One entry point per fuzz target of this crate (`fuzz/fuzz_targets/`): a plain
//! function of the input bytes that returns on any input, panicking only when a parser
//! panicked or a checked property broke. `tests/fuzz_corpus.rs` replays the committed
//! corpus (`fuzz/corpus/<target>/`) through the same functions on the stable toolchain.

use crate::lines::{LineBuffer, escaped};
use crate::plan::{Seen, Start, on_start};
use crate::state::State;

/// A state file (what a crash, a disk error or another writer may leave), then the start
/// plan made from it against files like the ones it names: some grown, some truncated,
/// some renamed to a name not followed.
pub fn state(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(state) = State::parse(text) else {
        return;
    };
    let seen: Vec<Seen> = state
        .files
        .iter()
        .enumerate()
        .map(|(i, saved)| Seen {
            path: if i % 3 == 2 {
                saved.path.with_extension("1")
            } else {
                saved.path.clone()
            },
            id: saved.id,
            size: if i % 2 == 0 {
                saved.offset.saturating_add(10)
            } else {
                saved.offset / 2
            },
            followed: i % 3 != 2,
        })
        .collect();
    let plan = on_start(Some(&state), &seen, 10);
    for follow in &plan.follows {
        let Start::At(at) = follow.start else {
            panic!("a saved state never starts at last lines: {follow:?}");
        };
        assert!(
            seen.iter().any(|s| s.path == follow.path && at <= s.size),
            "{follow:?} starts past the end of its file"
        );
    }
    for note in &plan.notes {
        let _ = escaped(note.as_bytes());
    }
}

/// Bytes read from a log file, as they arrive (the first two bytes: the read size and
/// the line limit), turned into console lines: each one `LABEL: ` or `LABEL:+ ` and
/// text a terminal shows as text, at most the limit of the file's bytes each; plain
/// text read back from the pieces is the file's lines, none lost, cut or doubled.
pub fn lines(data: &[u8]) {
    let [size, limit, rest @ ..] = data else {
        return;
    };
    let max_line = usize::from(*limit) + 1;
    let label = escaped(b"/var/log/app\x1b[2J.log");
    let mut buffer = LineBuffer::default();
    let mut out = Vec::new();
    let mut printed = 0;
    for chunk in rest.chunks(usize::from(*size) + 1) {
        printed += buffer.push(chunk, &label, max_line, &mut out);
        assert!(buffer.held() < max_line, "holds a whole line's worth");
    }
    printed += buffer.flush(&label, &mut out);
    assert_eq!(buffer.held(), 0);
    let text = std::str::from_utf8(&out).expect("console output is UTF-8");
    assert_eq!(text.lines().count(), printed);
    assert!(out.is_empty() || out.ends_with(b"\n"));
    for line in text.lines() {
        let body = line
            .strip_prefix(&format!("{label}: "))
            .or_else(|| line.strip_prefix(&format!("{label}:+ ")))
            .unwrap_or_else(|| panic!("unlabelled line {line:?}"));
        assert!(
            !body.chars().any(|c| c.is_control() && c != '\t'),
            "a control character reaches the console: {body:?}"
        );
    }
    // Plain text comes out whole: the pieces of each line, joined, are the line.
    if rest
        .iter()
        .all(|b| *b == b'\n' || *b == b'\t' || (b' '..=b'~').contains(b))
    {
        let mut again: Vec<String> = Vec::new();
        for line in text.lines() {
            match line.strip_prefix(&format!("{label}:+ ")) {
                Some(more) => again
                    .last_mut()
                    .expect("a piece continues a line")
                    .push_str(more),
                None => again.push(line[label.len() + 2..].to_string()),
            }
        }
        let input = std::str::from_utf8(rest).expect("ASCII");
        let want: Vec<&str> = input.lines().collect();
        assert_eq!(again, want, "lines lost, cut or doubled");
    }
}

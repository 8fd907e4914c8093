//! Bytes read from one log file, turned into console lines `LABEL: text\n`.
//!
//! A file's last, unfinished line waits in [`LineBuffer`] until its newline arrives, so
//! a line is printed whole and once; what it holds is not counted as printed (the saved
//! offset points at its start, so a restart reads it again). A line longer than the
//! limit is printed in pieces, the later ones marked `LABEL:+ `, so a writer that never
//! ends its line can't make logtail hold unbounded memory.
//!
//! The console is a terminal: [`escape_into`] shows C0 control characters other than tab
//! and DEL as `\x1b`, C1 control characters (U+0080–U+009F: a UTF-8 `\xc2\x9b` is CSI
//! to a terminal in UTF-8 mode, like `ESC [`) as `\u{9b}`, and bytes that are not UTF-8
//! as U+FFFD, so neither a log's text nor its file's name (the label) can move the
//! cursor, change colours or set the title.

use std::io::Write as _;

/// The unfinished tail of one file's output.
#[derive(Debug, Default)]
pub struct LineBuffer {
    pending: Vec<u8>,
    /// The pending bytes continue a line already printed in part (cut at the limit).
    continued: bool,
}

impl LineBuffer {
    /// Bytes held back: read, not yet printed.
    pub fn held(&self) -> usize {
        self.pending.len()
    }

    /// Appends `data` and prints every line it completes into `out`; returns how many
    /// lines (or pieces) went out.
    pub fn push(&mut self, data: &[u8], label: &str, max_line: usize, out: &mut Vec<u8>) -> usize {
        let max_line = max_line.max(1);
        let mut printed = 0;
        let mut rest = data;
        let mut tried_plain = false;
        loop {
            // The usual case, a flood of plain lines: every whole line left at once, once
            // the line held (if any) is done. Tried once: if they are not all plain, the
            // lines go one by one.
            if !tried_plain && self.pending.is_empty() && !self.continued {
                tried_plain = true;
                let (lines, after) = plain_lines(rest, label, max_line, out);
                printed += lines;
                rest = after;
            }
            let Some(newline) = memchr::memchr(b'\n', rest) else {
                break;
            };
            let (line, after) = rest.split_at(newline);
            if self.pending.is_empty() {
                printed += self.print_in_pieces(line, label, max_line, out);
            } else {
                self.pending.extend_from_slice(line);
                let whole = std::mem::take(&mut self.pending);
                printed += self.print_in_pieces(&whole, label, max_line, out);
            }
            self.continued = false;
            rest = &after[1..];
        }
        self.pending.extend_from_slice(rest);
        while self.pending.len() >= max_line {
            let piece: Vec<u8> = self.pending.drain(..max_line).collect();
            self.print(&piece, label, out);
            self.continued = true;
            printed += 1;
        }
        printed
    }

    /// Prints what is held as a last line: the file ends here (it was rotated away and
    /// went quiet, or was truncated under it).
    pub fn flush(&mut self, label: &str, out: &mut Vec<u8>) -> usize {
        if self.pending.is_empty() {
            return 0;
        }
        let last = std::mem::take(&mut self.pending);
        self.print(&last, label, out);
        self.continued = false;
        1
    }

    /// `line` (no newline) as one or more console lines of at most `max_line` bytes.
    fn print_in_pieces(
        &mut self,
        line: &[u8],
        label: &str,
        max_line: usize,
        out: &mut Vec<u8>,
    ) -> usize {
        let mut printed = 0;
        for piece in line.chunks(max_line) {
            self.print(piece, label, out);
            self.continued = true;
            printed += 1;
        }
        // An empty line is printed too, unless it is the end of a line already printed
        // in pieces (the newline came right after a cut).
        if line.is_empty() && !self.continued {
            self.print(line, label, out);
            printed += 1;
        }
        printed
    }

    /// `label` is already escaped (see [`escaped`]).
    fn print(&self, text: &[u8], label: &str, out: &mut Vec<u8>) {
        out.extend_from_slice(label.as_bytes());
        out.extend_from_slice(if self.continued { b":+ " } else { b": " });
        let text = text.strip_suffix(b"\r").unwrap_or(text);
        escape_into(text, out);
        out.push(b'\n');
    }
}

/// Prints the whole lines at the start of `data` if they are all plain (ASCII without
/// control characters but tab, no CR, none longer than `max_line`), each as `label: line`;
/// returns how many and what is left (everything when they are not). What this copies
/// is exactly what [`LineBuffer::print`] and [`escape_into`] would make of those lines,
/// without looking at each line's bytes twice: one branch-free pass over the block (it
/// vectorises) and one copy per line.
fn plain_lines<'a>(
    data: &'a [u8],
    label: &str,
    max_line: usize,
    out: &mut Vec<u8>,
) -> (usize, &'a [u8]) {
    let Some(last) = memchr::memrchr(b'\n', data) else {
        return (0, data);
    };
    let (block, rest) = data.split_at(last + 1);
    // Any control character but tab and newline (CR included: it is stripped, which this
    // path does not do), DEL, or a byte >= 0x80.
    let unusual = block.iter().fold(false, |any, &b| {
        any | ((b < 0x20) & (b != b'\t') & (b != b'\n')) | (b >= 0x7f)
    });
    if unusual {
        return (0, data);
    }
    let before = out.len();
    // The label and its `: ` as one copy per line. No exact reservation: counting the
    // lines first was a pass over the block of its own (5 % of a flood's CPU).
    let mut prefix = Vec::with_capacity(label.len() + 2);
    prefix.extend_from_slice(label.as_bytes());
    prefix.extend_from_slice(b": ");
    out.reserve(block.len() + 64 * prefix.len());
    let mut lines = 0;
    let mut start = 0;
    for end in memchr::memchr_iter(b'\n', block) {
        if end - start > max_line {
            // Pieces are marked: the per-line path does that. Undo, let it print all.
            out.truncate(before);
            return (0, data);
        }
        out.extend_from_slice(&prefix);
        out.extend_from_slice(&block[start..=end]);
        start = end + 1;
        lines += 1;
    }
    (lines, rest)
}

/// `text` (a file name, a message) as [`escape_into`] shows it.
pub fn escaped(text: &[u8]) -> String {
    let mut out = Vec::with_capacity(text.len());
    escape_into(text, &mut out);
    // Always UTF-8 (invalid input became U+FFFD): the lossy conversion copies nothing.
    String::from_utf8_lossy(&out).into_owned()
}

/// Appends `text` to `out` safe for a terminal: C0 controls but tab, DEL and C1 controls
/// escaped, invalid UTF-8 as U+FFFD.
pub fn escape_into(text: &[u8], out: &mut Vec<u8>) {
    // The usual line, plain ASCII without control characters but tab, is copied as it is
    // (the per-character path below costs twice the CPU on a flood). Branch-free, so it
    // vectorises: any byte below space but tab, DEL, or any byte >= 0x80 (part of a
    // multi-byte character, which may be a C1 control, or not UTF-8).
    let unusual = text.iter().fold(false, |any, &b| {
        any | ((b < 0x20) & (b != b'\t')) | (b >= 0x7f)
    });
    if !unusual || is_safe_utf8(text) {
        out.extend_from_slice(text);
        return;
    }
    for chunk in text.utf8_chunks() {
        let valid = chunk.valid();
        // Runs of characters that need nothing are copied whole.
        let mut run = 0;
        for (at, c) in valid.char_indices() {
            let code = c as u32;
            let c0 = (code < 0x20 && c != '\t') || code == 0x7f;
            let c1 = (0x80..=0x9f).contains(&code);
            if c0 || c1 {
                out.extend_from_slice(&valid.as_bytes()[run..at]);
                run = at + c.len_utf8();
                let _ = if c0 {
                    write!(out, "\\x{code:02x}")
                } else {
                    write!(out, "\\u{{{code:x}}}")
                };
            }
        }
        out.extend_from_slice(&valid.as_bytes()[run..]);
        if !chunk.invalid().is_empty() {
            out.extend_from_slice("\u{fffd}".as_bytes());
        }
    }
}

/// `text` is UTF-8 without a control character but tab (C0, DEL, C1): a line with
/// accents or other scripts is copied as it is too.
fn is_safe_utf8(text: &[u8]) -> bool {
    let c0 = text.iter().fold(false, |any, &b| {
        any | ((b < 0x20) & (b != b'\t')) | (b == 0x7f)
    });
    !c0 && std::str::from_utf8(text).is_ok() && !has_c1(text)
}

/// Valid UTF-8 `text` holds a C1 control: U+0080–U+009F are encoded `\xc2\x80` to
/// `\xc2\x9f`, and in valid UTF-8 a 0xc2 byte always starts a character.
fn has_c1(text: &[u8]) -> bool {
    memchr::memchr_iter(0xc2, text).any(|i| text.get(i + 1).is_some_and(|&b| b < 0xa0))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn push_all(buffer: &mut LineBuffer, parts: &[&[u8]], max: usize) -> String {
        let mut out = Vec::new();
        for part in parts {
            buffer.push(part, "/var/log/a.log", max, &mut out);
        }
        String::from_utf8(out).expect("utf-8 out")
    }

    #[test]
    fn whole_lines_go_out_and_the_unfinished_one_waits() {
        let mut buffer = LineBuffer::default();
        let out = push_all(&mut buffer, &[b"one\ntw", b"o\nthr"], 1024);
        assert_eq!(out, "/var/log/a.log: one\n/var/log/a.log: two\n");
        assert_eq!(buffer.held(), 3);
        let out = push_all(&mut buffer, &[b"ee\n"], 1024);
        assert_eq!(out, "/var/log/a.log: three\n");
        assert_eq!(buffer.held(), 0);
    }

    #[test]
    fn empty_lines_and_crlf() {
        let mut buffer = LineBuffer::default();
        let out = push_all(&mut buffer, &[b"\nwin\r\n"], 1024);
        assert_eq!(out, "/var/log/a.log: \n/var/log/a.log: win\n");
    }

    #[test]
    fn a_long_line_goes_out_in_marked_pieces_and_memory_stays_bounded() {
        let mut buffer = LineBuffer::default();
        let out = push_all(&mut buffer, &[b"abcdefghij", b"kl\nxy\n"], 4);
        assert_eq!(
            out,
            "/var/log/a.log: abcd\n/var/log/a.log:+ efgh\n/var/log/a.log:+ ijkl\n/var/log/a.log: xy\n"
        );
        assert_eq!(buffer.held(), 0);
        // The newline right after a cut ends the line: no empty piece.
        let mut buffer = LineBuffer::default();
        assert_eq!(
            push_all(&mut buffer, &[b"abcd", b"\n"], 4),
            "/var/log/a.log: abcd\n"
        );
        // Never more than the limit held.
        let mut buffer = LineBuffer::default();
        push_all(&mut buffer, &[&[b'x'; 100]], 8);
        assert!(buffer.held() < 8);
    }

    #[test]
    fn a_block_of_plain_lines_prints_as_its_lines_one_by_one_would() {
        // Plain blocks take the block path; a CR, a control, UTF-8, an over-long line or
        // an unfinished one the per-line path. Every way of cutting the input must print
        // what pushing it one line at a time prints.
        let text: &[u8] =
            b"one\ntwo\tx\n\nthree\r\nfour \x1b[1m\nf\xc3\xa9\nlong-long-line\nsix\nsev";
        let mut by_line = LineBuffer::default();
        let mut expected = Vec::new();
        for piece in text.split_inclusive(|&b| b == b'\n') {
            by_line.push(piece, "L", 8, &mut expected);
        }
        for cut in 0..=text.len() {
            for second in cut..=text.len() {
                let mut buffer = LineBuffer::default();
                let mut out = Vec::new();
                for part in [&text[..cut], &text[cut..second], &text[second..]] {
                    buffer.push(part, "L", 8, &mut out);
                }
                assert_eq!(
                    String::from_utf8_lossy(&out),
                    String::from_utf8_lossy(&expected),
                    "cut at {cut} and {second}"
                );
                assert_eq!(buffer.held(), by_line.held());
            }
        }
        // All plain: the block path alone, line for line.
        let mut buffer = LineBuffer::default();
        let mut out = Vec::new();
        assert_eq!(buffer.push(b"a\nbb\n\nccc\n", "/l", 8, &mut out), 4);
        assert_eq!(out, b"/l: a\n/l: bb\n/l: \n/l: ccc\n");
    }

    #[test]
    fn flush_prints_the_unfinished_line() {
        let mut buffer = LineBuffer::default();
        let mut out = Vec::new();
        buffer.push(b"last words", "L", 1024, &mut out);
        assert!(out.is_empty());
        assert_eq!(buffer.flush("L", &mut out), 1);
        assert_eq!(out, b"L: last words\n");
        assert_eq!(buffer.flush("L", &mut out), 0);
    }

    #[test]
    fn control_characters_are_escaped_and_bad_utf8_replaced() {
        let mut buffer = LineBuffer::default();
        let out = push_all(&mut buffer, &[b"\x1b[31mred\ttab \xff\n"], 1024);
        assert_eq!(out, "/var/log/a.log: \\x1b[31mred\ttab \u{fffd}\n");
    }

    fn shown(text: &[u8]) -> String {
        let mut out = Vec::new();
        escape_into(text, &mut out);
        String::from_utf8(out).expect("escaped text is UTF-8")
    }

    #[test]
    fn raw_escape_and_other_c0_controls_and_del_are_escaped() {
        assert_eq!(shown(b"\x1b[2J\x1b]0;t\x07"), "\\x1b[2J\\x1b]0;t\\x07");
        assert_eq!(shown(b"a\rb\x08c\x7fd\x00"), "a\\x0db\\x08c\\x7fd\\x00");
        assert_eq!(shown(b"tab\tstays"), "tab\tstays");
    }

    #[test]
    fn c1_controls_in_utf8_are_escaped() {
        // U+009B (CSI) and U+009D (OSC): a UTF-8 terminal acts on them like ESC [ and ESC ].
        assert_eq!(shown(b"c1 \xc2\x9b2J\xc2\x9b31m"), "c1 \\u{9b}2J\\u{9b}31m");
        assert_eq!(shown(b"\xc2\x9d0;t\xc2\x9c"), "\\u{9d}0;t\\u{9c}");
        assert_eq!(shown(b"\xc2\x80\xc2\x9f"), "\\u{80}\\u{9f}");
        // With a C0 control in the same line (the other path to the per-character loop).
        assert_eq!(shown(b"\x1b\xc2\x9b"), "\\x1b\\u{9b}");
    }

    #[test]
    fn other_characters_pass_and_invalid_utf8_is_replaced() {
        // U+00A0 (`\xc2\xa0`) is the first character past C1; é, CJK and emoji are text.
        let text = "nbsp\u{a0} é 日本 🙂 ÿ";
        assert_eq!(shown(text.as_bytes()), text);
        assert_eq!(shown(b"bad \xff\xfe end"), "bad \u{fffd}\u{fffd} end");
        // A lone 0xc2 (cut, or followed by ASCII) is invalid, not a C1 control.
        assert_eq!(shown(b"cut \xc2"), "cut \u{fffd}");
        assert_eq!(shown(b"\xc2["), "\u{fffd}[");
        // A C1 control's bytes apart are invalid UTF-8, replaced, never passed raw.
        assert_eq!(shown(b"\x9b2J"), "\u{fffd}2J");
    }

    #[test]
    fn a_label_is_escaped_like_text() {
        let name = b"/var/log/x\x1b[2J\x1b]0;owned\x07\xc2\x9b31m\xff.log";
        let label = escaped(name);
        assert_eq!(
            label,
            "/var/log/x\\x1b[2J\\x1b]0;owned\\x07\\u{9b}31m\u{fffd}.log"
        );
        let mut buffer = LineBuffer::default();
        let mut out = Vec::new();
        buffer.push(b"plain text\n", &label, 1024, &mut out);
        assert!(
            !out.iter().any(|&b| b == 0x1b || b == 0x07),
            "no raw control byte on the console: {out:?}"
        );
        assert_eq!(out, format!("{label}: plain text\n").as_bytes());
        assert_eq!(escaped(b"/var/log/plain.log"), "/var/log/plain.log");
    }
}

/// Where the last `n` lines start, given the file's last bytes `window` beginning at
/// byte `window_start` of the file: like `tail -n`. An unfinished last line counts as a
/// line. When the window holds fewer lines and does not reach the file's start, the
/// lines start after the window's first newline (no half line is shown).
pub fn last_lines_start(window: &[u8], window_start: u64, n: usize) -> u64 {
    if n == 0 {
        return window_start + window.len() as u64;
    }
    let body = window.strip_suffix(b"\n").unwrap_or(window);
    let mut seen = 0;
    for (i, byte) in body.iter().enumerate().rev() {
        if *byte == b'\n' {
            seen += 1;
            if seen == n {
                return window_start + i as u64 + 1;
            }
        }
    }
    if window_start == 0 {
        return 0;
    }
    match window.iter().position(|b| *b == b'\n') {
        Some(i) => window_start + i as u64 + 1,
        None => window_start,
    }
}

#[cfg(test)]
mod last_lines_tests {
    use super::last_lines_start;

    #[test]
    fn like_tail_n() {
        let text = b"a\nb\nc\n";
        assert_eq!(last_lines_start(text, 0, 2), 2);
        assert_eq!(last_lines_start(text, 0, 3), 0);
        assert_eq!(last_lines_start(text, 0, 10), 0);
        assert_eq!(last_lines_start(text, 0, 0), 6);
        // An unfinished last line is a line.
        assert_eq!(last_lines_start(b"a\nb\nc", 0, 1), 4);
        assert_eq!(last_lines_start(b"", 0, 5), 0);
    }

    #[test]
    fn a_window_short_of_lines_starts_at_a_line() {
        // The window starts mid-line at byte 100: skip to after its first newline.
        assert_eq!(last_lines_start(b"xx\nb\nc\n", 100, 10), 103);
        assert_eq!(last_lines_start(b"xxxx", 100, 10), 100);
    }
}

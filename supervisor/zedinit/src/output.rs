//! Service output, the pure parts: splitting pipe chunks into lines, tagging them
//! (`<svc>.out` / `<svc>.err`, with a UTC time), the in-memory ring that `supctl logs`
//! reads, and rotation names. The OS parts are in `sys::output_pipes` and `sys::output_writer`.

use std::collections::VecDeque;
use std::time::{SystemTime, UNIX_EPOCH};

/// Longest line kept whole; longer ones are cut into pieces of this size.
pub const MAX_LINE: usize = 4096;

/// Which pipe a line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Out,
    Err,
}

impl Stream {
    pub fn tag(self) -> &'static str {
        match self {
            Stream::Out => "out",
            Stream::Err => "err",
        }
    }
}

/// Cuts a byte stream into lines; keeps an unfinished line for the next chunk.
#[derive(Debug, Default)]
pub struct LineBuffer {
    partial: Vec<u8>,
}

impl LineBuffer {
    /// Appends the complete lines in `chunk` (without newline) to `out`.
    pub fn push(&mut self, mut chunk: &[u8], out: &mut Vec<Vec<u8>>) {
        while let Some(i) = chunk.iter().position(|b| *b == b'\n') {
            self.partial.extend_from_slice(&chunk[..i]);
            self.cut_long(out);
            out.push(std::mem::take(&mut self.partial));
            chunk = &chunk[i + 1..];
        }
        self.partial.extend_from_slice(chunk);
        self.cut_long(out);
    }

    /// The stream ended: an unfinished last line is still a line.
    pub fn finish(&mut self, out: &mut Vec<Vec<u8>>) {
        if !self.partial.is_empty() {
            out.push(std::mem::take(&mut self.partial));
        }
    }

    fn cut_long(&mut self, out: &mut Vec<Vec<u8>>) {
        while self.partial.len() > MAX_LINE {
            let rest = self.partial.split_off(MAX_LINE);
            out.push(std::mem::replace(&mut self.partial, rest));
        }
    }
}

/// `2026-11-22T04:51:00.123Z ticker.out: text` (lossy UTF-8), `stamp` from
/// [`utc_timestamp`].
pub fn format_line(service: &str, stream: Stream, text: &[u8], stamp: &str) -> String {
    format!(
        "{stamp} {service}.{}: {}",
        stream.tag(),
        String::from_utf8_lossy(text)
    )
}

/// RFC 3339 UTC with milliseconds, without a time-zone database.
pub fn utc_timestamp(now: SystemTime) -> String {
    let since = now.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs();
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil_from_days(days as i64);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        (rem / 60) % 60,
        rem % 60,
        since.subsec_millis()
    )
}

/// Days since 1970-01-01 → (year, month, day), proleptic Gregorian (H. Hinnant's
/// `civil_from_days`).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// The last lines of a service's output, for `supctl logs`. Allocates on its first line.
///
/// The lines are kept as bytes in one buffer, each ended by `\n`, not as one `String`
/// each: a line costs its length, not its length plus a heap block and a 24-byte
/// handle (200 lines of 60 bytes: 12 KiB instead of ~40), which is most of PID 1's
/// memory when it captures the output of a few services.
#[derive(Debug)]
pub struct Ring {
    bytes: VecDeque<u8>,
    lines: usize,
    capacity: usize,
    /// Lines ever pushed, so followers and tests can tell what they missed.
    pub total: u64,
}

impl Ring {
    pub fn new(capacity: usize) -> Self {
        Ring {
            bytes: VecDeque::new(),
            lines: 0,
            capacity: capacity.max(1),
            total: 0,
        }
    }

    /// Keeps `line` (a newline in it becomes a space: it is one line), forgetting the
    /// oldest line once `capacity` are kept.
    pub fn push(&mut self, line: &str) {
        if self.lines == self.capacity {
            let end = self.bytes.iter().position(|b| *b == b'\n');
            self.bytes.drain(..end.map_or(self.bytes.len(), |i| i + 1));
            self.lines -= 1;
        }
        let needed = line.len() + 1;
        let free = self.bytes.capacity() - self.bytes.len();
        if free < needed {
            // Grow by a quarter rather than doubling: the slack is memory PID 1 keeps.
            self.bytes
                .reserve_exact(needed.max(self.bytes.capacity() / 4));
        }
        self.bytes
            .extend(line.bytes().map(|b| if b == b'\n' { b' ' } else { b }));
        self.bytes.push_back(b'\n');
        self.lines += 1;
        self.total += 1;
    }

    /// The last `n` lines, oldest first.
    pub fn tail(&self, n: usize) -> Vec<String> {
        let (a, b) = self.bytes.as_slices();
        let all: Vec<u8> = [a, b].concat();
        let lines: Vec<&[u8]> = all.split(|b| *b == b'\n').collect();
        // `all` ends with a newline, so the split ends with an empty piece.
        let kept = &lines[..lines.len().saturating_sub(1)];
        kept[kept.len().saturating_sub(n)..]
            .iter()
            .map(|l| String::from_utf8_lossy(l).into_owned())
            .collect()
    }

    pub fn allocated(&self) -> bool {
        self.bytes.capacity() > 0
    }

    /// Lets go of the room the ring holds beyond its lines (the growth slack, or what
    /// longer lines of a flood needed): called once a burst has settled.
    pub fn shrink(&mut self) {
        self.bytes.shrink_to_fit();
    }

    /// Bytes held for the lines (what the ring costs, give or take the growth slack).
    pub fn held_bytes(&self) -> usize {
        self.bytes.capacity()
    }
}

/// The renames that rotate `base` keeping `keep` old files: oldest first, so nothing is
/// overwritten before it moved (`base.2 → base.3`, `base.1 → base.2`, `base → base.1`).
/// The file past `keep` is simply overwritten by the last rename.
pub fn rotation_renames(base: &str, keep: u32) -> Vec<(String, String)> {
    let name = |i: u32| {
        if i == 0 {
            base.to_string()
        } else {
            format!("{base}.{i}")
        }
    };
    (0..keep).rev().map(|i| (name(i), name(i + 1))).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn lines(chunks: &[&[u8]]) -> Vec<String> {
        let mut buf = LineBuffer::default();
        let mut out = Vec::new();
        for c in chunks {
            buf.push(c, &mut out);
        }
        buf.finish(&mut out);
        out.into_iter()
            .map(|l| String::from_utf8(l).unwrap())
            .collect()
    }

    #[test]
    fn splits_lines_across_chunks_and_keeps_the_unfinished_tail() {
        assert_eq!(lines(&[b"a\nb", b"c\n\nd"]), vec!["a", "bc", "", "d"]);
        assert_eq!(lines(&[b"no newline"]), vec!["no newline"]);
    }

    #[test]
    fn cuts_overlong_lines() {
        let long = vec![b'x'; MAX_LINE * 2 + 10];
        let got = lines(&[&long, b"\n"]);
        assert_eq!(
            got.iter().map(String::len).collect::<Vec<_>>(),
            vec![MAX_LINE, MAX_LINE, 10]
        );
    }

    #[test]
    fn tags_and_timestamps() {
        let t = UNIX_EPOCH + Duration::from_millis(1_795_000_000_123);
        assert_eq!(
            format_line("ticker", Stream::Err, b"oops", &utc_timestamp(t)),
            "2026-11-18T11:06:40.123Z ticker.err: oops"
        );
        assert_eq!(utc_timestamp(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
        assert_eq!(
            utc_timestamp(UNIX_EPOCH + Duration::from_secs(951_782_400)),
            "2000-02-29T00:00:00.000Z"
        );
    }

    #[test]
    fn the_ring_keeps_the_last_lines_and_allocates_lazily() {
        let mut ring = Ring::new(3);
        assert!(!ring.allocated());
        assert!(ring.tail(5).is_empty());
        for i in 0..5 {
            ring.push(&i.to_string());
        }
        assert!(ring.allocated());
        assert_eq!(ring.tail(10), vec!["2", "3", "4"]);
        assert_eq!(ring.tail(2), vec!["3", "4"]);
        assert_eq!(ring.tail(0), Vec::<String>::new());
        assert_eq!(ring.total, 5);
    }

    #[test]
    fn the_ring_keeps_empty_lines_and_a_newline_inside_a_line_as_one_line() {
        let mut ring = Ring::new(3);
        for line in ["a", "", "b\nc", "d"] {
            ring.push(line);
        }
        assert_eq!(ring.tail(5), vec!["", "b c", "d"]);
    }

    #[test]
    fn a_ring_shrinks_back_to_its_lines_after_long_ones() {
        let mut ring = Ring::new(10);
        for i in 0..10 {
            ring.push(&format!("{i:0>500}"));
        }
        let long = ring.held_bytes();
        assert!(long >= 5010, "{long}");
        for i in 0..10 {
            ring.push(&format!("short {i}"));
        }
        assert_eq!(ring.held_bytes(), long, "pushing alone keeps the room");
        ring.shrink();
        assert_eq!(ring.held_bytes(), 10 * "short 0\n".len());
        assert_eq!(ring.tail(2), vec!["short 8", "short 9"]);
        ring.push("after");
        assert_eq!(ring.tail(2), vec!["short 9", "after"]);
    }

    #[test]
    fn the_ring_costs_about_its_bytes() {
        let mut ring = Ring::new(200);
        let line = "x".repeat(59);
        for _ in 0..1000 {
            ring.push(&line);
        }
        assert_eq!(ring.tail(300).len(), 200);
        // 200 lines of 60 bytes: 12,000 bytes, plus at most a quarter of slack.
        assert!(ring.held_bytes() <= 15_000, "{}", ring.held_bytes());
    }

    #[test]
    fn rotation_renames_oldest_first() {
        assert_eq!(
            rotation_renames("/l/a.log", 3),
            vec![
                ("/l/a.log.2".to_string(), "/l/a.log.3".to_string()),
                ("/l/a.log.1".to_string(), "/l/a.log.2".to_string()),
                ("/l/a.log".to_string(), "/l/a.log.1".to_string()),
            ]
        );
        assert!(rotation_renames("/l/a.log", 0).is_empty());
    }
}

//! Service output, the pure parts: splitting pipe chunks into lines, tagging them
//! (`<svc>.out` / `<svc>.err`, with a UTC time), the in-memory ring that `supctl logs`
//! reads, and rotation names. The OS parts are in `sys::logpipes` and `sys::logwriter`.

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
#[derive(Debug)]
pub struct Ring {
    lines: VecDeque<String>,
    capacity: usize,
    /// Lines ever pushed, so followers and tests can tell what they missed.
    pub total: u64,
}

impl Ring {
    pub fn new(capacity: usize) -> Self {
        Ring {
            lines: VecDeque::new(),
            capacity: capacity.max(1),
            total: 0,
        }
    }

    pub fn push(&mut self, line: String) {
        if self.lines.len() == self.capacity {
            self.lines.pop_front();
        }
        self.lines.push_back(line);
        self.total += 1;
    }

    /// The last `n` lines, oldest first.
    pub fn tail(&self, n: usize) -> Vec<String> {
        self.lines
            .iter()
            .skip(self.lines.len().saturating_sub(n))
            .cloned()
            .collect()
    }

    pub fn allocated(&self) -> bool {
        self.lines.capacity() > 0
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
        for i in 0..5 {
            ring.push(i.to_string());
        }
        assert!(ring.allocated());
        assert_eq!(ring.tail(10), vec!["2", "3", "4"]);
        assert_eq!(ring.tail(2), vec!["3", "4"]);
        assert_eq!(ring.total, 5);
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

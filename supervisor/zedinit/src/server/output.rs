//! One client's answers not yet taken by the client.
//!
//! Written from the front without moving the rest each time (a large answer goes out in
//! socket-buffer-sized pieces), and given back to the allocator once sent, so an
//! answer costs memory only while it waits.

/// Capacity kept for the next answers once everything was sent; more is freed.
const KEEP_CAPACITY: usize = 64 * 1024;

#[derive(Debug, Default)]
pub struct Output {
    buf: Vec<u8>,
    /// Bytes at the front of `buf` already sent.
    sent: usize,
    /// The last byte sent was not the end of a line: the client is inside an answer.
    mid_line: bool,
}

impl Output {
    pub fn is_empty(&self) -> bool {
        self.sent == self.buf.len()
    }

    /// Bytes held for this client: what counts against the budget.
    pub fn held(&self) -> usize {
        self.buf.len()
    }

    /// Bytes still to send.
    pub fn pending(&self) -> usize {
        self.buf.len() - self.sent
    }

    pub fn unsent(&self) -> &[u8] {
        &self.buf[self.sent..]
    }

    /// Appends one answer (a whole line); an answer to an empty buffer is taken as it is,
    /// not copied.
    pub fn push(&mut self, line: Vec<u8>) {
        if self.buf.is_empty() {
            self.buf = line;
        } else {
            self.buf.extend_from_slice(&line);
        }
    }

    /// `n` more bytes were sent.
    pub fn advance(&mut self, n: usize) {
        let n = n.min(self.pending());
        if n == 0 {
            return;
        }
        self.sent += n;
        self.mid_line = self.buf[self.sent - 1] != b'\n';
        if self.is_empty() {
            self.release();
        } else if self.sent >= KEEP_CAPACITY && self.sent * 2 >= self.buf.len() {
            // Moving the unsent half costs no more than what was sent: amortised O(1).
            self.buf.drain(..self.sent);
            self.sent = 0;
        }
    }

    /// Replaces what waits with `line` if the client is between answers (so it reads a
    /// whole line), and says whether it did.
    pub fn replace_between_answers(&mut self, line: Vec<u8>) -> bool {
        if self.mid_line {
            return false;
        }
        self.buf = line;
        self.sent = 0;
        true
    }

    fn release(&mut self) {
        if self.buf.capacity() > KEEP_CAPACITY {
            self.buf = Vec::new();
        } else {
            self.buf.clear();
        }
        self.sent = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sends_in_pieces_and_keeps_the_order() {
        let mut out = Output::default();
        out.push(b"one\n".to_vec());
        out.push(b"two\n".to_vec());
        assert_eq!(out.unsent(), b"one\ntwo\n");
        out.advance(2);
        assert_eq!(out.unsent(), b"e\ntwo\n");
        assert_eq!(out.pending(), 6);
        out.advance(6);
        assert!(out.is_empty());
        assert_eq!(out.held(), 0);
    }

    #[test]
    fn a_large_answer_is_freed_once_sent() {
        let mut out = Output::default();
        out.push(vec![b'x'; 1024 * 1024]);
        out.advance(1024 * 1024);
        assert!(out.is_empty());
        assert_eq!(out.buf.capacity(), 0, "the megabyte went back");
    }

    #[test]
    fn what_was_sent_stops_counting_once_it_is_most_of_the_buffer() {
        let mut out = Output::default();
        out.push(vec![b'x'; 300 * 1024]);
        out.advance(100 * 1024);
        assert_eq!(out.held(), 300 * 1024, "a third sent: kept in place");
        out.advance(100 * 1024);
        assert_eq!(out.held(), 100 * 1024, "two thirds sent: moved out");
        assert_eq!(out.pending(), 100 * 1024);
    }

    #[test]
    fn a_notice_replaces_what_waits_only_between_answers() {
        let mut out = Output::default();
        out.push(b"first answer\nsecond answer\n".to_vec());
        out.advance(3);
        assert!(!out.replace_between_answers(b"bye\n".to_vec()));
        out.advance(10);
        assert!(out.replace_between_answers(b"bye\n".to_vec()));
        assert_eq!(out.unsent(), b"bye\n");
    }
}

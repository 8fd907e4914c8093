//! epoll tokens: which source an event came from. Each kind of source owns a range of
//! the 64-bit token; [`Token::decode`] is the one place that knows the ranges (the
//! order of its arms matters, and its tests pin every boundary).

/// The signalfd.
pub const SIGNAL: u64 = 0;
/// The control socket's listener.
pub const LISTENER: u64 = 1;
/// Control connections get tokens from here up (they never reach `FIRST_REPORT`).
pub const FIRST_CONN: u64 = 2;
/// Exec report pipes of new children get tokens from here up, below `HEARTBEAT`.
pub const FIRST_REPORT: u64 = 1 << 46;
/// The heartbeat inotify fd.
pub const HEARTBEAT: u64 = 1 << 47;
/// Notify sockets get tokens from here up, below `FIRST_OUTPUT`.
pub const FIRST_NOTIFY: u64 = 1 << 48;
/// Service output pipes get tokens from here up.
pub const FIRST_OUTPUT: u64 = 1 << 49;

/// The source of an epoll event; the numbers are the raw tokens the owners know them by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Token {
    Signal,
    Listener,
    Conn(u64),
    Report(u64),
    Heartbeat,
    Notify(u64),
    Output(u64),
}

impl Token {
    pub fn decode(raw: u64) -> Token {
        match raw {
            SIGNAL => Token::Signal,
            LISTENER => Token::Listener,
            HEARTBEAT => Token::Heartbeat,
            raw if raw >= FIRST_OUTPUT => Token::Output(raw),
            raw if raw >= FIRST_NOTIFY => Token::Notify(raw),
            raw if raw >= FIRST_REPORT => Token::Report(raw),
            raw => Token::Conn(raw),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_range_decodes_to_its_source_at_both_ends() {
        assert_eq!(Token::decode(SIGNAL), Token::Signal);
        assert_eq!(Token::decode(LISTENER), Token::Listener);
        assert_eq!(Token::decode(FIRST_CONN), Token::Conn(FIRST_CONN));
        assert_eq!(
            Token::decode(FIRST_REPORT - 1),
            Token::Conn(FIRST_REPORT - 1)
        );
        assert_eq!(Token::decode(FIRST_REPORT), Token::Report(FIRST_REPORT));
        assert_eq!(Token::decode(HEARTBEAT - 1), Token::Report(HEARTBEAT - 1));
        assert_eq!(Token::decode(HEARTBEAT), Token::Heartbeat);
        assert_eq!(Token::decode(HEARTBEAT + 1), Token::Report(HEARTBEAT + 1));
        assert_eq!(Token::decode(FIRST_NOTIFY), Token::Notify(FIRST_NOTIFY));
        assert_eq!(
            Token::decode(FIRST_OUTPUT - 1),
            Token::Notify(FIRST_OUTPUT - 1)
        );
        assert_eq!(Token::decode(FIRST_OUTPUT), Token::Output(FIRST_OUTPUT));
        assert_eq!(Token::decode(u64::MAX), Token::Output(u64::MAX));
    }
}

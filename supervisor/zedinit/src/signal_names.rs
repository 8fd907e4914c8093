//! Signal names and numbers, both ways. Accepts `SIGTERM`, `TERM`, `term` and `15`.

use nix::sys::signal::Signal;
use std::str::FromStr;

/// Parses a signal the way a person writes it in a definition or on the command line.
pub fn parse_signal(text: &str) -> Result<Signal, String> {
    let trimmed = text.trim();
    if let Ok(number) = trimmed.parse::<i32>() {
        return Signal::try_from(number).map_err(|_| format!("no signal numbered {number}"));
    }
    let upper = trimmed.to_ascii_uppercase();
    let name = if upper.starts_with("SIG") {
        upper
    } else {
        format!("SIG{upper}")
    };
    Signal::from_str(&name).map_err(|_| format!("unknown signal {trimmed:?}"))
}

/// The conventional name, e.g. `SIGKILL`.
pub fn signal_name(signal: Signal) -> &'static str {
    signal.as_str()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_the_usual_spellings() {
        for text in ["SIGTERM", "TERM", "term", "15", " SIGTERM "] {
            assert_eq!(parse_signal(text), Ok(Signal::SIGTERM), "{text}");
        }
        assert_eq!(parse_signal("usr1"), Ok(Signal::SIGUSR1));
    }

    #[test]
    fn rejects_unknown_names_and_numbers() {
        assert!(parse_signal("SIGNOPE").unwrap_err().contains("SIGNOPE"));
        assert!(parse_signal("999").is_err());
    }
}

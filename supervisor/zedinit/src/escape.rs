//! Text that services control (their `STATUS=`, their output lines), made safe to print
//! on a terminal: every character a terminal acts on is written as a visible escape.
//! Invariant: the result holds no C0 control but tab, no DEL and no C1 control, so it
//! can't move the cursor, clear the screen, set a title or the clipboard (OSC 52), or
//! start a line of its own.

use std::borrow::Cow;
use std::fmt::Write as _;

/// `text` with C0 controls (tab excepted: it only moves to the next tab stop), DEL and
/// the C1 controls U+0080–U+009F escaped as `\x1b`, `\x7f`, `\u{9b}`; everything else as
/// it is. C1 matters as much as ESC: a UTF-8 terminal (and the Linux console) may take
/// U+009B as CSI, the start of a control sequence (ECMA-48 §5.3, console_codes(4)). A
/// newline is escaped too: each string is printed as one line, and a service must not
/// be able to fake the next one. Borrowed when nothing needed escaping (the usual line).
pub fn for_terminal(text: &str) -> Cow<'_, str> {
    if !text.chars().any(needs_escape) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c as u32 {
            _ if !needs_escape(c) => out.push(c),
            n @ ..=0x7f => {
                let _ = write!(out, "\\x{n:02x}");
            }
            n => {
                let _ = write!(out, "\\u{{{n:x}}}");
            }
        }
    }
    Cow::Owned(out)
}

fn needs_escape(c: char) -> bool {
    matches!(c as u32, 0x00..=0x08 | 0x0a..=0x1f | 0x7f..=0x9f)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_text_is_borrowed_as_it_is() {
        let text = "ok: 3 of 4\tdone, café ✓ \u{a0}";
        assert!(matches!(for_terminal(text), Cow::Borrowed(t) if t == text));
    }

    #[test]
    fn c0_del_and_c1_become_visible_escapes() {
        assert_eq!(
            for_terminal("a\x1b]0;title\x07\x1b[2J\r\nb\x7f\u{9b}31m\u{85}\u{80}\u{9f}\0"),
            "a\\x1b]0;title\\x07\\x1b[2J\\x0d\\x0ab\\x7f\\u{9b}31m\\u{85}\\u{80}\\u{9f}\\x00"
        );
    }

    #[test]
    fn the_result_holds_nothing_a_terminal_acts_on() {
        let every: String = (0u32..0x200).filter_map(char::from_u32).collect();
        let shown = for_terminal(&every);
        assert!(
            shown.chars().all(|c| c == '\t' || !c.is_control()),
            "{shown:?}"
        );
    }
}

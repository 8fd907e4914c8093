//! YAML text the export writes: scalars and comments that a YAML 1.1 reader (PyYAML,
//! libyaml, go-yaml as linuxkit uses it) reads back exactly, whatever a name or path
//! holds.

use std::fmt::Write as _;
use zedinit::spec::IdRef;

/// A YAML double-quoted string holding exactly `text`, in printable ASCII only: JSON's
/// quoting (its escapes `\" \\ \n \t \uXXXX` are YAML's too), then every character
/// outside printable ASCII escaped as well. JSON leaves DEL, C1 and the rest of Unicode
/// as they are, and YAML 1.1 readers (PyYAML, libyaml, go-yaml as linuxkit uses it) fold
/// NEL, LS and PS (U+0085, U+2028, U+2029) inside a quoted scalar like a line break,
/// which would change the value (YAML 1.1 §5.4, "Line Break Characters").
pub(super) fn q(text: &str) -> String {
    let json = serde_json::to_string(text).unwrap_or_else(|_| "\"\"".into());
    let mut out = String::with_capacity(json.len());
    for c in json.chars() {
        match c as u32 {
            0x20..=0x7e => out.push(c),
            n @ ..=0xffff => {
                let _ = write!(out, "\\u{n:04x}");
            }
            n => {
                let _ = write!(out, "\\U{n:08x}");
            }
        }
    }
    out
}

/// Text for a `#` comment: one line of printable ASCII, whatever a path or name holds.
/// Everything else is escaped (`\n`, `\u{2028}`): a YAML 1.1 reader ends the comment at
/// NEL, LS and PS as at a newline (YAML 1.1 §5.4), and what followed would be read as
/// keys of the entry (`pid: host`); other characters are escaped too, so no future
/// reader's idea of a line break matters.
pub(super) fn comment(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if (' '..='~').contains(&c) {
            out.push(c);
        } else {
            out.extend(c.escape_default());
        }
    }
    out
}

pub(super) fn id_text(id: &IdRef) -> String {
    match id {
        IdRef::Id(n) => n.to_string(),
        IdRef::Name(name) => name.clone(),
    }
}

pub(super) fn list(items: &[String]) -> String {
    format!("[{}]", items.join(", "))
}

/// `OnFailure` → `on-failure`: the definitions' own spelling.
pub(super) fn kebab(debug: &str) -> String {
    let mut out = String::new();
    for (i, c) in debug.chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            out.push('-');
        }
        out.push(c.to_ascii_lowercase());
    }
    out
}

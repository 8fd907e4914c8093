//! The reading half every TOML config parser here shares (service definitions in
//! zedinit, network instances in netinst): the text parsed with spans, and every
//! problem collected with its file, line and key, then put in file order. Each parser
//! keeps only its schema: which keys, which values.

use crate::{ConfigError, line_at};
use std::ops::Range;
use std::path::Path;
use toml::de::{DeTable, DeValue};

/// One file being read: its text, and the problems found so far, each with the byte
/// offset it was found at (`DeTable` iterates keys sorted by name, not in file order).
pub struct Reader<'a> {
    pub file: &'a Path,
    pub text: &'a str,
    errors: Vec<(usize, ConfigError)>,
}

impl<'a> Reader<'a> {
    pub fn new(file: &'a Path, text: &'a str) -> Self {
        Reader {
            file,
            text,
            errors: Vec::new(),
        }
    }

    /// The text as a spanned table, or `None` with the syntax error recorded.
    pub fn parse(&mut self) -> Option<toml::Spanned<DeTable<'a>>> {
        match DeTable::parse(self.text) {
            Ok(root) => Some(root),
            Err(err) => {
                let line = err.span().map(|s| self.line(&s));
                let message = format!("TOML syntax: {}", err.message().trim());
                self.push(0, line, None, message);
                None
            }
        }
    }

    /// The line (1-based) where `span` starts.
    pub fn line(&self, span: &Range<usize>) -> usize {
        line_at(self.text, span.start)
    }

    /// A problem with the value or key at `span`.
    pub fn error(&mut self, span: &Range<usize>, key: &str, message: impl Into<String>) {
        let line = self.line(span);
        self.push(span.start, Some(line), Some(key), message.into());
    }

    /// A problem found at a line already known (e.g. the second of two keys that clash).
    pub fn error_at_line(&mut self, line: Option<usize>, key: &str, message: impl Into<String>) {
        self.push(0, line, Some(key), message.into());
    }

    /// A required key that is absent: `missing: <message>`.
    pub fn missing(&mut self, key: &str, message: &str) {
        self.push(0, None, Some(key), format!("missing: {message}"));
    }

    /// A problem of the whole file (its name, its size).
    pub fn whole_file(&mut self, message: impl Into<String>) {
        self.push(0, None, None, message.into());
    }

    /// How many problems so far: a step that added none succeeded.
    pub fn error_count(&self) -> usize {
        self.errors.len()
    }

    pub fn has_errors(&self) -> bool {
        !self.errors.is_empty()
    }

    /// The problems in file order: whole-file ones first, then by line and position.
    pub fn finish(mut self) -> Vec<ConfigError> {
        self.errors.sort_by_key(|(offset, e)| (e.line, *offset));
        self.errors.into_iter().map(|(_, e)| e).collect()
    }

    fn push(&mut self, offset: usize, line: Option<usize>, key: Option<&str>, message: String) {
        self.errors.push((
            offset,
            ConfigError {
                file: self.file.to_path_buf(),
                line,
                key: key.map(str::to_string),
                message,
            },
        ));
    }
}

/// Gives a parser's context (a struct with a [`Reader`] field, and whatever else its
/// schema keeps) the reader's methods: `self.error(..)`, `self.line(..)`.
#[macro_export]
macro_rules! reader_context {
    ($cx:ident, $field:ident) => {
        impl<'a> ::std::ops::Deref for $cx<'a> {
            type Target = $crate::toml_reader::Reader<'a>;
            fn deref(&self) -> &Self::Target {
                &self.$field
            }
        }
        impl<'a> ::std::ops::DerefMut for $cx<'a> {
            fn deref_mut(&mut self) -> &mut Self::Target {
                &mut self.$field
            }
        }
    };
}

/// A value's type with its article, for messages: "a string", "an integer".
pub fn a_type(value: &DeValue<'_>) -> String {
    let t = value.type_str();
    let article = if t.starts_with(['a', 'e', 'i', 'o', 'u']) {
        "an"
    } else {
        "a"
    };
    format!("{article} {t}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn problems_come_out_in_file_order_whole_file_ones_first() {
        let text = "a = 1\nb = \"x\"\nc = true\n";
        let mut r = Reader::new(Path::new("/d/f.toml"), text);
        let root = r.parse().expect("parses");
        // Keys iterate by name; report them out of order on purpose.
        for (key, _) in root.get_ref().iter().collect::<Vec<_>>().into_iter().rev() {
            r.error(&key.span(), key.get_ref(), "bad");
        }
        r.missing("d", "every file needs d");
        let errors = r.finish();
        let order: Vec<(Option<usize>, Option<String>)> =
            errors.iter().map(|e| (e.line, e.key.clone())).collect();
        assert_eq!(
            order,
            [
                (None, Some("d".into())),
                (Some(1), Some("a".into())),
                (Some(2), Some("b".into())),
                (Some(3), Some("c".into())),
            ]
        );
        assert_eq!(errors[0].message, "missing: every file needs d");
        assert_eq!(errors[1].file, Path::new("/d/f.toml"));
    }

    #[test]
    fn a_syntax_error_names_its_line() {
        let mut r = Reader::new(Path::new("f.toml"), "a = 1\nb = = 2\n");
        assert!(r.parse().is_none());
        let errors = r.finish();
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].line, Some(2));
        assert!(
            errors[0].message.starts_with("TOML syntax: "),
            "{}",
            errors[0].message
        );
    }

    #[test]
    fn types_get_their_article() {
        let root = DeTable::parse("s = \"x\"\ni = 1\na = []\n").expect("parses");
        let kinds: Vec<String> = root
            .get_ref()
            .values()
            .map(|v| a_type(v.get_ref()))
            .collect();
        assert!(kinds.contains(&"a string".to_string()), "{kinds:?}");
        assert!(kinds.contains(&"an integer".to_string()), "{kinds:?}");
        assert!(kinds.contains(&"an array".to_string()), "{kinds:?}");
    }
}

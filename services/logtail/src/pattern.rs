//! What logtail follows: `DIR/GLOB` patterns, the glob in the last component only
//! (`/var/log/*.log`), so a directory is watched, never walked: `/var/log/*.log` does
//! not reach `/var/log/zedctr/`, where zedinit keeps the services' own logs.

use std::fmt;
use std::path::{Path, PathBuf};

/// One `DIR/GLOB`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pattern {
    pub dir: PathBuf,
    glob: String,
}

impl Pattern {
    /// Parses `DIR/GLOB`: an absolute directory without wildcards, then a file-name glob
    /// with `*` (any run of characters) and `?` (one character).
    pub fn parse(text: &str) -> Result<Pattern, String> {
        let path = Path::new(text);
        if !path.is_absolute() {
            return Err(format!("{text:?}: must be an absolute path (DIR/GLOB)"));
        }
        let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
            return Err(format!(
                "{text:?}: needs a directory and a file name (DIR/GLOB)"
            ));
        };
        let Some(glob) = name.to_str() else {
            return Err(format!("{text:?}: the file-name glob must be UTF-8"));
        };
        if dir.to_string_lossy().contains(['*', '?']) {
            return Err(format!(
                "{text:?}: wildcards only in the file name, not in the directory {}",
                dir.display()
            ));
        }
        Ok(Pattern {
            dir: dir.to_path_buf(),
            glob: glob.to_string(),
        })
    }

    /// Whether a file of this directory called `name` is followed. Hidden names never are
    /// (`.x.log.swp`, a writer's temporary file), unless the glob itself starts with `.`.
    pub fn matches(&self, name: &str) -> bool {
        if name.starts_with('.') && !self.glob.starts_with('.') {
            return false;
        }
        glob_match(self.glob.as_bytes(), name.as_bytes())
    }
}

impl fmt::Display for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.dir.join(&self.glob).display())
    }
}

/// `*` and `?` over bytes, iteratively (the last `*` is the only backtrack point, so
/// this is linear in practice and never recursive).
fn glob_match(glob: &[u8], name: &[u8]) -> bool {
    let (mut g, mut n) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while n < name.len() {
        match glob.get(g) {
            Some(b'*') => {
                star = Some((g, n));
                g += 1;
            }
            Some(b'?') => {
                g += 1;
                n += 1;
            }
            Some(c) if *c == name[n] => {
                g += 1;
                n += 1;
            }
            _ => match star {
                Some((sg, sn)) => {
                    g = sg + 1;
                    n = sn + 1;
                    star = Some((sg, sn + 1));
                }
                None => return false,
            },
        }
    }
    glob[g..].iter().all(|c| *c == b'*')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(text: &str) -> Pattern {
        Pattern::parse(text).expect("valid pattern")
    }

    #[test]
    fn the_glob_is_the_last_component() {
        let pattern = p("/var/log/*.log");
        assert_eq!(pattern.dir, Path::new("/var/log"));
        assert!(pattern.matches("xen.log"));
        assert!(!pattern.matches(".log"));
        assert!(!pattern.matches("xen.log.1"));
        assert!(!pattern.matches("xen.txt"));
        assert_eq!(pattern.to_string(), "/var/log/*.log");
    }

    #[test]
    fn stars_and_question_marks() {
        assert!(p("/d/a*b*c").matches("abc"));
        assert!(p("/d/a*b*c").matches("axxbyyc"));
        assert!(!p("/d/a*b*c").matches("axxbyy"));
        assert!(p("/d/x?.log").matches("x1.log"));
        assert!(!p("/d/x?.log").matches("x.log"));
        assert!(p("/d/*").matches("anything"));
        assert!(p("/d/exact.log").matches("exact.log"));
        assert!(!p("/d/exact.log").matches("exact.logs"));
        // The backtrack: the first "b" is not the one that matches.
        assert!(p("/d/*b.log").matches("ab.b.log"));
    }

    #[test]
    fn hidden_files_only_when_asked() {
        assert!(!p("/d/*").matches(".hidden"));
        assert!(p("/d/.*").matches(".hidden"));
    }

    #[test]
    fn bad_patterns_say_why() {
        assert!(
            Pattern::parse("var/log/*.log")
                .unwrap_err()
                .contains("absolute")
        );
        assert!(
            Pattern::parse("/var/*/x.log")
                .unwrap_err()
                .contains("directory")
        );
        assert!(Pattern::parse("/").is_err());
    }
}

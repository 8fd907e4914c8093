//! build.yml's reader for the export: `image:` and the list under `config:` → `binds:`,
//! read strictly (anything it does not understand is an error naming the line), and the
//! translation of a container path to the host path a bind makes it.

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

/// What build.yml says about the zedctr container, and its image's users and groups.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Container {
    pub image: String,
    /// (host, container, read-only) for each bind.
    pub binds: Vec<(PathBuf, PathBuf, bool)>,
    /// The image's users and groups, name → id (`read_ids`; empty until read).
    pub users: BTreeMap<String, u32>,
    pub groups: BTreeMap<String, u32>,
}

const BIND_OPTIONS: [&str; 10] = [
    "ro", "rw", "bind", "rbind", "private", "rprivate", "shared", "rshared", "slave", "rslave",
];

/// Reads `image:` and the list under `config:` → `binds:` (`- host:container[:opts]`).
pub fn read_build_yml(file: &Path, text: &str) -> Result<Container, String> {
    let at = |line: usize, what: &str| format!("{}:{line}: {what}", file.display());
    let mut image = None;
    let mut binds = Vec::new();
    let mut in_config = false;
    let mut in_binds = false;
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        let content = strip_comment(raw).trim_end();
        if content.trim().is_empty() {
            continue;
        }
        if content.contains('\t') {
            return Err(at(line, "a tab: YAML is indented with spaces"));
        }
        let indent = content.len() - content.trim_start().len();
        let item = content.trim();
        if indent == 0 {
            in_config = item == "config:";
            in_binds = false;
            if let Some(value) = item.strip_prefix("image:") {
                image = Some(unquote(value.trim()).to_string());
            }
            continue;
        }
        if in_config && indent == 2 {
            in_binds = item == "binds:";
            if item.starts_with("binds:") && !in_binds {
                return Err(at(
                    line,
                    "binds: write it as a block list (`- host:container`)",
                ));
            }
            continue;
        }
        if in_binds {
            let Some(value) = item.strip_prefix("- ") else {
                return Err(at(
                    line,
                    &format!("binds: {item:?} is not a `- host:container` item"),
                ));
            };
            let value = unquote(value.trim());
            let mut parts = value.split(':');
            let (Some(host), Some(container)) = (parts.next(), parts.next()) else {
                return Err(at(line, &format!("binds: {value:?} is not host:container")));
            };
            let options: Vec<&str> = parts.flat_map(|o| o.split(',')).collect();
            if let Some(unknown) = options.iter().find(|o| !BIND_OPTIONS.contains(o)) {
                return Err(at(
                    line,
                    &format!("binds: {value:?}: unknown option {unknown:?}"),
                ));
            }
            if !host.starts_with('/') || !container.starts_with('/') {
                return Err(at(
                    line,
                    &format!("binds: {value:?}: both sides must be absolute"),
                ));
            }
            binds.push((
                PathBuf::from(host),
                PathBuf::from(container),
                options.contains(&"ro"),
            ));
        }
    }
    let image = image.ok_or_else(|| format!("{}: no `image:`", file.display()))?;
    if binds.is_empty() {
        return Err(format!("{}: no `config:` → `binds:` list", file.display()));
    }
    Ok(Container {
        image,
        binds,
        ..Container::default()
    })
}

/// The line without its comment: a `#` at the start or after a space, outside quotes.
pub(super) fn strip_comment(line: &str) -> &str {
    let mut quote = None;
    let mut previous = ' ';
    for (i, c) in line.char_indices() {
        match (quote, c) {
            (None, '"' | '\'') => quote = Some(c),
            (Some(open), c) if c == open => quote = None,
            (None, '#') if previous == ' ' => return &line[..i],
            _ => {}
        }
        previous = c;
    }
    line
}

pub(super) fn unquote(text: &str) -> &str {
    text.strip_prefix('"')
        .and_then(|t| t.strip_suffix('"'))
        .or_else(|| text.strip_prefix('\'').and_then(|t| t.strip_suffix('\'')))
        .unwrap_or(text)
}

/// An absolute path of plain names only: a lexical prefix is where it really leads.
pub(super) fn plain(path: &Path) -> bool {
    path.is_absolute()
        && path
            .components()
            .all(|c| matches!(c, Component::RootDir | Component::Normal(_)))
        && !path
            .to_string_lossy()
            .split('/')
            .any(|part| part == "." || part == "..")
}

impl Container {
    /// The host path behind `path` inside the container, through the bind whose container
    /// side is the longest prefix of it (by whole components), and whether that bind is
    /// read-only. `None`: no bind reaches it, or it has `.`/`..` parts.
    pub fn host_path(&self, path: &Path) -> Option<(PathBuf, bool)> {
        if !plain(path) {
            return None;
        }
        self.binds
            .iter()
            .filter_map(|(host, container, ro)| {
                Some((host, container, *ro, path.strip_prefix(container).ok()?))
            })
            .max_by_key(|(_, container, _, _)| container.components().count())
            .map(|(host, _, ro, rest)| {
                let host = if rest.as_os_str().is_empty() {
                    host.clone()
                } else {
                    host.join(rest)
                };
                (host, ro)
            })
    }
}

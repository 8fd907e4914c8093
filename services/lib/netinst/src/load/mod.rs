//! The directory → every good instance, in file-name order, and every problem, the
//! checks between files included.

use crate::parse::parse_instance;
use crate::{ConfigError, NetworkInstance};
use confkit::ConfigEntry;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

/// Everything read from the instance directories.
#[derive(Debug, Default)]
pub struct Loaded {
    /// The good instances in "network-instance order": directory order, then file name
    /// (byte order). Later code (the downloader's bridge preference) relies on it.
    pub instances: Vec<NetworkInstance>,
    /// Every problem, each naming file (and line and key when known).
    pub errors: Vec<ConfigError>,
    /// Instance files that exist but were rejected, as (name, file): a consumer may keep
    /// running what it had for them rather than take them for removed.
    pub rejected: Vec<(String, PathBuf)>,
    /// Directories that exist but could not be read (also in `errors`).
    pub unreadable_dirs: Vec<PathBuf>,
}

impl Loaded {
    /// The instance named `name` (file stem).
    pub fn get(&self, name: &str) -> Option<&NetworkInstance> {
        self.instances.iter().find(|i| i.name == name)
    }

    /// The instance on `bridge`.
    pub fn by_bridge(&self, bridge: &str) -> Option<&NetworkInstance> {
        self.instances.iter().find(|i| i.bridge == bridge)
    }

    /// The instance whose subnet holds `ip` (subnets never overlap, so at most one).
    pub fn containing(&self, ip: Ipv4Addr) -> Option<&NetworkInstance> {
        self.instances.iter().find(|i| i.contains(ip))
    }
}

/// Reads every `*.toml` in `dir` (see [`load_dirs`]).
pub fn load_dir(dir: &Path) -> Loaded {
    load_dirs(&[dir.to_path_buf()])
}

/// Reads every `*.toml` in `dirs`, in order, each directory's files in file-name order.
/// Files whose name starts with '.' are skipped (write `.x.toml`, then rename). A missing
/// directory holds no instances and is no error. An instance that clashes with an
/// earlier one (same name, same bridge, overlapping subnet, same lease file) is
/// rejected, and the error names both files; the earlier one stays.
pub fn load_dirs(dirs: &[PathBuf]) -> Loaded {
    let mut loaded = Loaded::default();
    // The same listing rule as every config directory (confkit): `*.toml`, in file-name
    // order, hidden ones skipped; the watcher uses `is_instance_file`.
    confkit::each_config_file(dirs, |entry| match entry {
        ConfigEntry::File { name, path, .. } => load_file(&mut loaded, name, path),
        ConfigEntry::Unreadable { dir, error } => {
            loaded.errors.push(error);
            loaded.unreadable_dirs.push(dir.to_path_buf());
        }
    });
    loaded
}

/// `*.toml`, not starting with '.'.
pub(crate) fn is_instance_file(path: &Path) -> bool {
    path.extension().is_some_and(|x| x == "toml")
        && path
            .file_name()
            .is_some_and(|n| !n.as_encoded_bytes().starts_with(b"."))
}

/// Largest instance file read (a real one is a few KiB); a bigger one is refused unread.
pub const MAX_INSTANCE_BYTES: u64 = 1024 * 1024;

fn load_file(loaded: &mut Loaded, name: String, file: &Path) {
    if let Some(first) = loaded.get(&name) {
        let message = format!(
            "instance {name:?} is already defined by {}; this file is ignored",
            first.file.display()
        );
        loaded.errors.push(whole_file(file, message));
        loaded.rejected.push((name, file.to_path_buf()));
        return;
    }
    // Bounded and non-blocking, as zedinit reads definitions: a FIFO or /dev/zero planted
    // as an instance file must not hang or exhaust dnsmasq-render or the downloader.
    let text = match confkit::read_config_file(file, MAX_INSTANCE_BYTES) {
        Ok(text) => text,
        Err(message) => {
            loaded.errors.push(whole_file(file, message));
            loaded.rejected.push((name, file.to_path_buf()));
            return;
        }
    };
    let instance = match parse_instance(&name, file, &text) {
        Ok(instance) => instance,
        Err(errors) => {
            loaded.errors.extend(errors);
            loaded.rejected.push((name, file.to_path_buf()));
            return;
        }
    };
    let clashes = clashes(&loaded.instances, &instance);
    if clashes.is_empty() {
        loaded.instances.push(instance);
    } else {
        loaded.errors.extend(clashes);
        loaded.rejected.push((name, file.to_path_buf()));
    }
}

/// Where `new` clashes with the instances already accepted.
fn clashes(accepted: &[NetworkInstance], new: &NetworkInstance) -> Vec<ConfigError> {
    let mut errors = Vec::new();
    let at = |i: &NetworkInstance, key: &str| match i.line_of(key) {
        Some(line) => format!("{}:{line}", i.file.display()),
        None => i.file.display().to_string(),
    };
    let mut push = |key: &str, message: String| {
        errors.push(ConfigError {
            file: new.file.clone(),
            line: new.line_of(key),
            key: Some(key.to_string()),
            message: format!("{message}; this instance is ignored"),
        })
    };
    for old in accepted {
        if old.bridge == new.bridge {
            push(
                "bridge",
                format!(
                    "bridge {:?} is already used by instance {:?} ({})",
                    new.bridge,
                    old.name,
                    at(old, "bridge")
                ),
            );
        }
        if old.ipv4.overlaps(&new.ipv4) {
            push(
                "ipv4",
                format!(
                    "subnet {} overlaps {} of instance {:?} ({})",
                    new.ipv4.subnet_string(),
                    old.ipv4.subnet_string(),
                    old.name,
                    at(old, "ipv4")
                ),
            );
        }
        if old.bridge != new.bridge && old.lease_path() == new.lease_path() {
            push(
                "lease-file",
                format!(
                    "lease file {} is already used by instance {:?} ({})",
                    new.lease_path().display(),
                    old.name,
                    at(old, "lease-file")
                ),
            );
        }
    }
    errors
}

fn whole_file(file: &Path, message: String) -> ConfigError {
    ConfigError::whole_file(file, message)
}

#[cfg(test)]
mod tests;

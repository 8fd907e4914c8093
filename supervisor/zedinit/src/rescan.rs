//! Rescan diffing: which services a new set of definitions adds, removes and changes.

use crate::spec::ServiceSpec;
use std::collections::BTreeMap;

#[derive(Debug, Default, PartialEq, Eq)]
pub struct Diff {
    pub added: Vec<String>,
    pub removed: Vec<String>,
    pub changed: Vec<String>,
}

/// Compares the running set with a freshly loaded one. A definition that merely moved
/// to another file is not a change.
pub fn diff(
    current: &BTreeMap<String, ServiceSpec>,
    loaded: &BTreeMap<String, ServiceSpec>,
) -> Diff {
    let mut d = Diff::default();
    for (name, spec) in loaded {
        match current.get(name) {
            None => d.added.push(name.clone()),
            Some(old) if !old.same_definition(spec) => d.changed.push(name.clone()),
            Some(_) => {}
        }
    }
    d.removed = current
        .keys()
        .filter(|n| !loaded.contains_key(*n))
        .cloned()
        .collect();
    d
}

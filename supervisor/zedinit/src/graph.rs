//! The dependency graph: validation (unknown dependencies, cycles) and start order.
//! Pure functions over specs; no processes.

use crate::parse::{ConfigError, Definition, Loaded};
use crate::spec::ServiceSpec;
use std::collections::{BTreeMap, BTreeSet};

/// Removes from `loaded` every definition that can't be started safely, with an error
/// naming file, line and key: unknown dependencies, dependency cycles, and (repeatedly)
/// dependencies on a definition removed for either reason.
pub fn validate(loaded: &mut Loaded) {
    // Unknown dependencies first; they are reported against each offending entry.
    let known: BTreeSet<String> = loaded.definitions.keys().cloned().collect();
    let mut invalid: BTreeMap<String, ()> = BTreeMap::new();
    for (name, def) in &loaded.definitions {
        for (key, deps) in [("after", &def.spec.after), ("requires", &def.spec.requires)] {
            for dep in deps {
                if dep == name {
                    loaded
                        .errors
                        .push(err(def, key, format!("{name:?} depends on itself")));
                    invalid.insert(name.clone(), ());
                } else if !known.contains(dep) {
                    let message = if loaded.invalid.contains(dep) {
                        format!("depends on {dep:?}, whose definition is invalid")
                    } else {
                        format!(
                            "unknown service {dep:?} (no {dep}.toml in the definition directories)"
                        )
                    };
                    loaded.errors.push(err(def, key, message));
                    invalid.insert(name.clone(), ());
                }
            }
        }
    }
    // Cycles: every service on one is reported, with the cycle spelled out.
    for cycle in find_cycles(&loaded.specs_view()) {
        let path = cycle
            .iter()
            .chain(cycle.first())
            .cloned()
            .collect::<Vec<_>>()
            .join(" -> ");
        for name in &cycle {
            if let Some(def) = loaded.definitions.get(name) {
                let key = if def.spec.after.iter().any(|d| cycle.contains(d)) {
                    "after"
                } else {
                    "requires"
                };
                loaded
                    .errors
                    .push(err(def, key, format!("dependency cycle: {path}")));
                invalid.insert(name.clone(), ());
            }
        }
    }
    // Dependents of invalid definitions can't keep their order promise: drop them too.
    loop {
        let mut more = Vec::new();
        for (name, def) in &loaded.definitions {
            if invalid.contains_key(name) {
                continue;
            }
            for (key, deps) in [("after", &def.spec.after), ("requires", &def.spec.requires)] {
                if let Some(bad) = deps
                    .iter()
                    .find(|d| invalid.contains_key(*d) && known.contains(*d))
                {
                    more.push((
                        name.clone(),
                        err(
                            def,
                            key,
                            format!("depends on {bad:?}, whose definition is invalid"),
                        ),
                    ));
                    break;
                }
            }
        }
        if more.is_empty() {
            break;
        }
        for (name, e) in more {
            loaded.errors.push(e);
            invalid.insert(name, ());
        }
    }
    for name in invalid.keys() {
        loaded.definitions.remove(name);
    }
}

fn err(def: &Definition, key: &str, message: String) -> ConfigError {
    ConfigError {
        file: def.spec.file.clone(),
        line: def.line_of(key),
        key: Some(key.to_string()),
        message,
    }
}

impl Loaded {
    fn specs_view(&self) -> BTreeMap<String, Vec<String>> {
        self.definitions
            .iter()
            .map(|(n, d)| {
                (
                    n.clone(),
                    d.spec.dependencies().map(str::to_string).collect(),
                )
            })
            .collect()
    }
}

/// Every elementary group of services that depend on each other in a circle
/// (strongly connected components with more than one member), members in edge order.
pub fn find_cycles(edges: &BTreeMap<String, Vec<String>>) -> Vec<Vec<String>> {
    // Iterative Tarjan; the graphs are small but recursion in PID 1 is still avoided.
    struct Node {
        index: usize,
        low: usize,
        on_stack: bool,
    }
    let mut nodes: BTreeMap<&str, Node> = BTreeMap::new();
    let mut stack: Vec<&str> = Vec::new();
    let mut cycles = Vec::new();
    let mut counter = 0;
    for start in edges.keys() {
        if nodes.contains_key(start.as_str()) {
            continue;
        }
        let mut work: Vec<(&str, usize)> = vec![(start.as_str(), 0)];
        while let Some((v, child)) = work.pop() {
            if child == 0 {
                nodes.insert(
                    v,
                    Node {
                        index: counter,
                        low: counter,
                        on_stack: true,
                    },
                );
                counter += 1;
                stack.push(v);
            }
            let deps = edges.get(v).map(Vec::as_slice).unwrap_or(&[]);
            if let Some(w) = deps.get(child) {
                work.push((v, child + 1));
                let w = w.as_str();
                if !edges.contains_key(w) {
                    continue;
                }
                match nodes.get(w) {
                    None => work.push((w, 0)),
                    Some(n) if n.on_stack => {
                        let wi = n.index;
                        if let Some(nv) = nodes.get_mut(v) {
                            nv.low = nv.low.min(wi);
                        }
                    }
                    Some(_) => {}
                }
                continue;
            }
            // All of v's edges done: pass its low-link to its parent, maybe pop an SCC.
            let (v_index, v_low) = nodes.get(v).map(|n| (n.index, n.low)).unwrap_or((0, 0));
            if let Some(&(parent, _)) = work.last() {
                if let Some(np) = nodes.get_mut(parent) {
                    np.low = np.low.min(v_low);
                }
            }
            if v_low == v_index {
                let mut component = Vec::new();
                while let Some(w) = stack.pop() {
                    if let Some(n) = nodes.get_mut(w) {
                        n.on_stack = false;
                    }
                    component.push(w.to_string());
                    if w == v {
                        break;
                    }
                }
                if component.len() > 1 {
                    component.reverse();
                    cycles.push(component);
                }
            }
        }
    }
    cycles
}

/// A start order that puts every service after all of its dependencies (ties broken by
/// name, so the order is stable). Assumes a validated, acyclic set.
pub fn start_order(specs: &BTreeMap<String, ServiceSpec>) -> Vec<String> {
    let mut order = Vec::with_capacity(specs.len());
    let mut placed: BTreeSet<&str> = BTreeSet::new();
    while order.len() < specs.len() {
        let before = order.len();
        for (name, spec) in specs {
            if placed.contains(name.as_str()) {
                continue;
            }
            if spec
                .dependencies()
                .all(|d| placed.contains(d) || !specs.contains_key(d))
            {
                placed.insert(name);
                order.push(name.clone());
            }
        }
        if order.len() == before {
            // A cycle slipped through: place the rest by name rather than loop forever.
            order.extend(
                specs
                    .keys()
                    .filter(|n| !placed.contains(n.as_str()))
                    .cloned(),
            );
            break;
        }
    }
    order
}

/// The services that name `name` in `after` or `requires`.
pub fn dependents<'a>(specs: impl Iterator<Item = &'a ServiceSpec>, name: &str) -> Vec<String> {
    specs
        .filter(|s| s.dependencies().any(|d| d == name))
        .map(|s| s.name.clone())
        .collect()
}

//! A rescan of the definition directories applied: added, removed and changed services.

use super::*;

impl<E: Executor> Core<E> {
    /// Applies a fresh load of the definition directories: starts added services,
    /// stops removed ones, restarts changed ones. A definition that is now broken keeps
    /// its running version (bad input loses nothing); its errors are reported.
    pub fn apply_rescan(&mut self, loaded: Loaded, now: Instant) -> crate::rescan::Diff {
        for error in &loaded.errors {
            log::warn(format_args!("definition: {error}"));
        }
        // Definitions that failed to load keep their running version: a broken file, or
        // every file of a directory that could not be read.
        let broken: BTreeSet<String> = loaded
            .errors
            .iter()
            .filter_map(|e| {
                e.file
                    .file_stem()
                    .and_then(|s| s.to_str())
                    .map(str::to_string)
            })
            .collect();
        let mut new_specs = loaded.specs();
        for (name, svc) in &self.services {
            let dir_unreadable = svc
                .spec
                .file
                .parent()
                .is_some_and(|d| loaded.unreadable_dirs.iter().any(|u| u == d));
            if (broken.contains(name) || dir_unreadable) && !new_specs.contains_key(name) {
                new_specs.insert(name.clone(), svc.intended_spec().clone());
            }
        }
        // Compare with what each service is heading for (a pending replacement counts).
        let current: BTreeMap<String, ServiceSpec> = self
            .services
            .iter()
            .filter(|(_, s)| s.then != AfterStop::Remove)
            .map(|(n, s)| (n.clone(), s.intended_spec().clone()))
            .collect();
        let diff = crate::rescan::diff(&current, &new_specs);
        self.definition_errors = loaded.errors;
        for name in diff.added.iter().chain(diff.changed.iter()) {
            let Some(spec) = new_specs.remove(name) else {
                continue;
            };
            let Some(svc) = self.services.get_mut(name) else {
                log::info(format_args!("{name}: added"));
                self.services.insert(name.clone(), Service::new(spec));
                continue;
            };
            log::info(format_args!("{name}: definition changed"));
            if svc.then == AfterStop::Remove {
                // Removed, then added back before it stopped.
                svc.wanted = true;
                svc.note = None;
            }
            let stopping = matches!(svc.state, State::Stopping { .. });
            if svc.spec.same_definition(&spec) {
                // Back to what runs now (a pending change or removal is undone).
                svc.then = if stopping {
                    AfterStop::Restart
                } else {
                    AfterStop::Rest
                };
            } else if svc.state.is_active() {
                svc.then = AfterStop::Replace(Box::new(spec));
                if !stopping {
                    self.begin_stop(name, now);
                }
            } else {
                svc.spec = spec;
                svc.then = AfterStop::Rest;
                svc.history.reset();
                if svc.wanted {
                    svc.state = State::Stopped;
                    svc.note = None;
                }
            }
        }
        for name in &diff.removed {
            let Some(svc) = self.services.get_mut(name) else {
                continue;
            };
            svc.wanted = false;
            svc.then = AfterStop::Remove;
            if svc.state.is_active() {
                // Stopped by reconcile once nothing that requires it runs.
                svc.note = Some("removed: stopping".into());
            } else {
                svc.state = State::Stopped;
                self.finish_stop(name);
            }
        }
        self.reorder();
        diff
    }
}

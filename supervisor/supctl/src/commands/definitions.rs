//! `check` and `export linuxkit`: definitions read with zedinit's own parser, no zedinit
//! needed.

use super::{code, shown};
use std::path::PathBuf;
use supctl::export;
use zedinit::spec::ServiceSpec;

/// An export of the definitions in `dirs` into the container `build_yml` describes, in
/// zedinit's start order, as `format` writes it (linuxkit YAML, the Markdown list). With
/// `root`, the image's users and groups are read from there (numeric ids in the YAML).
pub fn export(
    dirs: &[PathBuf],
    build_yml: &std::path::Path,
    root: Option<&std::path::Path>,
    format: fn(&[&ServiceSpec], &export::Container) -> Result<String, Vec<String>>,
) -> u8 {
    let text = match std::fs::read_to_string(build_yml) {
        Ok(text) => text,
        Err(e) => {
            let what = format!("{}: {e}", build_yml.display());
            eprintln!("supctl: {}", shown(&what));
            return code::ERROR;
        }
    };
    let mut container = match export::read_build_yml(build_yml, &text) {
        Ok(container) => container,
        Err(e) => {
            eprintln!("supctl: {}", shown(&e));
            return code::ERROR;
        }
    };
    if let Some(root) = root
        && let Err(e) = container.read_ids(root)
    {
        eprintln!("supctl: {}", shown(&e));
        return code::ERROR;
    }
    let loaded = zedinit::parse::load_dirs(dirs);
    for e in &loaded.errors {
        eprintln!("supctl: {}", shown(&e.to_string()));
    }
    if !loaded.errors.is_empty() {
        return code::ERROR;
    }
    let specs = loaded.specs();
    // Dependency order, so the onboot entries run in the order zedinit would start them.
    let order = zedinit::graph::start_order(&specs);
    let ordered: Vec<&ServiceSpec> = order.iter().filter_map(|n| specs.get(n)).collect();
    match format(&ordered, &container) {
        Ok(yaml) => {
            print!("{yaml}");
            code::OK
        }
        Err(errors) => {
            for e in errors {
                eprintln!("supctl: {}", shown(&e));
            }
            code::ERROR
        }
    }
}

pub fn check(dirs: &[PathBuf]) -> u8 {
    for dir in dirs {
        if !dir.is_dir() {
            eprintln!("{}: not a directory", shown(&dir.display().to_string()));
            return code::ERROR;
        }
    }
    let loaded = zedinit::parse::load_dirs(dirs);
    for e in &loaded.errors {
        println!("{}", shown(&e.to_string()));
    }
    if loaded.errors.is_empty() {
        println!("ok: {} service(s)", loaded.definitions.len());
        code::OK
    } else {
        println!(
            "{} problem(s); {} good service(s)",
            loaded.errors.len(),
            loaded.definitions.len()
        );
        code::ERROR
    }
}

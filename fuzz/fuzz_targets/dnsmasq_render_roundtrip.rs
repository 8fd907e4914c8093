#![no_main]

use libfuzzer_sys::fuzz_target;
use std::path::{Path, PathBuf};

/// zedinit's own parser reads the generated definition (dnsmasq-render does not link it).
fn read_definition(name: &str, file: &Path, text: &str) -> Result<Vec<(PathBuf, bool)>, String> {
    let def = zedinit::parse::parse_definition(name, file, text).map_err(|e| format!("{e:?}"))?;
    let run = def.spec.run.ok_or("not confined (no [run])")?;
    Ok(run.binds.into_iter().map(|b| (b.src, b.readonly)).collect())
}

fuzz_target!(|data: &[u8]| dnsmasq_render::fuzzing::render_roundtrip(data, &read_definition));

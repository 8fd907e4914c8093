//! The committed fuzz corpus replayed through this crate's fuzz entry points
//! (`lab::replay_corpus`). Fuzzing itself: `bench/fuzz`.

use lab::replay_corpus as replay;

#[test]
fn dnsmasq_render_roundtrip_corpus() {
    replay("dnsmasq_render_roundtrip", |data| {
        dnsmasq_render::fuzzing::render_roundtrip(data, &read_definition)
    });
}

/// zedinit's own parser: a generated definition it refuses, or that is not confined, is
/// an error.
fn read_definition(
    name: &str,
    file: &std::path::Path,
    text: &str,
) -> Result<Vec<(std::path::PathBuf, bool)>, String> {
    let def = zedinit::parse::parse_definition(name, file, text).map_err(|e| format!("{e:?}"))?;
    let run = def.spec.run.ok_or("not confined (no [run])")?;
    Ok(run.binds.into_iter().map(|b| (b.src, b.readonly)).collect())
}

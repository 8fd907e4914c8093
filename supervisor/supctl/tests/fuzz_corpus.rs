//! The committed fuzz corpus replayed through this crate's fuzz entry points
//! (`lab::replay_corpus`). Fuzzing itself: `bench/fuzz`.

use lab::replay_corpus as replay;

#[test]
fn build_yml_corpus() {
    replay("build_yml", supctl::fuzzing::build_yml);
}

#[test]
fn export_roundtrip_corpus() {
    replay("export_roundtrip", |data| {
        supctl::fuzzing::export(data, &|text| {
            serde_yaml::from_str::<serde_json::Value>(text).map_err(|e| e.to_string())
        })
    });
}

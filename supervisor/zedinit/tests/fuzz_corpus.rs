//! The committed fuzz corpus replayed through this crate's fuzz entry points
//! (`lab::replay_corpus`). Fuzzing itself: `bench/fuzz`.

use lab::replay_corpus as replay;

#[test]
fn definition_corpus() {
    replay("definition", zedinit::fuzzing::definition);
}

#[test]
fn run_table_corpus() {
    replay("run_table", zedinit::fuzzing::run_table);
}

#[test]
fn control_corpus() {
    replay("control", zedinit::fuzzing::control);
}

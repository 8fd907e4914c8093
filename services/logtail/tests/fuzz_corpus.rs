//! The committed fuzz corpus replayed through this crate's fuzz entry points
//! (`lab::replay_corpus`). Fuzzing itself: `bench/fuzz`.

use lab::replay_corpus as replay;

#[test]
fn logtail_state_corpus() {
    replay("logtail_state", logtail::fuzzing::state);
}

#[test]
fn logtail_lines_corpus() {
    replay("logtail_lines", logtail::fuzzing::lines);
}

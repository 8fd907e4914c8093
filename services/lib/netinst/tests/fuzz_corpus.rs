//! The committed fuzz corpus replayed through this crate's fuzz entry points
//! (`lab::replay_corpus`). Fuzzing itself: `bench/fuzz`.

use lab::replay_corpus as replay;

#[test]
fn netinst_instance_corpus() {
    replay("netinst_instance", netinst::fuzzing::instance);
}

#[test]
fn netinst_leases_corpus() {
    replay("netinst_leases", netinst::fuzzing::leases);
}

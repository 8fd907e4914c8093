//! The committed fuzz corpus replayed through this crate's fuzz entry points
//! (`lab::replay_corpus`). Fuzzing itself: `bench/fuzz`.

use lab::replay_corpus as replay;

#[test]
fn localds_dns_answer_corpus() {
    replay("localds_dns_answer", localds::fuzzing::dns_answer);
}

#[test]
fn mdns_sd_packet_corpus() {
    replay("mdns_sd_packet", |data| {
        mdns_sd::fuzz_api::parse_packet(&localds::fuzzing::known_question_types(data))
    });
}

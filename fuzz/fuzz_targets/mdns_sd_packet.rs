#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    mdns_sd::fuzz_api::parse_packet(&localds::fuzzing::known_question_types(data))
});

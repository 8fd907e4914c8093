#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    supctl::fuzzing::export(data, &|text| {
        serde_yaml::from_str::<serde_json::Value>(text).map_err(|e| e.to_string())
    })
});

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| portcullis_scim::fuzz_checks::filter(data));

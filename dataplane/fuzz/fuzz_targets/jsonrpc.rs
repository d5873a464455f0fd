#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| portcullis_dataplane::fuzz_checks::jsonrpc(data));

#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| ha_fuzz::field_selector(data));

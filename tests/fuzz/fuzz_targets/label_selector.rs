#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| ha_fuzz::label_selector(data));

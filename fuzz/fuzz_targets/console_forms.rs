#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| ztgw_fuzz::console_forms(data));

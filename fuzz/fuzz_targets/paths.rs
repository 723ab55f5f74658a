#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| qftp_fuzz::paths::check(data));

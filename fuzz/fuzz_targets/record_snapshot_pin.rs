#![no_main]
// The snapshot pin decoder: never panics, and round-trips what it accepts.
libfuzzer_sys::fuzz_target!(|data: &[u8]| nokv_meta::fuzz_entry::snapshot_pin(data));

#![no_main]
// The snapshot history record and key decoders: never panic, round-trip.
libfuzzer_sys::fuzz_target!(|data: &[u8]| nokv_meta::fuzz_entry::history(data));

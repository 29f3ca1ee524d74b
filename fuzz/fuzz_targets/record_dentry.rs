#![no_main]
// The dentry record decoder: never panics, and round-trips what it accepts.
libfuzzer_sys::fuzz_target!(|data: &[u8]| nokv_meta::fuzz_entry::dentry(data));

#![no_main]
// Name and path validation: never panics; an accepted path is made of
// valid names, prints back to a path that parses to itself, and never
// climbs above the root.
use nokv_types::{validate_name, NokvPath, MAX_NAME_LEN};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if validate_name(data).is_ok() {
        assert!(!data.is_empty() && data.len() <= MAX_NAME_LEN);
        assert!(!data.contains(&b'/') && !data.contains(&0));
        assert!(data != b"." && data != b"..");
    }
    if let Ok(path) = NokvPath::parse_bytes(data) {
        for c in path.components() {
            assert!(validate_name(c).is_ok(), "{c:?}");
        }
        if let Ok(text) = std::str::from_utf8(data) {
            let again = NokvPath::parse(&path.to_string()).expect("a printed path parses");
            // Lossless when every component is UTF-8 (it is: the input is).
            assert_eq!(again, path, "{text:?}");
        }
        if let Some(parent) = path.parent() {
            assert!(path.starts_with(&parent));
        }
    }
});

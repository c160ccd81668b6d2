//! Any bytes as a client's path: normalising must not panic, and what it gives must be
//! absolute, free of `.`, `..` and empty components, and normalise to itself.

#![no_main]

use libfuzzer_sys::fuzz_target;
use tapline_sftp::path::JailPath;

fuzz_target!(|data: &[u8]| {
    let Ok(path) = JailPath::parse(data) else {
        return;
    };
    let shown = path.to_client();
    assert_eq!(shown.first(), Some(&b'/'));
    if !path.is_root() {
        for component in shown[1..].split(|&b| b == b'/') {
            assert!(!matches!(component, b"" | b"." | b".."), "{shown:?}");
        }
    }
    assert_eq!(JailPath::parse(&shown).as_ref(), Ok(&path));
});

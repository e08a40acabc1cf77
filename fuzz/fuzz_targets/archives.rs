//! Zip and gzip containers over any bytes: the content or a clean error, never a panic, and
//! never more content than the size cap (a zip bomb stops there).
#![no_main]

use std::io::{Read, Write};

use isinbeat::sources::decompress;
use libfuzzer_sys::fuzz_target;

const CAP: u64 = 1 << 20;

fuzz_target!(|data: &[u8]| {
    let mut file = tempfile::NamedTempFile::new().expect("a temporary file");
    file.write_all(data).expect("written");
    let Ok((_, mut content)) = decompress::open(file.path(), None, CAP) else { return };
    let mut total = 0u64;
    let mut buffer = [0u8; 1 << 14];
    loop {
        match content.read(&mut buffer) {
            Ok(0) | Err(_) => break,
            Ok(n) => total += n as u64,
        }
        assert!(total <= CAP, "read past the cap");
    }
});

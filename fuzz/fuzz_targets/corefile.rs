//! The Corefile: lexer, parser and the setup of every directive → a config or a clean error.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // The server reads Corefiles the same way (invalid UTF-8 replaced).
    let text = String::from_utf8_lossy(data);
    let _ = exdns::fuzzing::corefile(&text);
});

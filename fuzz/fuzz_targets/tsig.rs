//! TSIG (RFC 8945): a request's raw bytes → verification against a fixed key → the signed
//! reply or error reply, which must parse back with the right TSIG record.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    exdns::fuzzing::tsig(data);
});

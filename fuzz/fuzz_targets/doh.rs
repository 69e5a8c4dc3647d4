//! DoH (RFC 8484): a request's method, path, content type and body → the DoH request rules →
//! a DNS message or an HTTP status, and the reply's max-age.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    exdns::fuzzing::doh(data);
});

//! forward's relay of an upstream reply: `[query length][query][upstream reply]` → the ID and
//! question checks → the reply the client gets.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    exdns::fuzzing::forward_relay(data);
});

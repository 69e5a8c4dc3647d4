//! The manifest loader (YAML and JSON) and the index built from what it loads.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    exdns::fuzzing::manifests(data);
});

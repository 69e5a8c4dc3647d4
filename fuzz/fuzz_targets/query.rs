//! The query path: raw bytes as a UDP datagram and as a TCP message → the reply or a drop.
//! See `exdns::fuzzing::QueryHarness::check` for the invariants.
#![no_main]

use std::path::Path;
use std::sync::LazyLock;

use exdns::fuzzing::QueryHarness;
use libfuzzer_sys::fuzz_target;

static HARNESS: LazyLock<QueryHarness> = LazyLock::new(|| {
    let demo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/demo");
    QueryHarness::new(&demo).expect("the query harness starts")
});

fuzz_target!(|data: &[u8]| {
    HARNESS.check(data);
});

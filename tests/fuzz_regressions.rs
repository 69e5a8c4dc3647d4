//! Replays the fuzz inputs through the fuzz targets' own entry points (`exdns::fuzzing`), so the
//! normal test suite covers them without cargo-fuzz: the committed seeds (`fuzz/seeds/TARGET`)
//! and crash regressions (`fuzz/regressions/TARGET`), and the local working corpora
//! (`fuzz/corpus/TARGET`, not committed) when a fuzzing run left one. Every failing file is
//! named.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};

use exdns::fuzzing;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Every input file of `target`, and how many are committed (seeds and regressions).
fn inputs(target: &str) -> (Vec<PathBuf>, usize) {
    let mut files = Vec::new();
    let mut committed = 0;
    for dir in ["seeds", "regressions", "corpus"] {
        let Ok(entries) = std::fs::read_dir(root().join("fuzz").join(dir).join(target)) else {
            continue;
        };
        let mut these: Vec<PathBuf> = entries
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.is_file())
            .collect();
        these.sort();
        if dir != "corpus" {
            committed += these.len();
        }
        files.extend(these);
    }
    (files, committed)
}

/// Runs `check` on every input of `target`; panics naming each file that failed.
fn replay(target: &str, min_committed: usize, mut check: impl FnMut(&[u8])) {
    let (files, committed) = inputs(target);
    assert!(
        committed >= min_committed,
        "only {committed} committed inputs for {target}"
    );
    let mut failed = Vec::new();
    for f in &files {
        let data = std::fs::read(f).unwrap();
        if catch_unwind(AssertUnwindSafe(|| check(&data))).is_err() {
            failed.push(f.display().to_string());
        }
    }
    assert!(
        failed.is_empty(),
        "{} of {} {target} inputs failed:\n{}",
        failed.len(),
        files.len(),
        failed.join("\n")
    );
    eprintln!("{target}: {} inputs replayed", files.len());
}

#[test]
fn query_inputs() {
    let h = fuzzing::QueryHarness::new(&root().join("fixtures/demo")).expect("harness");
    replay("query", 100, |d| h.check(d));
}

#[test]
fn corefile_inputs() {
    replay("corefile", 50, |d| {
        let _ = fuzzing::corefile(&String::from_utf8_lossy(d));
    });
}

#[test]
fn manifests_inputs() {
    replay("manifests", 10, |d| {
        fuzzing::manifests(d);
    });
}

#[test]
fn forward_relay_inputs() {
    replay("forward_relay", 100, |d| {
        fuzzing::forward_relay(d);
    });
}

#[test]
fn tsig_inputs() {
    replay("tsig", 10, |d| {
        fuzzing::tsig(d);
    });
    // And as queries to the query target's `tsig` block (tsig.example.org).
    let h = fuzzing::QueryHarness::new(&root().join("fixtures/demo")).expect("harness");
    replay("tsig", 10, |d| h.check(d));
}

#[test]
fn doh_inputs() {
    replay("doh", 40, |d| {
        fuzzing::doh(d);
    });
}

#[test]
fn the_seeds_exercise_the_targets() {
    // Replaying is only worth something if the inputs get past the first checks.
    let h = fuzzing::QueryHarness::new(&root().join("fixtures/demo")).expect("harness");
    let (files, _) = inputs("query");
    let answered = files
        .iter()
        .filter(|f| {
            let d = std::fs::read(f).unwrap();
            h.answer(&d, exdns::dns::request::Proto::Tcp)
                .is_some_and(|r| r.len() > 12 && r[3] & 0x0f == 0 && r[7] > 0)
        })
        .count();
    eprintln!(
        "{answered} of {} query inputs answered with data",
        files.len()
    );
    assert!(answered >= 150, "only {answered} query seeds get an answer");

    let (files, _) = inputs("forward_relay");
    let relayed = files
        .iter()
        .filter(|f| fuzzing::forward_relay(&std::fs::read(f).unwrap()).is_some())
        .count();
    eprintln!("{relayed} of {} relay inputs relayed", files.len());
    assert!(relayed >= 400, "only {relayed} relay seeds are relayed");

    let (files, _) = inputs("corefile");
    let ok = files
        .iter()
        .filter(|f| fuzzing::corefile(&String::from_utf8_lossy(&std::fs::read(f).unwrap())).is_ok())
        .count();
    eprintln!("{ok} of {} Corefile inputs set up", files.len());
    assert!(ok >= 50, "only {ok} Corefile seeds set up");

    let loaded: usize = inputs("manifests")
        .0
        .iter()
        .map(|f| fuzzing::manifests(&std::fs::read(f).unwrap()))
        .sum();
    eprintln!("{loaded} objects loaded from the manifest inputs");
    assert!(loaded >= 20, "only {loaded} objects in the manifest seeds");

    let (files, _) = inputs("tsig");
    let outcomes: Vec<Option<bool>> = files
        .iter()
        .map(|f| fuzzing::tsig(&std::fs::read(f).unwrap()))
        .collect();
    let valid = outcomes.iter().filter(|o| **o == Some(true)).count();
    let rejected = outcomes.iter().filter(|o| **o == Some(false)).count();
    eprintln!(
        "{valid} valid and {rejected} rejected of {} TSIG inputs",
        files.len()
    );
    assert!(
        valid >= 5 && rejected >= 5,
        "{valid} valid, {rejected} rejected TSIG seeds"
    );
}

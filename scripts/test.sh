#!/usr/bin/env bash
# The whole test suite, as CI runs it: installs the test tools that are missing (Debian packages,
# pip packages), runs the release lints (workflows, Dockerfile, YAML, chart values, versions),
# checks formatting and clippy, then runs every test.
set -euo pipefail
cd "$(dirname "$0")/.."

./scripts/install-test-tools.sh
./scripts/lint-release.sh

cargo fmt --all -- --check
cargo clippy --all-targets --locked -- -D warnings
cargo test --all-targets --locked

# Fuzz smoke run (fuzz/README.md): every target 20 s from the committed seeds. Opt-in
# (EXDNS_FUZZ_SMOKE=1): a cold fuzz build (AddressSanitizer, release) costs about 30 CPU-minutes,
# too much for every CI run; the committed seeds and regressions are replayed by
# tests/fuzz_regressions.rs in `cargo test` above either way.
if [ "${EXDNS_FUZZ_SMOKE:-0}" = 1 ]; then
  command -v cargo-fuzz >/dev/null 2>&1 || cargo install cargo-fuzz --locked
  ./fuzz/run.sh 20
fi

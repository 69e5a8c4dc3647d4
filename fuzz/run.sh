#!/usr/bin/env bash
# Runs fuzz targets for a while each: fuzz/run.sh SECONDS [TARGET...] (default: every target).
# Starts from the committed seeds (fuzz/seeds/TARGET) and the local corpus (fuzz/corpus/TARGET,
# not committed, where new inputs go); a crash stops the run with its input in
# fuzz/artifacts/TARGET/ (see README.md for what to do with it). Stable Rust is enough:
# RUSTC_BOOTSTRAP lets it take the sanitizer flags. Extra libFuzzer flags: FUZZ_FLAGS.
set -euo pipefail
cd "$(dirname "$0")"
secs=${1:-20}
shift || true
targets=("$@")
((${#targets[@]})) || targets=(query corefile manifests forward_relay doh)
export RUSTC_BOOTSTRAP=1
# 16 codegen units: much faster builds of the large dependency tree, slightly slower runs.
build=(--codegen-units 16)
cargo fuzz build "${build[@]}"
for t in "${targets[@]}"; do
  mkdir -p "corpus/$t"
  dict=()
  [ -f "dicts/$t.dict" ] && dict=(-dict="$PWD/dicts/$t.dict")
  echo "== fuzz $t for ${secs}s"
  # shellcheck disable=SC2086
  cargo fuzz run "${build[@]}" "$t" "$PWD/corpus/$t" "$PWD/seeds/$t" -- \
    -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
    "${dict[@]}" ${FUZZ_FLAGS:-}
done

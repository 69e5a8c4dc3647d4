#!/usr/bin/env bash
# The whole test suite, as CI runs it: installs the test tools that are missing (Debian packages,
# pip packages), checks formatting and lints, then runs every test.
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian packages the tests use: dig, kdig, unbound (DoT upstream), dnsperf, nsd and knot
# (comparison servers), dnsdist, iproute2 (network namespaces), curl.
declare -A pkg_for=(
  [dig]=bind9-dnsutils [kdig]=knot-dnsutils [unbound]=unbound [dnsperf]=dnsperf
  [nsd]=nsd [knotd]=knot [dnsdist]=dnsdist [ip]=iproute2 [curl]=curl
)
missing=()
for tool in "${!pkg_for[@]}"; do
  command -v "$tool" >/dev/null 2>&1 || missing+=("${pkg_for[$tool]}")
done
if ((${#missing[@]})); then
  echo "installing test tools: ${missing[*]}"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  # The packages' own services are not wanted: tests start their own instances.
  for svc in unbound nsd knot dnsdist; do $SUDO systemctl disable --now "$svc" >/dev/null 2>&1 || true; done
fi
# dnspython for scripted DNS checks; helm-python-sdk (Helm's own Go library) renders and lints
# the chart in tests/chart.rs.
python3 -c 'import dns, helm_python' >/dev/null 2>&1 || pip install -q dnspython helm-python-sdk

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

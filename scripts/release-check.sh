#!/usr/bin/env bash
# Checks that one version names a release everywhere: Cargo.toml's version, Chart.yaml's version
# and appVersion, values.yaml's image.tag (empty: the appVersion) and a CHANGELOG.md section.
#   scripts/release-check.sh            the version in Cargo.toml (make lint-release)
#   scripts/release-check.sh v1.2.3     also: the tag being released names that version
# Prints the version on success. The release workflow runs it on the pushed tag.
set -euo pipefail
cd "$(dirname "$0")/.."

cargo_version="$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n 1)"
chart_version="$(sed -n 's/^version: *"\{0,1\}\([^"]*\)"\{0,1\}$/\1/p' charts/exdns/Chart.yaml)"
app_version="$(sed -n 's/^appVersion: *"\{0,1\}\([^"]*\)"\{0,1\}$/\1/p' charts/exdns/Chart.yaml)"
# image.tag: the first `tag:` line under `image:` in values.yaml.
image_tag="$(awk '/^image:/ { in_image = 1; next } /^[^ #]/ { in_image = 0 }
  in_image && $1 == "tag:" { v = $2; gsub(/"/, "", v); print v; exit }' charts/exdns/values.yaml)"

fail=0
problem() { echo "release-check: $*" >&2; fail=1; }
[ -n "$cargo_version" ] || problem "no version in Cargo.toml"
[ "$chart_version" = "$cargo_version" ] ||
  problem "charts/exdns/Chart.yaml version is '$chart_version', Cargo.toml's is '$cargo_version'"
[ "$app_version" = "$cargo_version" ] ||
  problem "charts/exdns/Chart.yaml appVersion is '$app_version', Cargo.toml's version is '$cargo_version'"
[ -z "$image_tag" ] || [ "$image_tag" = "$cargo_version" ] ||
  problem "charts/exdns/values.yaml image.tag is '$image_tag' (empty or '$cargo_version' expected)"
if [ $# -gt 0 ]; then
  [ "$1" = "v$cargo_version" ] || problem "the tag '$1' does not name Cargo.toml's version (v$cargo_version)"
fi
scripts/release-notes.sh "$cargo_version" >/dev/null || fail=1
[ "$fail" = 0 ] || exit 1
echo "$cargo_version"

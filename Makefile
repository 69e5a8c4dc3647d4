# exdns developer targets. `make run` and `make test` are the README's quick start.
CARGO ?= cargo
PORT ?= 1053
# The container image `make image` builds (and the Tiltfile deploys).
IMAGE ?= exdns:dev
# The local kind cluster of the dev loop (hack/kind.yaml names it too).
CLUSTER ?= exdns

.PHONY: run build release test lint fmt bench soak check-config clean image setup up nuke \
	tools lint-release test-chart release-check release-notes

## Build and run exdns on Corefile.example (high ports, no root needed).
run:
	$(CARGO) run --release -- -conf Corefile.example

build:
	$(CARGO) build

release:
	$(CARGO) build --release

## Install missing test tools, check format and lints, run every test.
test:
	./scripts/test.sh

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --all-targets -- -D warnings

## Install the missing test and lint tools (Debian packages, pip packages), as `make test` does first.
tools:
	./scripts/install-test-tools.sh

## Release lints (scripts/lint-release.sh; `make test` runs them, so do the workflows): actionlint on
## the workflows, hadolint on the Dockerfile, yamllint, check-jsonschema on the chart's values,
## ShellCheck on scripts/, and one version in Cargo.toml, Chart.yaml and CHANGELOG.md.
lint-release:
	./scripts/lint-release.sh

## The chart tests alone: Helm's renderer and linter, the values schema, `exdns -check` on every
## rendered Corefile (what the chart workflow runs on changes to charts/).
test-chart:
	$(CARGO) test --locked --test chart

## The version a release tag must name, checked everywhere: make release-check [TAG=v0.1.0]
release-check:
	./scripts/release-check.sh $(TAG)

## A version's release notes, from CHANGELOG.md: make release-notes VERSION=0.1.0
release-notes:
	./scripts/release-notes.sh $(VERSION)

fmt:
	$(CARGO) fmt --all

## Validate a Corefile without starting anything: make check-config CONF=path
check-config:
	$(CARGO) run --release -- -conf $(or $(CONF),Corefile.example) -check

## Benchmarks (see bench/README.md): authoritative UDP vs NSD and Knot with its resperf latency curve,
## forwarding over DoT vs unbound and dnsdist, TCP and DoT serving vs NSD, Knot and unbound, then
## k8s_gateway at scale. Installs nothing; needs dnsperf (+resperf), nsd, knot, unbound, dnsdist, gnuplot.
bench:
	./bench/run.sh
	$(CARGO) test --release --test k8s_scale -- --ignored --nocapture

## Soak (see bench/README.md): 10 minutes (SOAK_SECS) of authoritative UDP+TCP and forwarded DoT load
## with cluster churn and TCP connection floods over the cap; fails on any lost query, error rcode,
## RSS or fd growth, or a flood that shed nothing or kept a new TCP client out. Report: bench/results/soak.md.
soak:
	$(CARGO) test --release --test soak -- --ignored --nocapture

clean:
	$(CARGO) clean

## The container image (Dockerfile: multi-stage, distroless, non-root, the binary only).
image:
	docker build -t $(IMAGE) .

## Dev loop (see README, "Development"): a kind cluster, then Tilt builds the image, installs the
## chart and the test/ manifests and keeps them updated; `make nuke` deletes the cluster.
setup:
	kind create cluster --name $(CLUSTER) --config hack/kind.yaml

up:
	tilt up

nuke:
	kind delete cluster --name $(CLUSTER)

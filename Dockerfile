# syntax=docker/dockerfile:1
# exdns container image: `make image` (docker build -t exdns:dev .).
#
# Build stage: the release binary. glibc of rust:1-bookworm matches the distroless Debian 12 base.
# A multi-platform build (the release workflow's linux/amd64 + linux/arm64) runs this stage once per
# platform: each keeps its own target-directory cache.
FROM rust:1-bookworm AS build
ARG TARGETARCH
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target,id=exdns-target-${TARGETARCH} \
    cargo build --release --locked --bin exdns \
    && cp target/release/exdns /usr/local/bin/exdns

# Final stage: the binary only, on distroless (glibc, CA certificates for DNS-over-TLS upstreams,
# no shell), running as the distroless "nonroot" user (UID/GID 65532, as the Helm chart expects).
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /usr/local/bin/exdns /exdns
USER 65532:65532
# DNS (the chart's Corefile listens on :1053, no privileges needed), health, ready, metrics, podip.
EXPOSE 1053/udp 1053/tcp 8080/tcp 8181/tcp 9153/tcp 3150/tcp
ENTRYPOINT ["/exdns"]
CMD ["-conf", "/etc/coredns/Corefile"]

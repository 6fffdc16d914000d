# syntax=docker/dockerfile:1
#
# Agent image of the kubectl plugins: kubectl-migrate and kubectl-bwlimit, whose agent
# subcommands run in short-lived pods the plugins start on cluster nodes. docs/agent-image.md
# explains the build, the tag and the privileges.
#
#   docker build -t ghcr.io/kubectl-plugins/kubectl-plugins-agent:0.1.0 .
#
# VERSION must equal workspace.package.version in Cargo.toml, because the plugins' default
# --agent-image is IMAGE_REPOSITORY:VERSION; tests/tests/krew_agent_image.rs checks both.

ARG RUST_VERSION=1.95
ARG IMAGE_REPOSITORY=ghcr.io/kubectl-plugins/kubectl-plugins-agent
ARG VERSION=0.1.0

FROM rust:${RUST_VERSION}-bookworm AS builder
WORKDIR /src
COPY . .
# The cache mounts keep the registry and build outputs between builds, so the binaries are
# copied out of target/ inside the same step.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin kubectl-migrate --bin kubectl-bwlimit \
        -p kubectl-migrate -p kubectl-bwlimit \
    && install -D -m 0755 target/release/kubectl-migrate /out/kubectl-migrate \
    && install -D -m 0755 target/release/kubectl-bwlimit /out/kubectl-bwlimit

# distroless/cc has glibc and libgcc for the Rust binaries and nothing else: no shell and no
# package manager. Debian 12 matches the bookworm builder's glibc.
FROM gcr.io/distroless/cc-debian12:nonroot
ARG IMAGE_REPOSITORY
ARG VERSION
LABEL org.opencontainers.image.title="kubectl-plugins-agent" \
      org.opencontainers.image.description="Node agent of kubectl-migrate and kubectl-bwlimit" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.ref.name="${IMAGE_REPOSITORY}:${VERSION}" \
      org.opencontainers.image.source="https://github.com/kubectl-plugins/kubectl-plugins" \
      org.opencontainers.image.url="https://github.com/kubectl-plugins/kubectl-plugins" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=builder /out/kubectl-migrate /out/kubectl-bwlimit /usr/local/bin/
# Non-root by default (uid 65532). The bwlimit agent pod sets runAsUser 0 with only the
# NET_ADMIN, SYS_ADMIN and SYS_PTRACE capabilities, because it enters other pods' network
# namespaces and programs qdiscs there.
USER 65532:65532
# Each agent pod sets its own command (kubectl-bwlimit agent ..., kubectl-migrate agent ...).
CMD ["/usr/local/bin/kubectl-bwlimit", "--version"]

#!/usr/bin/env bash
# Installs what the tests need when it is missing: iperf3, restic and iproute2 from Debian
# (root only), and the s3s-fs S3 server from crates.io.
set -euo pipefail

missing=()
command -v iperf3 >/dev/null || missing+=(iperf3)
command -v restic >/dev/null || missing+=(restic)
command -v tc >/dev/null || missing+=(iproute2)
if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" -ne 0 ]; then
        echo "install-test-deps: missing ${missing[*]}: install them with apt-get as root" >&2
        exit 1
    fi
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
fi

# s3s-fs 0.14.1 is the newest release that builds with rustc 1.95; building it takes minutes.
if ! command -v s3s-fs >/dev/null && [ ! -x "${CARGO_HOME:-$HOME/.cargo}/bin/s3s-fs" ]; then
    cargo install s3s-fs@0.14.1 --locked --features binary
fi

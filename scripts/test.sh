#!/usr/bin/env bash
# Runs the whole test suite: installs missing test tools first, then `cargo test`.
# Network tests (netns, veth, ifb, tc) need root; CI runs as root.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install-test-deps.sh
export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"
cargo test --workspace "$@"

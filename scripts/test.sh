#!/usr/bin/env bash
# Runs every test. On a fresh Debian machine it first installs what the tests need:
# Mesa's lavapipe (a CPU Vulkan driver, so GPU tests run without a GPU), the wasm target,
# and for the browser tests Chromium, Node packages, wasm-bindgen-cli and Trunk.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/setup.sh

# Each step says how long the one before it took, and the end says the total.
start=$SECONDS
last=
step() {
  [ -z "$last" ] || printf '   (%d s)\n' $((SECONDS - last))
  last=$SECONDS
  printf '\n== %s\n' "$*"
}
trap 'printf "   (%d s)\n\n== all tests: %d s\n" $((SECONDS - ${last:-$start})) $((SECONDS - start))' EXIT

step "format"
cargo fmt --check

# Clippy's lints, warnings denied, run while the tests and the page build: clippy-driver wraps
# rustc for this project's own crates, as `cargo clippy` does itself, so every crate is
# compiled once, not once to lint and again to run. (`cargo clippy` checks without code and
# shares nothing with a build: it cost 4 minutes here, for native and wasm.)
rustup component list --installed 2>/dev/null | grep -q '^clippy' || rustup component add clippy
RUSTC_WORKSPACE_WRAPPER="$(rustup which clippy-driver)"
export RUSTC_WORKSPACE_WRAPPER
export CLIPPY_ARGS="-D__CLIPPY_HACKERY__warnings__CLIPPY_HACKERY__"

step "lints, then engine, kernels, parity and CLI tests (lavapipe)"
cargo test --release --locked

step "training code smoke test"
python3 train/test_smoke.py

if [ -x tests/browser/run.sh ]; then
  step "browser tests (Chromium, WebGPU on SwiftShader)"
  tests/browser/run.sh
fi

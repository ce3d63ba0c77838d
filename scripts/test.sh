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

step "format and lints"
cargo fmt --check
cargo clippy --all-targets --locked -- -D warnings

step "the library builds for the browser, lint-free"
cargo clippy --locked --target wasm32-unknown-unknown --lib -- -D warnings

step "engine, kernels, parity and CLI tests (lavapipe)"
cargo test --release --locked

step "training code smoke test"
python3 train/test_smoke.py

if [ -x tests/browser/run.sh ]; then
  step "browser tests (Chromium, WebGPU on SwiftShader)"
  tests/browser/run.sh
fi

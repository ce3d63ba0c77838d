#!/usr/bin/env bash
# Runs every test. On a fresh Debian machine it first installs what the tests need:
# Mesa's lavapipe (a CPU Vulkan driver, so GPU tests run without a GPU), the wasm target,
# and for the browser tests Chromium, Node packages, wasm-bindgen-cli and Trunk.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/setup.sh

step() { printf '\n== %s\n' "$*"; }

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

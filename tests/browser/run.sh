#!/usr/bin/env bash
# Builds the page and the native helpers, then runs the browser tests. Under scripts/test.sh
# the page's build also runs clippy on the wasm library (see the lints there).
set -euo pipefail
cd "$(dirname "$0")/../.."
trunk build --release
cargo build --release --locked --bin enet --example browser_helper
cd tests/browser
[ -d node_modules/playwright-core ] || npm ci --no-audit --no-fund
node --test --test-concurrency=1 page.test.mjs offline.test.mjs

#!/usr/bin/env bash
# Builds the page and the native helpers, then runs the browser tests.
set -euo pipefail
cd "$(dirname "$0")/../.."
trunk build --release
cargo build --release --locked --bin enet --example browser_helper
cd tests/browser
[ -d node_modules/playwright-core ] || npm ci --no-audit --no-fund
node --test --test-concurrency=1 page.test.mjs offline.test.mjs

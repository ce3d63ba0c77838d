#!/usr/bin/env bash
# Builds the `enet` CLI and the web page, then serves the page at http://127.0.0.1:8080.
# Extra arguments go to `trunk serve`, e.g. `--address 0.0.0.0 --tls-key-path key.pem
# --tls-cert-path cert.pem` for phones on the local network (see the README).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/setup.sh
cargo build --release --locked --bin enet
echo "CLI: target/release/enet (try: target/release/enet info)"
exec trunk serve --release "$@"

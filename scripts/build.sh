#!/usr/bin/env bash
# Builds the shoal binary (release) and the example Wasm modules.
set -euo pipefail
cd "$(dirname "$0")/.."
rustup target add wasm32-wasip2 >/dev/null
cargo build --release --bins
examples/build.sh
echo "built target/release/shoal and examples/*/*.wasm"

#!/usr/bin/env bash
# Builds every example for wasm32-wasip2 and leaves each module at
# examples/<name>/<name>.wasm.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
rustup target add wasm32-wasip2 >/dev/null 2>&1 || true
cargo build --quiet --release --target wasm32-wasip2 --manifest-path "$here/Cargo.toml" \
  --target-dir "${CARGO_TARGET_DIR:-$here/../target}/examples"
out="${CARGO_TARGET_DIR:-$here/../target}/examples/wasm32-wasip2/release"
cp "$out/hello_http.wasm" "$here/hello-http/hello-http.wasm"
cp "$out/hello-cmd.wasm" "$here/hello-cmd/hello-cmd.wasm"
cp "$out/guestbook_frontend.wasm" "$here/guestbook/frontend.wasm"
cp "$out/guestbook-backend.wasm" "$here/guestbook/backend.wasm"

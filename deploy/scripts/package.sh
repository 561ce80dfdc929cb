#!/usr/bin/env bash
# Builds the .deb packages (ztgw, ztgw-agent) into target/debian/, with the manual pages
# and shell completions generated from the built command. Installs cargo-deb if missing.
set -euo pipefail
cd "$(dirname "$0")/../.."
command -v cargo-deb >/dev/null 2>&1 || cargo install cargo-deb --locked --version 3.8.0
cargo build --release --locked --bins
gen=target/generated
rm -rf "$gen"
mkdir -p "$gen/man" "$gen/man-agent" "$gen/completions"
target/release/ztgw man --out "$gen/man" >/dev/null
target/release/ztgw completions bash > "$gen/completions/ztgw.bash"
target/release/ztgw-agent man --out "$gen/man-agent" >/dev/null
target/release/ztgw-agent completions bash > "$gen/completions/ztgw-agent.bash"
cargo deb -p ztgw-gateway --no-build --locked
cargo deb -p ztgw-agent --no-build --locked
ls -l target/debian/*.deb

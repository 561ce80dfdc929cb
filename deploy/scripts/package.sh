#!/usr/bin/env bash
# Builds the .deb packages (ztgw, ztgw-agent, ztgw-audit) into target/debian/, with the manual pages
# and shell completions generated from the built command, and the Windows agent's
# installer into target/windows/. Installs cargo-deb if missing.
set -euo pipefail
cd "$(dirname "$0")/../.."
command -v cargo-deb >/dev/null 2>&1 || cargo install cargo-deb --locked --version 3.8.0
# The packaged binaries only (the test crate's tools are not shipped).
cargo build --release --locked -p ztgw-gateway -p ztgw-agent -p ztgw-audit --bins
gen=target/generated
rm -rf "$gen"
mkdir -p "$gen/man" "$gen/man-agent" "$gen/completions"
target/release/ztgw man --out "$gen/man" >/dev/null
target/release/ztgw completions bash > "$gen/completions/ztgw.bash"
target/release/ztgw-agent man --out "$gen/man-agent" >/dev/null
target/release/ztgw-agent completions bash > "$gen/completions/ztgw-agent.bash"
cargo deb -p ztgw-gateway --no-build --locked
cargo deb -p ztgw-agent --no-build --locked
cargo deb -p ztgw-audit --no-build --locked
ls -l target/debian/*.deb

# The Windows agent's installer (64-bit, NSIS), from a release build for
# x86_64-pc-windows-gnu: needs the target, MinGW-w64 and nsis (deploy/scripts/test.sh
# installs them).
command -v makensis >/dev/null 2>&1 || {
    echo "package.sh: makensis is missing; install it with: apt-get install nsis" >&2
    exit 1
}
version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)
cargo build --release --locked -p ztgw-agent --target x86_64-pc-windows-gnu
mkdir -p target/windows
makensis -V2 -DVERSION="$version" \
    -DEXE="$PWD/target/x86_64-pc-windows-gnu/release/ztgw-agent.exe" \
    -DDOCS="$PWD/docs" \
    -DOUTFILE="$PWD/target/windows/ztgw-agent-$version-setup.exe" \
    deploy/windows/ztgw-agent.nsi
ls -l target/windows/*.exe

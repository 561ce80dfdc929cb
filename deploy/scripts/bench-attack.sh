#!/usr/bin/env bash
# The control plane under attack (issue #14): 20 legitimate agents' latency and errors,
# quiet and while three addresses attack (5,000 idle connections, 40 HTTP/2 connections
# of unfinished bodies, 50 bogus enrolments a second), and the daemon's peak memory.
# Prints figures from one run. Needs root (network namespaces).
set -euo pipefail
cd "$(dirname "$0")/../.."
need=()
for tool in wireguard-go:wireguard-go wg:wireguard-tools ip:iproute2 curl:curl; do
    command -v "${tool%%:*}" >/dev/null 2>&1 || need+=("${tool#*:}")
done
if ((${#need[@]})); then
    echo "bench-attack.sh: installing ${need[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
cargo build --release --locked --workspace --bins
exec target/release/attack-bench

#!/usr/bin/env bash
# The admission benchmark (issue #7): admissions per second with 200 concurrent agents
# against a baseline mTLS request in the same run, and revocation to the last forwarded
# packet. Prints figures from one run. Needs root (network namespaces). BENCH_SECONDS
# sets the length of each load phase.
set -euo pipefail
cd "$(dirname "$0")/../.."
need=()
for tool in wireguard-go:wireguard-go wg:wireguard-tools ip:iproute2; do
    command -v "${tool%%:*}" >/dev/null 2>&1 || need+=("${tool#*:}")
done
if ((${#need[@]})); then
    echo "bench-admission.sh: installing ${need[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
cargo build --release --locked --workspace --bins
exec target/release/admission-bench

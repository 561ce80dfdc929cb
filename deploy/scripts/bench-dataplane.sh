#!/usr/bin/env bash
# The data plane's benchmark (issue #6): iperf3 through ztgw against wireguard-go as the
# gateway, handshakes per second, memory and latency with 10,000 idle peers. Prints
# figures from one run; compare the ratios, not the absolute numbers, on a shared machine.
# Needs root (network namespaces). BENCH_SECONDS sets the length of each iperf3 run.
set -euo pipefail
cd "$(dirname "$0")/../.."
need=()
for tool in wireguard-go:wireguard-go wg:wireguard-tools iperf3:iperf3 ping:iputils-ping ip:iproute2; do
    command -v "${tool%%:*}" >/dev/null 2>&1 || need+=("${tool#*:}")
done
if ((${#need[@]})); then
    echo "bench-dataplane.sh: installing ${need[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
cargo build --release --locked -p ztgw-tests --bins
exec target/release/dataplane-bench

#!/usr/bin/env bash
# Several gateways on PostgreSQL (issue #21): admissions per second on one gateway with
# SQLite (the baseline, same run), one on PostgreSQL and two sharing one PostgreSQL; and
# a revocation on one gateway to the last packet the other forwards. Prints figures from
# one run. Needs root (network namespaces). BENCH_SECONDS sets each load phase's length.
set -euo pipefail
cd "$(dirname "$0")/../.."
need=()
for tool in wireguard-go:wireguard-go wg:wireguard-tools ip:iproute2; do
    command -v "${tool%%:*}" >/dev/null 2>&1 || need+=("${tool#*:}")
done
# PostgreSQL's server programs (the benchmark starts its own cluster).
compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null || need+=(postgresql)
if ((${#need[@]})); then
    echo "bench-cluster.sh: installing ${need[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
cargo build --release --locked --workspace --bins
exec target/release/cluster-bench

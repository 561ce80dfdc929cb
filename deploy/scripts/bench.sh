#!/usr/bin/env bash
# Capacity (G17): every benchmark, one run each, printing its figures with their
# baselines: the data plane (tunnel throughput against a wireguard-go gateway,
# handshakes, 10,000 idle peers), admissions (200 concurrent agents; revocation to the
# last packet), and the audit journal (durable appends and verification per second).
# Needs root (network namespaces). docs/capacity.md records the figures.
set -euo pipefail
cd "$(dirname "$0")/../.."
bash deploy/scripts/bench-dataplane.sh
echo
bash deploy/scripts/bench-admission.sh
echo
cargo bench --locked -p ztgw-journal --bench journal

#!/usr/bin/env bash
# Capacity (G17): every benchmark, one run each, printing its figures with their
# baselines: the data plane (tunnel throughput against a wireguard-go gateway,
# handshakes, 10,000 and 50,000 idle peers; the cost of enforcement per packet against
# the same path without it and boringtun alone), admissions (200 concurrent agents; revocation to the
# last packet), several gateways on PostgreSQL (admissions against SQLite; revocation
# on one gateway to the last packet on another), the audit journal (durable appends and
# verification per second), and posture reports (parsing against plain JSON, evaluation).
# Needs root (network namespaces). docs/capacity.md records the figures.
set -euo pipefail
cd "$(dirname "$0")/../.."
bash deploy/scripts/bench-dataplane.sh
echo
cargo bench --locked -p ztgw-dataplane --bench path
echo
bash deploy/scripts/bench-admission.sh
echo
bash deploy/scripts/bench-cluster.sh
echo
cargo bench --locked -p ztgw-journal --bench journal
echo
cargo bench --locked -p ztgw-posture --bench evaluate

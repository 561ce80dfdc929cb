#!/usr/bin/env bash
# A guided tour of ztgw on this machine, on defaults: a gateway on 127.0.0.1, a
# security unit inviting an employee, the employee's device enrolling, a revocation
# cutting it off. Everything lives in a temporary directory removed at the end, also on
# Ctrl-C or failure. This is README's run command.
set -euo pipefail
cd "$(dirname "$0")/../.."

if ! command -v cargo >/dev/null 2>&1; then
    echo "demo.sh: cargo is missing; install Rust from your distribution or with rustup" >&2
    exit 1
fi
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
run() { printf '$ %s\n' "$*"; "$@"; }

step "Building ztgw and ztgw-agent"
cargo build --workspace --bins --locked -q
export PATH="$PWD/target/debug:$PATH"

work=$(mktemp -d -t ztgw-demo.XXXXXX)
server_pid=""
cleanup() {
    if [[ -n $server_pid ]]; then kill "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; fi
    rm -rf "$work"
}
trap cleanup EXIT INT TERM

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])' 2>/dev/null || echo 18443)
export ZTGW_CONFIG="$work/gateway/gateway.toml"

step "The security unit creates the gateway: CA, keys, settings, example policy, registry"
run ztgw init --dir "$work/gateway" --name 127.0.0.1 --endpoint 127.0.0.1:51820 --control-listen "127.0.0.1:$port"

step "The gateway starts (control plane on 127.0.0.1:$port, admin socket in the state directory)"
RUST_LOG=warn ztgw serve &
server_pid=$!
for _ in $(seq 100); do [[ -S $work/gateway/admin.sock ]] && break; sleep 0.1; done
[[ -S $work/gateway/admin.sock ]] || { echo "the gateway did not start" >&2; exit 1; }

step "G1: the administration approves telework for employee e1029 (finance); the security unit invites her"
invitation_json=$(ztgw --operator "security-unit" invite --employee e1029 --role finance \
    --approved-by "Head of Finance" --reference "DEC-2026-114" --valid-for 72h --json)
invitation=$(printf '%s' "$invitation_json" | python3 -c 'import json,sys; print(json.load(sys.stdin)["invitation"])')
printf '$ ztgw invite --employee e1029 --role finance --approved-by "Head of Finance" --reference DEC-2026-114\n'
printf 'invitation (used once, valid 72h):\n  %s\n' "$invitation"

step "G8: on her laptop, the agent makes the keys (they never leave it) and enrols"
run ztgw-agent --state-dir "$work/laptop" enroll "$invitation" --ownership administration
ls -l "$work/laptop"

step "The laptop talks to the gateway with its certificate (mTLS)"
run ztgw-agent --state-dir "$work/laptop" status

step "The same invitation cannot be used twice"
ztgw-agent --state-dir "$work/other-laptop" enroll "$invitation" || true

step "The security unit sees the device"
run ztgw device list

device=$(ztgw device list --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["devices"][0]["id"])')

step "G3/G13: the laptop is reported lost; the security unit revokes it on the running gateway"
run ztgw --operator "security-unit" device revoke "$device" --reason lost --note "reported by phone at 09:12"

step "The laptop is refused at once"
ztgw-agent --state-dir "$work/laptop" status || true

step "The record keeps who did what, when and why"
run ztgw device show "$device"

step "Done: everything is removed"

#!/usr/bin/env bash
# ztgw's story on this machine, on defaults, in network namespaces (README's run
# command): a gateway, an internal network with an intranet page and a database, and two
# employees' laptops running ztgw-agent with the standard WireGuard client
# (wireguard-go). Invitation, enrolment, admission, allowed and denied access, a posture
# refusal with its reasons, a revocation cutting the tunnel, the journal verified and the
# hours report. Everything is removed at the end, also on Ctrl-C or failure.
#
# Needs root (network namespaces, TUN devices); installs wireguard-go, wireguard-tools,
# iproute2, curl and tzdata from Debian when missing. DEMO_PAUSE=1 waits for Enter
# between steps. tests/tests/acceptance.rs runs it and checks every outcome.
set -euo pipefail
cd "$(dirname "$0")/../.."

if [[ $(id -u) -ne 0 ]]; then
    echo "demo.sh builds network namespaces and TUN devices: run it as root (sudo bash deploy/scripts/demo.sh)" >&2
    exit 1
fi
if ! command -v cargo >/dev/null 2>&1; then
    echo "demo.sh: cargo is missing; install Rust from your distribution or with rustup" >&2
    exit 1
fi
need=()
for tool in wireguard-go:wireguard-go wg:wireguard-tools ip:iproute2 curl:curl python3:python3; do
    command -v "${tool%%:*}" >/dev/null 2>&1 || need+=("${tool#*:}")
done
[[ -e /usr/share/zoneinfo/Africa/Casablanca ]] || need+=(tzdata)
if ((${#need[@]})); then
    echo "demo.sh: installing ${need[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi

bold=$'\033[1m'; dim=$'\033[2m'; off=$'\033[0m'
step() { printf '\n%s== %s%s\n' "$bold" "$*" "$off"; [[ ${DEMO_PAUSE:-0} == 1 ]] && read -r -p "(Enter) " _ || true; }
say() { printf '%s%s%s\n' "$dim" "$*" "$off"; }
run() { printf '$ %s\n' "$*"; "$@"; }
# `inns NS CMD...` runs a command inside a namespace (background processes use
# `ip netns exec` directly, so that $! is their own pid).
inns() { local ns=$1; shift; ip netns exec "$ns" "$@"; }
# `on WHO NS CMD...` shows and runs a command on someone's laptop.
on() { local who=$1 ns=$2; shift 2; printf '[%s]$ %s\n' "$who" "$*"; ip netns exec "$ns" "$@"; }

step "Building ztgw, ztgw-agent and the demo's probe"
# (The acceptance test, which runs this script, has built them already.)
[[ ${DEMO_NO_BUILD:-0} == 1 ]] || cargo build --workspace --bins --locked -q
bin="$PWD/target/debug"
export PATH="$bin:$PATH"

tag="zd$$"
gw="${tag}gw"; inside="${tag}in"; amina="${tag}a"; karim="${tag}k"
work=$(mktemp -d -t ztgw-demo.XXXXXX)
pids=()
cleanup() {
    set +e
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
    for p in "${pids[@]}"; do wait "$p" 2>/dev/null; done
    for ns in "$amina" "$karim" "$inside" "$gw"; do ip netns del "$ns" 2>/dev/null; done
    rm -f /var/run/wireguard/"${tag}"*.sock
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
export ZTGW_CONFIG="$work/gateway/gateway.toml"

step "The network: a gateway, the internal network (10.20.0.0/16), two laptops outside"
for ns in "$gw" "$inside" "$amina" "$karim"; do ip netns add "$ns"; ip -n "$ns" link set lo up; done
ip -n "$gw" addr add 192.0.2.1/32 dev lo
ip link add "${tag}g0" netns "$gw" type veth peer name "${tag}i0" netns "$inside"
ip -n "$gw" addr add 10.20.0.1/16 dev "${tag}g0"; ip -n "$gw" link set "${tag}g0" up
ip -n "$inside" addr add 10.20.0.10/16 dev "${tag}i0"; ip -n "$inside" addr add 10.20.1.5/16 dev "${tag}i0"
ip -n "$inside" link set "${tag}i0" up
ip -n "$inside" route add 100.64.0.0/16 via 10.20.0.1
inns "$gw" sysctl -q -w net.ipv4.ip_forward=1
n=0
for ns in "$amina" "$karim"; do
    n=$((n + 1))
    ip link add "${tag}g$n" netns "$gw" type veth peer name "${tag}l$n" netns "$ns"
    ip -n "$gw" addr add "192.168.$n.1/24" dev "${tag}g$n"; ip -n "$gw" link set "${tag}g$n" up
    ip -n "$ns" addr add "192.168.$n.2/24" dev "${tag}l$n"; ip -n "$ns" link set "${tag}l$n" up
    ip -n "$ns" route add 192.0.2.1/32 via "192.168.$n.1"
done
mkdir -p "$work/www"
echo "<h1>Intranet of the ministry</h1>" >"$work/www/index.html"
ip netns exec "$inside" python3 -m http.server 80 --bind 10.20.0.10 --directory "$work/www" >/dev/null 2>&1 &
pids+=($!)
ip netns exec "$inside" netns-probe serve --tcp 5432,22 --udp 53 --addrs 10.20.0.10,10.20.1.5 >/dev/null </dev/zero &
pids+=($!)
say "intranet: http://10.20.0.10/   database: 10.20.1.5:5432   (ssh on 10.20.1.5:22 is not for finance)"

step "The security unit creates the gateway at 192.0.2.1: CA, keys, settings, registry"
run ztgw init --dir "$work/gateway" --name 192.0.2.1 --endpoint 192.0.2.1:51820 --control-listen 192.0.2.1:8443 >/dev/null
sed -i "s/interface = \"ztgw0\"/interface = \"${tag}t\"/; s/workers = 0/workers = 1/; s/127.0.0.1:9469/127.0.0.1:0/" "$ZTGW_CONFIG"
cat >"$work/gateway/policy.toml" <<'EOF'
# The demo's policy: finance reaches the intranet and the database during office hours.
[resources.intranet]
hosts = ["10.20.0.10"]
ports = ["tcp/80"]
[resources.database]
hosts = ["10.20.1.5"]
ports = ["tcp/5432"]

[schedules.office]
timezone = "Africa/Casablanca"
days = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
hours = ["00:00-24:00"]   # a real policy says 08:30-16:30; the demo runs at any hour

# What a laptop must show: an updated, recognised system without hacking tools.
[posture.demo]
antivirus_required = false
antivirus_running = false
firewall_required = false
disk_encryption_required = false
screen_lock_required = false
open_wifi_forbidden = false

[roles.finance]
resources = ["intranet", "database"]
schedule = "office"
posture = "demo"
EOF
run ztgw policy check "$work/gateway/policy.toml"

step "The gateway starts in its namespace (control plane 192.0.2.1:8443, WireGuard :51820)"
RUST_LOG=warn ip netns exec "$gw" ztgw serve &
pids+=($!)
for _ in $(seq 100); do [[ -S $work/gateway/admin.sock ]] && break; sleep 0.1; done
[[ -S $work/gateway/admin.sock ]] || { echo "the gateway did not start" >&2; exit 1; }

# A laptop's view of itself for the posture collector (the demo's laptops share this
# machine, so each gets a root of its own).
make_root() {
    mkdir -p "$1/etc" "$1/var/lib/apt/periodic" "$1/var/lib/dpkg" "$1/usr/bin"
    cp /etc/os-release "$1/etc/os-release"
    touch "$1/var/lib/apt/periodic/update-success-stamp"
    printf 'Package: base-files\nStatus: install ok installed\nVersion: 12.4\n\n' >"$1/var/lib/dpkg/status"
}
make_root "$work/root-amina"
make_root "$work/root-karim"
printf '#!/bin/sh\n' >"$work/root-karim/usr/bin/nmap"; chmod 755 "$work/root-karim/usr/bin/nmap"

step "G1: the administration approves telework for Amina (e1029) and Karim (e2002), finance; the security unit invites them"
invite() {
    ztgw --operator security-unit invite --employee "$1" --role finance --approved-by "Head of Finance" \
        --reference DEC-2026-114 --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["invitation"])'
}
printf '$ ztgw invite --employee e1029 --role finance --approved-by "Head of Finance" --reference DEC-2026-114\n'
inv_amina=$(invite e1029)
inv_karim=$(invite e2002)
say "Amina's invitation (used once): $inv_amina"

step "G8: on each laptop, the agent makes the keys (they never leave it) and enrols"
on amina "$amina" ztgw-agent --state-dir "$work/amina" enroll "$inv_amina" --ownership administration
inns "$karim" ztgw-agent --state-dir "$work/karim" enroll "$inv_karim" --ownership administration >/dev/null
run ztgw device list

step "Each laptop has the standard WireGuard client (wireguard-go) with an empty interface"
export WG_I_PREFER_BUGGY_USERSPACE_TO_POLISHED_KMOD=1
ip netns exec "$amina" wireguard-go -f "${tag}wa" >/dev/null 2>&1 &
pids+=($!)
ip netns exec "$karim" wireguard-go -f "${tag}wk" >/dev/null 2>&1 &
pids+=($!)
for _ in $(seq 100); do [[ -S /var/run/wireguard/${tag}wa.sock && -S /var/run/wireguard/${tag}wk.sock ]] && break; sleep 0.1; done

step "G2/G6: Amina connects: certificate, schedule and posture are checked, then the tunnel is set up"
printf '[amina]$ ztgw-agent connect --wg-interface %s\n' "${tag}wa"
ip netns exec "$amina" ztgw-agent --state-dir "$work/amina" connect --wg-interface "${tag}wa" \
    --posture-root "$work/root-amina" >"$work/amina.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do grep -q Connected "$work/amina.log" 2>/dev/null && break; sleep 0.1; done
cat "$work/amina.log"

step "G4: what finance may reach works; the rest does not"
sleep 1
on amina "$amina" curl -s --max-time 5 http://10.20.0.10/
printf '[amina]$ (connect to the database, 10.20.1.5:5432) '; inns "$amina" netns-probe tcp 10.20.1.5:5432 && echo "reachable"
printf '[amina]$ (connect to ssh, 10.20.1.5:22) '; inns "$amina" netns-probe tcp 10.20.1.5:22 --timeout-ms 1500 2>/dev/null || echo "refused by the gateway (no rule for finance)"
run ztgw session list

step "G6/G7: Karim's laptop has a forbidden tool: he is refused, and told why and what to do"
printf '[karim]$ ztgw-agent connect --wg-interface %s\n' "${tag}wk"
inns "$karim" ztgw-agent --state-dir "$work/karim" connect --wg-interface "${tag}wk" \
    --posture-root "$work/root-karim" || true

step "G3/G13: Amina's laptop is reported lost; the security unit revokes it: the tunnel is cut at once"
run ztgw --operator security-unit device revoke "$(ztgw device list --json | python3 -c 'import json,sys; print([d["id"] for d in json.load(sys.stdin)["devices"] if d["employee"]=="e1029"][0])')" --reason lost --note "reported by phone at 09:12"
printf '[amina]$ curl http://10.20.0.10/ '; inns "$amina" curl -s --max-time 3 http://10.20.0.10/ || echo "-> no answer: the tunnel is gone"

step "G10: the auditor verifies the journal (hash chain, Merkle tree, signatures)"
run ztgw journal verify
run ztgw journal query --type 'session.*' --type 'admission.*'

step "G11: the hours report (connected time per employee and day, against the schedule)"
today=$(date -u +%F)
run ztgw report hours --from "$today" --to "$today"

step "Done: namespaces, processes and files are removed"

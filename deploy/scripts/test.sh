#!/usr/bin/env bash
# Runs ztgw's whole test suite on a fresh machine: installs what the tests need, checks
# formatting and lints, builds the binaries the end-to-end tests run, and runs every test.
# This is README's test command; .ci/run calls exactly this.
set -euo pipefail
cd "$(dirname "$0")/../.."

need_packages=()
command -v wireguard-go >/dev/null 2>&1 || need_packages+=(wireguard-go)
command -v wg >/dev/null 2>&1 || need_packages+=(wireguard-tools)
command -v ip >/dev/null 2>&1 || need_packages+=(iproute2)
command -v ping >/dev/null 2>&1 || need_packages+=(iputils-ping)
command -v curl >/dev/null 2>&1 || need_packages+=(curl)
command -v systemd-analyze >/dev/null 2>&1 || need_packages+=(systemd)
# The package upgrade test installs the gateway package (it depends on adduser) on an
# overlay of this system.
command -v adduser >/dev/null 2>&1 || need_packages+=(adduser)
# The Windows agent: cross-linked with MinGW-w64, run under Wine (tests/windows_agent.rs).
command -v x86_64-w64-mingw32-gcc >/dev/null 2>&1 || need_packages+=(gcc-mingw-w64-x86-64)
[[ -x /usr/lib/wine/wine64 ]] || command -v wine64 >/dev/null 2>&1 || need_packages+=(wine64)
command -v makensis >/dev/null 2>&1 || need_packages+=(nsis)
# The macOS agent is type-checked with clang (ring's C for Apple targets).
command -v clang >/dev/null 2>&1 || need_packages+=(clang)
# A real OpenLDAP for the directory tests (tests/directory.rs).
command -v slapd >/dev/null 2>&1 || [[ -x /usr/sbin/slapd ]] || need_packages+=(slapd)
command -v ldapmodify >/dev/null 2>&1 || need_packages+=(ldap-utils)
# A real Active Directory (Samba) for the directory tests (tests/directory_ad.rs): the DC,
# and the schema files `samba-tool domain provision` reads.
[[ -x /usr/sbin/samba ]] || need_packages+=(samba-ad-dc)
[[ -d /usr/share/samba/setup/ad-schema ]] || need_packages+=(samba-ad-provision)
# A real resolver for the internal-names test (tests/dns.rs).
command -v dnsmasq >/dev/null 2>&1 || [[ -x /usr/sbin/dnsmasq ]] || need_packages+=(dnsmasq-base)
# The security operations centre's collector for the journal export test
# (tests/siem_export.rs): rsyslog receiving over TLS.
command -v rsyslogd >/dev/null 2>&1 || [[ -x /usr/sbin/rsyslogd ]] || need_packages+=(rsyslog)
[[ -e /usr/lib/x86_64-linux-gnu/rsyslog/lmnsd_gtls.so ]] || need_packages+=(rsyslog-gnutls)
# The registry on PostgreSQL (tests/registry_postgres.rs): the tests start their own
# server in a temporary directory; the package's own cluster is never started.
compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null || need_packages+=(postgresql)
# Printed reports are rendered by poppler (tests/reports.rs).
command -v pdftoppm >/dev/null 2>&1 || need_packages+=(poppler-utils)
# The laptop's own systemd-resolved for the split-DNS test runs on a private system bus.
command -v dbus-daemon >/dev/null 2>&1 || need_packages+=(dbus-daemon)
# The independent journal verifier (audit/verify-journal.py) runs on Debian's python3
# with cryptography (tests/journal_tamper.rs).
/usr/bin/python3 -c 'import cryptography' >/dev/null 2>&1 || need_packages+=(python3-cryptography)
# The web console's tests drive a real browser (tests/console.rs): Debian's chromium and
# its WebDriver, NSS's tools to import the operator's PKCS#12 file, and npm for axe-core.
command -v chromium >/dev/null 2>&1 || need_packages+=(chromium)
command -v chromedriver >/dev/null 2>&1 || need_packages+=(chromium-driver)
command -v pk12util >/dev/null 2>&1 || need_packages+=(libnss3-tools)
command -v npm >/dev/null 2>&1 || need_packages+=(npm)
# Schedules use the system's time-zone database (see docs/policy.md).
[[ -e /usr/share/zoneinfo/Africa/Casablanca ]] || need_packages+=(tzdata)
if ((${#need_packages[@]})); then
    if [[ $(id -u) -ne 0 ]]; then
        echo "test.sh: missing ${need_packages[*]}; install them with: sudo apt-get install -y ${need_packages[*]}" >&2
        exit 1
    fi
    echo "test.sh: installing ${need_packages[*]}"
    # slapd is only run by the tests, with a configuration of their own.
    echo "slapd slapd/no_configuration boolean true" | debconf-set-selections
    apt-get update -qq
    # Services installed for the tests (rsyslog, PostgreSQL) are run by the tests only: none is
    # started on this machine by its package.
    policy_rc_d=/usr/sbin/policy-rc.d
    own_policy=false
    if [[ ! -e $policy_rc_d ]]; then
        printf '#!/bin/sh\nexit 101\n' >"$policy_rc_d"
        chmod 0755 "$policy_rc_d"
        own_policy=true
        # Ours is removed however the install ends: services are the machine's business.
        trap 'rm -f "$policy_rc_d"' EXIT
    fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_packages[@]}" >/dev/null
    if $own_policy; then
        rm -f "$policy_rc_d"
        trap - EXIT
    fi
fi

# systemd-resolved for that test (tests/src/resolved.rs), unpacked rather than installed:
# installing it would take over this machine's /etc/resolv.conf.
systemd_version=$(dpkg-query -W -f='${Version}' systemd)
resolved_root=/var/cache/ztgw-tests/systemd-resolved-$systemd_version
if [[ ! -x $resolved_root/lib/systemd/systemd-resolved ]]; then
    if [[ $(id -u) -ne 0 ]]; then
        echo "test.sh: systemd-resolved is not unpacked in $resolved_root; run this script as root once" >&2
        exit 1
    fi
    echo "test.sh: unpacking systemd-resolved $systemd_version into $resolved_root"
    download=$(mktemp -d)
    chmod 0755 "$download"
    (cd "$download" && apt-get download -qq "systemd-resolved=$systemd_version" 2>/dev/null \
        || { apt-get update -qq && apt-get download -qq "systemd-resolved=$systemd_version"; })
    mkdir -p "$resolved_root.partial"
    dpkg-deb -x "$download"/systemd-resolved_*.deb "$resolved_root.partial"
    mv "$resolved_root.partial" "$resolved_root"
    rm -rf "$download"
fi

if ! command -v cargo >/dev/null 2>&1; then
    echo "test.sh: cargo is missing; install Rust from your distribution or with rustup" >&2
    exit 1
fi
rustup component list --installed 2>/dev/null | grep -q '^rustfmt' || rustup component add rustfmt clippy
for target in x86_64-pc-windows-gnu aarch64-apple-darwin x86_64-apple-darwin; do
    rustup target list --installed 2>/dev/null | grep -qx "$target" || rustup target add "$target"
done

# axe-core, which the console's tests run on every page (the version tests/src/browser.rs
# names), from the npm registry into target/axe.
axe_version=$(sed -n 's/^pub const AXE_VERSION: &str = "\(.*\)";$/\1/p' tests/src/browser.rs)
if ! grep -qs "\"version\": \"$axe_version\"" target/axe/node_modules/axe-core/package.json; then
    echo "test.sh: installing axe-core $axe_version"
    npm install --prefix target/axe --no-audit --no-fund --no-save "axe-core@$axe_version" >/dev/null
fi

cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
# The end-to-end tests run the real `ztgw` and `ztgw-agent` binaries, and check the
# packages built here. The binaries and the tests are built together so that they share
# one feature resolution (the one with dev-dependencies): `cargo test` below then
# rebuilds nothing.
cargo build --workspace --bins --tests --locked
# The agent for Windows 10/11: its lints for that target. package.sh builds the release
# binary that the installer ships and the Wine test runs.
cargo clippy -p ztgw-agent -p ztgw-posture --target x86_64-pc-windows-gnu --locked -- -D warnings
# The macOS agent type-checks (and lints) for both Apple architectures. Without Xcode's
# SDK, ring's C is compiled freestanding with a stand-in for Apple's
# TargetConditionals.h (deploy/macos/check-include); nothing is linked.
for target in aarch64-apple-darwin x86_64-apple-darwin; do
    var=${target//-/_}
    env "CC_$var=clang" \
        "CFLAGS_$var=-ffreestanding -nostdlibinc -DRING_CORE_NOSTDLIBINC -I$PWD/deploy/macos/check-include" \
        cargo clippy -p ztgw-agent -p ztgw-posture --target "$target" --locked -- -D warnings
done
bash deploy/scripts/package.sh
cargo test --workspace --locked
# The same end-to-end suite with every gateway's registry in PostgreSQL (a server each
# test starts for itself): the registry switch (ZTGW_TEST_REGISTRY=postgres). The backup
# test keeps SQLite (a PostgreSQL registry is backed up with pg_dump). Every integration
# test of the workspace, not `-p ztgw-tests`: selecting one package resolves features
# without the others' dev-dependencies and would rebuild our crates (2-3 minutes); the
# other crates' integration tests take about a second and ignore the switch.
ZTGW_TEST_REGISTRY=postgres cargo test --workspace --locked --test '*'

#!/usr/bin/env bash
# Release against debug builds of the tray app and its packages (scripts/bench/release.py),
# in a throwaway desktop with a tray host. Builds both: the release one as shipped (no demo),
# which takes many minutes on two cores, so this is a benchmark, not part of CI.
#
#   bash scripts/bench/release.sh [--trials 5] [--idle-seconds 20]
set -euo pipefail
cd "$(dirname "$0")/../.."
export PATH="$HOME/.cargo/bin:$PATH"
cargo build -q --locked -p jumpgate-sim -p jumpgate-cli -p jumpgate-tray
bash scripts/package.sh --bundles deb >/dev/null
bash scripts/package.sh --release --no-demo --bundles deb >/dev/null
TRAY_HOST=1 bash scripts/desktop-session.sh python3 scripts/bench/release.py "$@" \
  2> >(grep -v -e 'Failed to set fd limit' -e 'dbus-daemon' -e 'SpiRegistry' -e 'X connection' >&2)

#!/usr/bin/env bash
# The tray app's benchmarks (scripts/bench/tray.py), in a throwaway desktop with a tray host.
#
#   bash scripts/bench/tray.sh [--trials 11] [--idle-seconds 60] [--only launch|memory|popover|cpu]
set -euo pipefail
cd "$(dirname "$0")/../.."
export PATH="$HOME/.cargo/bin:$PATH"
cargo build -q --locked -p jumpgate-tray -p jumpgate-sim -p jumpgate-cli
dbus-run-session -- env TRAY_HOST=1 bash scripts/desktop-session.sh python3 scripts/bench/tray.py "$@" \
  2> >(grep -v -e 'Failed to set fd limit' -e 'dbus-daemon' -e 'SpiRegistry' -e 'X connection' >&2)

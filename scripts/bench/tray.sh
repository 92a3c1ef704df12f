#!/usr/bin/env bash
# The tray app's benchmarks (scripts/bench/tray.py), in a throwaway desktop with a tray host.
#
#   bash scripts/bench/tray.sh [--trials 11] [--idle-seconds 60] [--only launch|memory|popover|cpu]
#                              [--profile debug|release]
#
# `--profile release` measures a release build with the demo compiled in (several minutes to
# build on two cores the first time).
set -euo pipefail
cd "$(dirname "$0")/../.."
export PATH="$HOME/.cargo/bin:$PATH"
profile=debug
previous=
for arg in "$@"; do
  if [ "$previous" = --profile ]; then profile=$arg; fi
  previous=$arg
done
case "$profile" in
  debug) cargo build -q --locked -p jumpgate-tray -p jumpgate-sim -p jumpgate-cli ;;
  release) cargo build -q --locked --release -p jumpgate-tray -p jumpgate-sim -p jumpgate-cli ;;
  *) echo "--profile is debug or release, not '$profile'" >&2; exit 2 ;;
esac
TRAY_HOST=1 bash scripts/desktop-session.sh python3 scripts/bench/tray.py "$@" \
  2> >(grep -v -e 'Failed to set fd limit' -e 'dbus-daemon' -e 'SpiRegistry' -e 'X connection' >&2)

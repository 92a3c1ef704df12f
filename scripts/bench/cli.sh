#!/usr/bin/env bash
# Runs scripts/bench/cli.py inside a private D-Bus session with an unlocked gnome-keyring
# (jumpgate keeps tokens in the OS keychain), against debug builds of jumpgate and the simulator.
#
#   bash scripts/bench/cli.sh [--trials 21]
set -euo pipefail
cd "$(dirname "$0")/../.."
export PATH="$HOME/.cargo/bin:$PATH"
cargo build -q --locked -p jumpgate-cli -p jumpgate-sim
if [ "${1:-}" = "--inside-session" ]; then
  shift
  export XDG_DATA_HOME
  XDG_DATA_HOME=$(mktemp -d)
  eval "$(printf 'bench' | gnome-keyring-daemon --unlock --components=secrets)"
  python3 scripts/bench/cli.py "$@"
  status=$?
  rm -rf "$XDG_DATA_HOME"
  exit $status
fi
dbus-run-session -- bash "$0" --inside-session "$@" 2> >(grep -v 'Failed to set fd limit' >&2)

#!/usr/bin/env bash
# Runs a benchmark script inside a private D-Bus session with an unlocked gnome-keyring
# (jumpgate keeps tokens in the OS keychain), against debug builds of jumpgate and the simulator.
#
#   bash scripts/bench/in-keychain.sh scripts/bench/SCRIPT.py [ARGS...]
set -euo pipefail
cd "$(dirname "$0")/../.."
export PATH="$HOME/.cargo/bin:$PATH"
if [ "${1:-}" = "--inside-session" ]; then
  shift
  export XDG_DATA_HOME
  XDG_DATA_HOME=$(mktemp -d)
  eval "$(printf 'bench' | gnome-keyring-daemon --unlock --components=secrets)"
  status=0
  python3 "$@" || status=$?
  rm -rf "$XDG_DATA_HOME"
  exit $status
fi
cargo build -q --locked -p jumpgate-cli -p jumpgate-sim
dbus-run-session -- bash "$0" --inside-session "$@" 2> >(grep -v 'Failed to set fd limit' >&2)

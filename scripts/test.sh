#!/usr/bin/env bash
# Runs every Jumpgate test. On a fresh Debian 12 machine it first installs what is missing
# (it needs root, or sudo, for the system packages; Rust itself must already be installed).
#
#   bash scripts/test.sh            install what is missing, then run every test
#   bash scripts/test.sh --install  only install what is missing
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"

# System packages the build and the tests use.
# gnome-keyring, dbus and libsecret-tools: tokens go to a real Secret Service keychain in the
# tests, and secret-tool inspects it.
APT_PACKAGES=(build-essential pkg-config ca-certificates dbus dbus-daemon gnome-keyring libsecret-tools)

say() { printf '==> %s\n' "$*"; }

install_missing() {
  local missing=()
  for pkg in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    local sudo=""
    if [ "$(id -u)" -ne 0 ]; then
      if command -v sudo >/dev/null; then sudo="sudo"; else
        echo "Missing system packages: ${missing[*]}. Run as root: apt-get install -y ${missing[*]}" >&2
        exit 1
      fi
    fi
    say "installing ${missing[*]}"
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
  if ! command -v cargo >/dev/null; then
    echo "Rust is not installed. Install it with rustup (https://rustup.rs), then run this again." >&2
    exit 1
  fi
}

install_missing
[ "${1:-}" = "--install" ] && exit 0

if [ "${1:-}" = "--inside-session" ]; then
  # Inside a private D-Bus session: start an unlocked gnome-keyring whose files live in a
  # throwaway folder, so no real keyring is read or changed.
  export XDG_DATA_HOME
  XDG_DATA_HOME=$(mktemp -d)
  eval "$(printf 'jumpgate-test' | gnome-keyring-daemon --unlock --components=secrets)"
  export GNOME_KEYRING_CONTROL
  cargo test --workspace --locked --no-fail-fast
  status=$?
  rm -rf "$XDG_DATA_HOME"
  exit $status
fi

say "cargo test --workspace (inside dbus-run-session, with gnome-keyring)"
cargo build --workspace --locked --bins
log=$(mktemp)
trap 'rm -f "$log"' EXIT
set +e
dbus-run-session -- bash "$0" --inside-session 2>&1 | grep -v 'Failed to set fd limit' | tee "$log"
status=${PIPESTATUS[0]}
set -e
# One closing line for the whole run, summed over every test binary.
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i } }
     END { printf "%d passed, %d failed\n", p, f }' "$log"
exit "$status"

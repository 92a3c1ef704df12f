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
# tests, and secret-tool inspects it. WebKitGTK and the others: the tray app (Tauri 2).
# Xvfb, dunst, x11-utils, fonts: the app's tests run it in a throwaway desktop
# (scripts/desktop-session.sh). webkit2gtk-driver (WebKitWebDriver), trayer and xdotool:
# the end-to-end tests drive the app's webview and its tray icon. freerdp2-x11 and
# openssh-client: the real clients the app launches. faketime: the fault matrix runs the CLI
# with the laptop's clock skewed. xdg-utils and desktop-file-utils: the desktop registers
# jumpgate:// links (xdg-mime, update-desktop-database), for the app and for the installed
# package. openssh-server, xrdp and openssl: tests/cli/servers.rs puts a real sshd and a real
# xrdp behind the simulator's JIT gate, each started by the test from a throwaway folder on a
# port of its own (never as a system service), with a throwaway key and certificate.
# iproute2 (ss): the smoke test counts the app's connections to the X server.
APT_PACKAGES=(build-essential pkg-config ca-certificates dbus dbus-daemon dbus-x11 gnome-keyring libsecret-tools
  libwebkit2gtk-4.1-dev libayatana-appindicator3-dev librsvg2-dev libxdo-dev libssl-dev file libdbus-1-dev
  xvfb x11-utils xauth fonts-dejavu-core dunst
  webkit2gtk-driver trayer xdotool freerdp2-x11 openssh-client faketime xdg-utils desktop-file-utils
  openssh-server xrdp openssl iproute2)

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
    # The postinst scripts of openssh-server and xrdp start their daemons (sshd on port 22,
    # xrdp on 3389) through invoke-rc.d, which a policy-rc.d answering 101 ("action forbidden")
    # stops. One is put in place for this install only; one already there (as in containers)
    # is left alone.
    local policy=""
    if [ ! -e /usr/sbin/policy-rc.d ]; then
      policy=/usr/sbin/policy-rc.d
      printf '#!/bin/sh\n# Put here by jumpgate scripts/test.sh for one apt-get install.\nexit 101\n' |
        $sudo tee "$policy" >/dev/null
      $sudo chmod 755 "$policy"
      trap "$sudo rm -f /usr/sbin/policy-rc.d" EXIT
    fi
    local installed=0
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq &&
      $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null ||
      installed=$?
    if [ -n "$policy" ]; then
      $sudo rm -f "$policy"
      trap - EXIT
    fi
    [ "$installed" -eq 0 ] || exit "$installed"
    # Nor should they start at the next boot: the services this install enabled are disabled
    # again (systemctl only edits links here, so it works without a running systemd).
    local pkg services
    for pkg in "${missing[@]}"; do
      case "$pkg" in
        openssh-server) services="ssh.service" ;;
        xrdp) services="xrdp.service xrdp-sesman.service" ;;
        *) continue ;;
      esac
      if command -v systemctl >/dev/null; then
        # shellcheck disable=SC2086 # one word per service
        $sudo systemctl disable --quiet $services 2>/dev/null || true
      fi
    done
  fi
  if ! command -v cargo >/dev/null; then
    echo "Rust is not installed. Install it with rustup (https://rustup.rs), then run this again." >&2
    exit 1
  fi
  if ! command -v npm >/dev/null; then
    echo "Node.js and npm are not installed: the popover's UI is built with them. Install Node.js 20 or later, then run this again." >&2
    exit 1
  fi
  # The end-to-end tests reach the app's webview through tauri-driver (27 s to build).
  if ! command -v tauri-driver >/dev/null && [ ! -x "$HOME/.cargo/bin/tauri-driver" ]; then
    say "cargo install tauri-driver"
    cargo install tauri-driver --version '^2' --locked --quiet
  fi
  # The app embeds the built UI at compile time, so it is built before any cargo command.
  if [ ! -d ui/node_modules ] || [ ui/package-lock.json -nt ui/node_modules ]; then
    say "npm ci (ui/)"
    (cd ui && npm ci --no-audit --no-fund --loglevel=error)
  fi
  say "building the UI (ui/dist)"
  (cd ui && npm run --silent build -- --logLevel=warn)
}

if [ "${1:-}" = "--inside-session" ]; then
  # scripts/desktop-session.sh: a private D-Bus session with an unlocked gnome-keyring whose
  # files live in a throwaway folder, so no real keyring is read or changed, Xvfb and dunst.
  # TRAY_HOST=1: a tray host (trayer) holds the app's icon for the end-to-end tests.
  # One test at a time: the end-to-end tests share one gnome-keyring, whose daemon aborts when
  # a client is killed while it opens a Secret Service session, as the tests' kills sometimes
  # are (the session's bus starts it again, but a call in flight then fails).
  # First jumpgate-core on its own, built as packages build it: without test hooks.
  TRAY_HOST=1 RUST_TEST_THREADS=1 exec bash scripts/desktop-session.sh sh -c \
    'cargo test -p jumpgate-core --locked --lib test_hooks; a=$?; cargo test --workspace --locked --no-fail-fast; b=$?; [ "$a" -eq 0 ] && [ "$b" -eq 0 ]'
fi

install_missing
[ "${1:-}" = "--install" ] && exit 0


say "cargo test --workspace (in a private D-Bus session, with gnome-keyring, Xvfb and dunst)"
cargo build --workspace --locked --bins
# The .deb that tests/tray/package.rs installs: a debug build with the demo, as CI packages.
say "packaging the app (scripts/package.sh --bundles deb)"
bash scripts/package.sh --bundles deb
log=$(mktemp)
trap 'rm -f "$log"' EXIT
set +e
bash "$0" --inside-session 2>&1 | grep -v 'Failed to set fd limit' | tee "$log"
status=${PIPESTATUS[0]}
set -e
say "vitest (ui/)"
report=$(mktemp)
trap 'rm -f "$log" "$report"' EXIT
set +e
(cd ui && npx vitest run --reporter=default --reporter=json --outputFile="$report")
ui_status=$?
set -e
ui_counts=$(node -e 'const r = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8")); console.log(r.numPassedTests, r.numFailedTests)' "$report" 2>/dev/null || echo "0 1")
# One closing line for the whole run, summed over every test binary and the UI's tests.
awk -v ui="$ui_counts" '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i } }
     END { split(ui, u, " "); printf "%d passed, %d failed\n", p + u[1], f + u[2] }' "$log"
[ "$status" -ne 0 ] && exit "$status"
exit "$ui_status"

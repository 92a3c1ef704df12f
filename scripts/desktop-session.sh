#!/usr/bin/env bash
# Runs a command in a throwaway desktop: Xvfb, a notification daemon (dunst), an unlocked
# gnome-keyring whose files live in a throwaway folder (no real keyring is read or changed)
# and, with TRAY_HOST=1, a tray host (trayer). Run it inside dbus-run-session:
#
#   dbus-run-session -- bash scripts/desktop-session.sh COMMAND...
set -u
# A display number of its own, so that sessions running side by side do not meet.
DISPLAY_NUMBER=${DISPLAY_NUMBER:-$((100 + $$ % 800))}
Xvfb ":$DISPLAY_NUMBER" -screen 0 1280x800x24 -nolisten tcp >/dev/null 2>&1 &
XVFB=$!
export DISPLAY=":$DISPLAY_NUMBER"
for _ in $(seq 100); do xdpyinfo >/dev/null 2>&1 && break; sleep 0.1; done
# Else D-Bus starts dunst with no display.
dbus-update-activation-environment DISPLAY >/dev/null 2>&1
dunst >/dev/null 2>&1 &
DUNST=$!
for _ in $(seq 100); do
  dbus-send --session --print-reply --dest=org.freedesktop.DBus / \
    org.freedesktop.DBus.NameHasOwner string:org.freedesktop.Notifications 2>/dev/null | grep -q true && break
  sleep 0.1
done
# Private runtime and data folders: the keyring's control socket and files, and dunst's, are
# this session's own, so sessions running side by side never meet.
export XDG_RUNTIME_DIR XDG_DATA_HOME XDG_CONFIG_HOME
XDG_RUNTIME_DIR=$(mktemp -d)
chmod 700 "$XDG_RUNTIME_DIR"
XDG_DATA_HOME=$(mktemp -d)
# Autostart entries and link handlers the app registers land here, not in the real profile.
XDG_CONFIG_HOME=$(mktemp -d)
keyring_up() { printf 'jumpgate-test' | gnome-keyring-daemon --unlock --replace --components=secrets; }
eval "$(keyring_up)"
export GNOME_KEYRING_CONTROL
# gnome-keyring-daemon aborts on a GLib assertion when a client disappears in the middle of
# opening a Secret Service session, and the tests kill clients at random moments on purpose.
# This watch restarts it, unlocked, on the same files within a fraction of a second, so a
# crash costs at most the call that was in flight. It looks for this session's own daemon
# through its environment. A daemon D-Bus started meanwhile (a client asked while ours was
# down) holds the Secret Service name, with no unlocked collection, and `--replace` cannot
# always find it to take over: whoever owns the name on this bus is ended first.
ours_alive() {
  local pid
  for pid in $(pgrep -f 'gnome-keyring-daemon --unlock'); do
    grep -qz "^XDG_RUNTIME_DIR=$XDG_RUNTIME_DIR\$" "/proc/$pid/environ" 2>/dev/null && return 0
  done
  return 1
}
restart_keyring() {
  local owner
  owner=$(dbus-send --session --print-reply --dest=org.freedesktop.DBus / \
    org.freedesktop.DBus.GetConnectionUnixProcessID string:org.freedesktop.secrets 2>/dev/null |
    awk '/uint32/ { print $2 }')
  [ -n "$owner" ] && kill "$owner" 2>/dev/null
  keyring_up >/dev/null 2>&1
}
( while sleep 0.2; do ours_alive || restart_keyring; done ) &
KEYRING_WATCH=$!
TRAYER=""
if [ "${TRAY_HOST:-0}" = 1 ]; then
  trayer --edge top --align right --widthtype request --height 32 --SetDockType true \
    --transparent false --tint 0x404040 >/dev/null 2>&1 &
  TRAYER=$!
  sleep 1
fi
"$@"
RC=$?
kill $KEYRING_WATCH $DUNST $XVFB $TRAYER 2>/dev/null
rm -rf "$XDG_DATA_HOME" "$XDG_RUNTIME_DIR" "$XDG_CONFIG_HOME"
exit $RC

#!/usr/bin/env bash
# Runs a command in a throwaway desktop: a private D-Bus session, Xvfb, a notification daemon
# (dunst), an unlocked gnome-keyring whose files live in a throwaway folder (no real keyring is
# read or changed) and, with TRAY_HOST=1, a tray host (trayer):
#
#   bash scripts/desktop-session.sh COMMAND...
set -u
if [ -z "${JUMPGATE_DESKTOP_SESSION:-}" ]; then
  # Private runtime, data and configuration folders, made before the bus starts: the session
  # bus reads its service files from XDG_DATA_HOME when it starts. The keyring's control socket
  # and files, and dunst's, are this session's own, so sessions running side by side never meet.
  # Autostart entries and link handlers the app registers land here, not in the real profile.
  export XDG_RUNTIME_DIR XDG_DATA_HOME XDG_CONFIG_HOME JUMPGATE_DESKTOP_SESSION=1
  XDG_RUNTIME_DIR=$(mktemp -d)
  chmod 700 "$XDG_RUNTIME_DIR"
  XDG_DATA_HOME=$(mktemp -d)
  XDG_CONFIG_HOME=$(mktemp -d)
  # gnome-keyring-daemon aborts on a GLib assertion when a client disappears in the middle of
  # opening a Secret Service session, and the tests kill clients at random moments on purpose.
  # The bus itself starts the daemon again, unlocked on the same files, when the next client
  # asks: this service file comes before the system's, which would start one with no unlocked
  # collection. A crash costs at most the calls that were in flight.
  mkdir -p "$XDG_DATA_HOME/dbus-1/services"
  cat >"$XDG_DATA_HOME/keyring-up" <<'UP'
#!/bin/sh
printf 'jumpgate-test' | exec gnome-keyring-daemon --unlock --foreground --components=secrets
UP
  chmod 700 "$XDG_DATA_HOME/keyring-up"
  printf '[D-BUS Service]\nName=org.freedesktop.secrets\nExec=%s\n' "$XDG_DATA_HOME/keyring-up" \
    >"$XDG_DATA_HOME/dbus-1/services/org.freedesktop.secrets.service"
  dbus-run-session -- bash "$0" "$@" 2> >(grep -v 'Failed to set fd limit' >&2)
  RC=$?
  rm -rf "$XDG_DATA_HOME" "$XDG_RUNTIME_DIR" "$XDG_CONFIG_HOME"
  exit $RC
fi
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
# Started now, so the first test does not wait for it.
dbus-send --session --print-reply --dest=org.freedesktop.DBus / \
  org.freedesktop.DBus.StartServiceByName string:org.freedesktop.secrets uint32:0 >/dev/null
TRAYER=""
if [ "${TRAY_HOST:-0}" = 1 ]; then
  trayer --edge top --align right --widthtype request --height 32 --SetDockType true \
    --transparent false --tint 0x404040 >/dev/null 2>&1 &
  TRAYER=$!
  sleep 1
fi
"$@"
RC=$?
kill $DUNST $XVFB $TRAYER 2>/dev/null
exit $RC

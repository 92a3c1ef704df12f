#!/usr/bin/env bash
# Windows and macOS, checked from this Linux machine on every commit (.ci/run runs it after
# the README's test command):
#
#   - clippy, with warnings as errors, for every crate and test target of the workspace, for
#     x86_64-pc-windows-gnu;
#   - clippy for aarch64-apple-darwin and x86_64-apple-darwin: every crate but the tray app,
#     whose notification library needs Apple's SDK (below);
#   - the Windows builds of jumpgate-core's and jumpgate-azure's unit tests and of the CLI's
#     stories, run under Wine, tokens in Wine's Credential Manager.
#
# rustup cannot download the standard library for those targets on this network. Debian's
# Rust (rustc-web, cargo-web, rust-web-src and rust-web-clippy: Rust 1.96 with the standard
# library's source) builds it from source instead (-Zbuild-std). rustup's stable stays the
# toolchain of everything else; this script uses Debian's through its own environment and
# its own target folder.
#
#   bash scripts/cross.sh            install what is missing (once), then check and test
#   bash scripts/cross.sh --check    clippy only
set -euo pipefail
cd "$(dirname "$0")/.."

# gcc-mingw-w64-x86-64: the C compiler and linker for Windows (ring's C code, the final link,
# and the stand-in DLL below). wine64: runs the Windows test binaries.
# clang: the C compiler for the macOS check builds.
APT_PACKAGES=(rustc-web cargo-web rust-web-src rust-web-clippy gcc-mingw-w64-x86-64 wine64 wine clang)

say() { printf '==> %s\n' "$*"; }

missing=()
for pkg in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  sudo=""
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  say "installing ${missing[*]}"
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# The tray app embeds the popover's built UI at compile time.
if [ ! -f ui/dist/index.html ]; then
  bash scripts/test.sh --install
fi

# Debian's toolchain, for this script only.
export PATH="/usr/bin:/bin:$PATH"
export RUSTC=/usr/bin/rustc RUSTDOC=/usr/bin/rustdoc RUSTC_BOOTSTRAP=1 CARGO_TERM_COLOR=never
unset RUSTUP_TOOLCHAIN RUSTC_WRAPPER
# A target folder of its own beside the main one (kept between runs, as .ci/run keeps that).
export CARGO_TARGET_DIR="${CROSS_TARGET_DIR:-${CARGO_TARGET_DIR:-$PWD/target}-cross}"
export CARGO_TARGET_X86_64_PC_WINDOWS_GNU_LINKER=x86_64-w64-mingw32-gcc
export CARGO_TARGET_X86_64_PC_WINDOWS_GNU_RUNNER="$PWD/scripts/cross/wine-run"
export WINEPREFIX="${WINEPREFIX:-${XDG_CACHE_HOME:-$HOME/.cache}/jumpgate-wine}"
mkdir -p "$CARGO_TARGET_DIR"
WINDOWS=(--target x86_64-pc-windows-gnu -Zbuild-std=std,panic_unwind --locked)

say "clippy for Windows (x86_64-pc-windows-gnu), every crate and test target"
cargo clippy "${WINDOWS[@]}" --workspace --all-targets -- -D warnings

# macOS: ring's C code wants one header of Apple's SDK (TargetConditionals.h) and a C library;
# clang, freestanding, with a one-file stand-in for that header, compiles it for a check build
# (nothing is linked). The tray cannot be checked here: mac-notification-sys, which it and
# notify-rust use for the notification centre, compiles Objective-C that imports
# <Cocoa/Cocoa.h>, a framework of Apple's SDK that no Debian package ships.
MACOS_SHIM="-ffreestanding -nostdlibinc -DRING_CORE_NOSTDLIBINC=1 -I$PWD/scripts/cross/macos"
for target in aarch64-apple-darwin x86_64-apple-darwin; do
  say "clippy for macOS ($target): the libraries, the CLI, the simulator and the CLI's tests"
  env "CC_${target//-/_}=clang" "CFLAGS_${target//-/_}=$MACOS_SHIM" \
    cargo clippy --target "$target" -Zbuild-std=std,panic_unwind --locked \
    -p jumpgate-core -p jumpgate-azure -p jumpgate-cli -p jumpgate-sim -p jumpgate-tests \
    --all-targets -- -D warnings
done

[ "${1:-}" = "--check" ] && exit 0

# Wine 8 lacks bcryptprimitives.dll, whose ProcessPrng the standard library calls at start-up:
# a stand-in built here forwards it to RtlGenRandom. The prefix is the tests' own.
mkdir -p "$(dirname "$WINEPREFIX")"
if [ ! -f "$WINEPREFIX/drive_c/windows/system32/bcryptprimitives.dll" ]; then
  say "preparing the Wine prefix $WINEPREFIX"
  WINEDEBUG=-all WINEDLLOVERRIDES="mscoree,mshtml=" wineboot -i >/dev/null 2>&1 || true
  wineserver -w
  x86_64-w64-mingw32-gcc -shared -O2 -o "$WINEPREFIX/drive_c/windows/system32/bcryptprimitives.dll" \
    scripts/cross/bcryptprimitives.c -ladvapi32
fi

status=0
say "jumpgate-core and jumpgate-azure unit tests, for Windows, under Wine"
cargo test "${WINDOWS[@]}" --no-fail-fast -p jumpgate-core -p jumpgate-azure --lib || status=1

# The test binary finds jumpgate.exe and jumpgate-sim.exe beside it, as on Linux. One test at
# a time, as on Linux: each starts its own simulator and watchers.
say "the CLI's stories (tests/cli), for Windows, under Wine: jumpgate.exe against jumpgate-sim.exe"
cargo build "${WINDOWS[@]}" -p jumpgate-cli -p jumpgate-sim --bins
cargo test "${WINDOWS[@]}" -p jumpgate-tests --test cli -- --test-threads=1 || status=1
# Nothing started under Wine outlives the run.
wineserver -k 2>/dev/null || true
exit $status

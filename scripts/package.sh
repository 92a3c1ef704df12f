#!/usr/bin/env bash
# Builds Jumpgate's installable packages with the Tauri CLI from npm (ui/node_modules): the
# tray app, with the `jumpgate` CLI beside it (on the PATH in the Linux packages).
#
#   bash scripts/package.sh [--release] [--no-demo | --demo] [--bundles deb,rpm]
#
# Debug builds by default, as CI makes them; --release for what is shipped. --no-demo leaves
# the demo (and its simulator, and every test hook) out of the app, as packages for people are
# built; --release implies it, unless --demo asks for a release build with the demo in it. On Linux the
# default bundles are .deb and .rpm; on Windows and macOS, the platform's own (NSIS and MSI,
# .app and .dmg). The packages land in $CARGO_TARGET_DIR/{debug,release}/bundle/.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"

profile=debug
demo=""
bundles=""
while [ $# -gt 0 ]; do
  case "$1" in
    --release) profile=release ;;
    --no-demo) demo=no ;;
    --demo) demo=yes ;;
    --bundles) bundles="$2"; shift ;;
    *) echo "unknown option $1: use --release, --no-demo, --demo or --bundles LIST" >&2; exit 2 ;;
  esac
  shift
done
# What is shipped is built without the demo unless asked for.
[ -z "$demo" ] && { [ "$profile" = release ] && demo=no || demo=yes; }
features=()
[ "$demo" = no ] && features=(--no-default-features)
if [ -z "$bundles" ]; then
  case "$(uname -s)" in
    Linux) bundles=deb,rpm ;;
  esac
fi
tauri=ui/node_modules/.bin/tauri
if [ ! -x "$tauri" ]; then
  echo "The Tauri CLI is missing: run 'npm ci' in ui/ (bash scripts/test.sh --install does)." >&2
  exit 1
fi
[ -d ui/dist ] || (cd ui && npm run --silent build -- --logLevel=warn)

# The CLI goes into the bundle as an external binary, named for the target as Tauri expects.
triple=$(rustc -vV | sed -n 's/^host: //p')
cargo_profile=()
[ "$profile" = release ] && cargo_profile=(--release)
echo "==> cargo build -p jumpgate-cli ($profile)"
cargo build -q --locked -p jumpgate-cli "${cargo_profile[@]}"
target_dir=${CARGO_TARGET_DIR:-target}
mkdir -p src-tauri/binaries
exe=""
[ -f "$target_dir/$profile/jumpgate.exe" ] && exe=.exe
cp "$target_dir/$profile/jumpgate$exe" "src-tauri/binaries/jumpgate-$triple$exe"

args=(build --config tauri.bundle.json --ci)
[ "$profile" = debug ] && args+=(--debug)
[ -n "$bundles" ] && args+=(--bundles "$bundles")
echo "==> tauri ${args[*]} ${features[*]}"
(cd src-tauri && "../$tauri" "${args[@]}" -- --locked "${features[@]}")
find "$target_dir/$profile/bundle" -maxdepth 2 -type f \( -name '*.deb' -o -name '*.rpm' -o -name '*.AppImage' -o -name '*.msi' -o -name '*.exe' -o -name '*.dmg' \) -newer "src-tauri/binaries/jumpgate-$triple$exe" -print

#!/usr/bin/env bash
# Installs what is missing (system packages, npm packages), builds the tray app and the CLI,
# then starts `jumpgate-tray --demo`: the simulator runs inside the app with the demo tenant,
# so no Azure is needed. Its client configuration's path is logged: `jumpgate --config PATH`
# acts as another user of the same demo (bob approving alice's request, say).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
bash scripts/test.sh --install
cargo build --locked -p jumpgate-tray -p jumpgate-cli
target_dir=$(cargo metadata --format-version 1 --no-deps | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>console.log(JSON.parse(s).target_directory))')
echo "==> starting the tray app in demo mode (Ctrl-C to quit)"
exec "$target_dir/debug/jumpgate-tray" --demo

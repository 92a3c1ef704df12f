#!/usr/bin/env bash
# The watcher benchmarks (scripts/bench/watch.py).
#
#   bash scripts/bench/watch.sh [--trials 21] [--idle-seconds 600] [--pending-seconds 120]
#                               [--approver-idle-seconds 300] [--only all|auto-approver]
exec bash "$(dirname "$0")/in-keychain.sh" scripts/bench/watch.py "$@"

#!/usr/bin/env bash
# The CLI benchmarks (scripts/bench/cli.py).
#
#   bash scripts/bench/cli.sh [--trials 21]
exec bash "$(dirname "$0")/in-keychain.sh" scripts/bench/cli.py "$@"

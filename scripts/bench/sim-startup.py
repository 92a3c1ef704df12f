#!/usr/bin/env python3
"""Time from launching `jumpgate-sim serve` to its ready line, against a baseline measured in
the same run: launching `echo` and reading its line. Prints medians and p95 over N trials.

    python3 scripts/bench/sim-startup.py [--trials 21] [--tenant demo|enterprise|gallery]
                                         [--bin target/debug/jumpgate-sim]
"""
import argparse
import os
import statistics
import subprocess
import tempfile
import time


def time_to_line(argv):
    start = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    line = proc.stdout.readline()
    elapsed = time.perf_counter() - start
    proc.terminate()
    proc.wait()
    if not line:
        raise SystemExit(f"{argv[0]} printed nothing")
    return elapsed, line.strip()


def summary(samples):
    ordered = sorted(samples)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return statistics.median(ordered), p95


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--trials", type=int, default=21)
    default_bin = os.path.join(os.environ.get("CARGO_TARGET_DIR", "target"), "debug", "jumpgate-sim")
    parser.add_argument("--bin", default=default_bin)
    parser.add_argument("--tenant", default="demo")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        config = os.path.join(tmp, "c.toml")
        sim = [args.bin, "serve", "--tenant", args.tenant, "--write-config", config, "--control"]
        baseline, measured = [], []
        for _ in range(args.trials):
            # Interleaved, so both see the same machine load.
            baseline.append(time_to_line(["echo", "ready"])[0])
            elapsed, line = time_to_line(sim)
            assert line.startswith("jumpgate-sim listening on http://127.0.0.1:"), line
            measured.append(elapsed)
    b_med, b_p95 = summary(baseline)
    m_med, m_p95 = summary(measured)
    print(f"trials: {args.trials}  binary: {args.bin}  tenant: {args.tenant}")
    print(f"baseline (spawn echo, read a line): median {b_med*1000:.1f} ms, p95 {b_p95*1000:.1f} ms")
    print(f"jumpgate-sim serve to ready line:   median {m_med*1000:.1f} ms, p95 {m_p95*1000:.1f} ms")
    print(f"ratio (median): {m_med / b_med:.1f}x baseline")


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Benchmarks for jumpgate-tray (debug build, --demo), run inside a throwaway desktop
(scripts/bench/tray.sh provides Xvfb, D-Bus, dunst, gnome-keyring and a tray host).
Prints medians, each with a baseline measured in the same run.

- launch to tray icon ready (the app logs it once the icon is in the tray; goal 1 s);
  baseline: launching jumpgate-sim to its ready line (the same embedded simulator, no UI).
- idle memory 60 s after start with the popover never opened: PSS summed over the app and
  every child process (goal 100 MB); baseline: jumpgate-sim serving the same tenant.
"""
import argparse
import os
import statistics
import subprocess
import tempfile
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
TARGET = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
TRAY = os.path.join(TARGET, "debug", "jumpgate-tray")
SIM = os.path.join(TARGET, "debug", "jumpgate-sim")


def pss_kb(pid):
    """PSS of a process and all its descendants, in kB."""
    total = 0
    todo = [pid]
    while todo:
        p = todo.pop()
        try:
            with open(f"/proc/{p}/smaps_rollup") as f:
                for line in f:
                    if line.startswith("Pss:"):
                        total += int(line.split()[1])
            with open(f"/proc/{p}/task/{p}/children") as f:
                todo += [int(c) for c in f.read().split()]
        except FileNotFoundError:
            pass
    return total


def launch_tray(home):
    env = dict(os.environ, HOME=home, JUMPGATE_LOG="info")
    env.pop("XDG_DATA_HOME", None)
    log = open(os.path.join(home, "app.log"), "w")
    start = time.perf_counter()
    proc = subprocess.Popen([TRAY, "--demo"], env=env, stdout=subprocess.DEVNULL, stderr=log)
    path = os.path.join(home, "app.log")
    while True:
        with open(path) as f:
            if "tray icon ready" in f.read():
                return proc, time.perf_counter() - start
        if proc.poll() is not None:
            raise SystemExit(f"jumpgate-tray exited: {open(path).read()}")
        if time.perf_counter() - start > 30:
            raise SystemExit("no tray icon within 30 s")
        time.sleep(0.005)


def launch_sim():
    start = time.perf_counter()
    proc = subprocess.Popen([SIM, "serve", "--tenant", "demo", "--control"], stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True)
    proc.stdout.readline()
    return proc, time.perf_counter() - start


def stop(proc):
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--trials", type=int, default=11)
    p.add_argument("--idle-seconds", type=int, default=60)
    args = p.parse_args()

    launches, base = [], []
    for _ in range(args.trials):
        with tempfile.TemporaryDirectory() as home:
            proc, took = launch_tray(home)
            launches.append(took)
            stop(proc)
        proc, took = launch_sim()
        base.append(took)
        stop(proc)
    med, bmed = statistics.median(launches), statistics.median(base)
    print(f"launch to tray icon ready: median {med*1000:.0f} ms over {args.trials} trials "
          f"(min {min(launches)*1000:.0f}, max {max(launches)*1000:.0f}); baseline (jumpgate-sim to ready) "
          f"median {bmed*1000:.1f} ms; ratio {med/bmed:.0f}x")

    with tempfile.TemporaryDirectory() as home:
        proc, _ = launch_tray(home)
        sim, _ = launch_sim()
        time.sleep(args.idle_seconds)
        app_mb, sim_mb = pss_kb(proc.pid) / 1024, pss_kb(sim.pid) / 1024
        stop(proc)
        stop(sim)
    print(f"idle PSS {args.idle_seconds} s after start, popover never opened: {app_mb:.0f} MB "
          f"(app and its children); baseline (jumpgate-sim alone) {sim_mb:.0f} MB; ratio {app_mb/sim_mb:.1f}x")


if __name__ == "__main__":
    main()

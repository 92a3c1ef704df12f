#!/usr/bin/env python3
"""Release against debug builds of the tray app, side by side in one run (run through
scripts/bench/release.sh, which builds both and provides Xvfb, D-Bus, gnome-keyring and a
tray host). Prints medians, and each release figure as a ratio of the debug one.

- sizes: the .deb packages, and the jumpgate-tray and jumpgate binaries;
- launch to tray icon ready (the app logs it once its icon is in the tray), started with a
  configuration that points at a running jumpgate-sim (the shipped build has no demo);
- idle memory: PSS of the app and its children after --idle-seconds, never opened.
The two builds are launched in alternation, so drift on a noisy machine hits both alike.
"""
import argparse
import glob
import os
import statistics
import subprocess
import tempfile
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
TARGET = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))


def pss_kb(pid):
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        try:
            with open(f"/proc/{p}/smaps_rollup") as f:
                total += sum(int(l.split()[1]) for l in f if l.startswith("Pss:"))
            # Each thread lists the children it started.
            for tid in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{tid}/children") as f:
                    todo += [int(c) for c in f.read().split()]
        except FileNotFoundError:
            pass
    return total


def one_launch(tray, config, idle):
    with tempfile.TemporaryDirectory() as home:
        log = os.path.join(home, "app.log")
        env = dict(os.environ, HOME=home, JUMPGATE_LOG="info")
        env.pop("XDG_DATA_HOME", None)
        env.pop("XDG_CONFIG_HOME", None)
        start = time.monotonic()
        with open(log, "w") as err:
            app = subprocess.Popen([tray, "--config", config], env=env, stdout=subprocess.DEVNULL, stderr=err)
        try:
            while True:
                text = open(log).read()
                if "tray icon ready" in text:
                    ready = time.monotonic() - start
                    break
                if app.poll() is not None or time.monotonic() - start > 60:
                    raise SystemExit(f"{tray} did not show its tray icon: {text}")
                time.sleep(0.005)
            time.sleep(idle)
            return ready, pss_kb(app.pid) / 1024
        finally:
            app.terminate()
            app.wait(timeout=10)


def size_mb(path):
    return os.path.getsize(path) / 1024 / 1024


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--trials", type=int, default=5)
    parser.add_argument("--idle-seconds", type=float, default=20)
    args = parser.parse_args()
    builds = {p: os.path.join(TARGET, p, "jumpgate-tray") for p in ("debug", "release")}
    sim = os.path.join(TARGET, "debug", "jumpgate-sim")
    with tempfile.TemporaryDirectory() as tmp:
        config = os.path.join(tmp, "config.toml")
        server = subprocess.Popen([sim, "serve", "--write-config", config], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            for _ in range(100):
                if os.path.exists(config):
                    break
                time.sleep(0.05)
            runs = {p: [] for p in builds}
            for _ in range(args.trials):
                for profile, tray in builds.items():
                    runs[profile].append(one_launch(tray, config, args.idle_seconds))
        finally:
            server.terminate()
            server.wait(timeout=10)
    print(f"| figure | debug | release | release / debug |")
    print(f"|---|---|---|---|")
    for name, path in [("jumpgate-tray binary", "jumpgate-tray"), ("jumpgate (CLI) binary", "jumpgate")]:
        d, r = (size_mb(os.path.join(TARGET, p, path)) for p in ("debug", "release"))
        print(f"| {name} | {d:.1f} MB | {r:.1f} MB | {r / d:.2f} |")
    debs = {p: sorted(glob.glob(os.path.join(TARGET, p, "bundle", "deb", "*.deb")), key=os.path.getmtime) for p in builds}
    if all(debs.values()):
        d, r = size_mb(debs["debug"][-1]), size_mb(debs["release"][-1])
        print(f"| .deb package | {d:.1f} MB | {r:.1f} MB | {r / d:.2f} |")
    med = {p: (statistics.median(x[0] for x in v), statistics.median(x[1] for x in v)) for p, v in runs.items()}
    d, r = med["debug"][0] * 1000, med["release"][0] * 1000
    print(f"| launch to tray icon (median of {args.trials}) | {d:.0f} ms | {r:.0f} ms | {r / d:.2f} |")
    d, r = med["debug"][1], med["release"][1]
    print(f"| idle PSS after {args.idle_seconds:.0f} s (median of {args.trials}) | {d:.0f} MB | {r:.0f} MB | {r / d:.2f} |")


if __name__ == "__main__":
    main()

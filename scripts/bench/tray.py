#!/usr/bin/env python3
"""Benchmarks for jumpgate-tray (debug build, --demo), run inside a throwaway desktop
(scripts/bench/tray.sh provides Xvfb, D-Bus, dunst, gnome-keyring and a tray host).
Prints medians, each with a baseline measured in the same run.

- launch to tray icon ready (the app logs it once the icon is in the tray; goal 1 s);
  baseline: launching jumpgate-sim to its ready line (the same embedded simulator, no UI).
- idle memory 60 s after start with the popover never opened: PSS summed over the app and
  every child process (goal 100 MB); baseline: jumpgate-sim serving the same tenant.
- popover opening to interactive (goal 300 ms), signed in as alice: a second launch asks the
  running app to open it; the app logs the time from that request to the popover telling it
  its first frame with the state is painted. Measured four ways, each on an app of its
  own (MODES): the popover in a helper process that exits when it closes, with the next
  one started ahead once it has been used (the default; the first of the trials starts
  one), the same started only on demand (JUMPGATE_POPOVER=on-demand), in the app's
  process and destroyed on close (JUMPGATE_POPOVER=destroy), and in the app's process kept
  hidden (JUMPGATE_POPOVER=hide); with the PSS while open (goal 250 MB) and 10 s after the
  last close (goal 100 MB; the focus moved to the tray panel with xdotool: the popover
  closes on blur).
- idle CPU, signed in with nothing pending or open: CPU time and context switches (wakeups)
  per second over the app and its children; baseline: jumpgate-sim idle in the same window.
"""
import argparse
import re
import urllib.parse
import urllib.request
import os
import statistics
import subprocess
import tempfile
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
TARGET = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
TRAY = SIM = CLI = None


def use_profile(profile):
    """Points the benchmark at the binaries of a cargo profile."""
    global TRAY, SIM, CLI
    TRAY = os.path.join(TARGET, profile, "jumpgate-tray")
    SIM = os.path.join(TARGET, profile, "jumpgate-sim")
    CLI = os.path.join(TARGET, profile, "jumpgate")


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
            # Each thread lists the children it started.
            for tid in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{tid}/children") as f:
                    todo += [int(c) for c in f.read().split()]
        except FileNotFoundError:
            pass
    return total


def tray_env(home, **extra):
    env = dict(os.environ, HOME=home, JUMPGATE_LOG="info", **extra)
    env.pop("XDG_DATA_HOME", None)
    env.pop("XDG_CONFIG_HOME", None)
    return env


def pss_by_process(pid):
    """PSS in MB of a process and each descendant, by name."""
    out, todo = {}, [pid]
    while todo:
        p = todo.pop()
        try:
            with open(f"/proc/{p}/comm") as f:
                name = f.read().strip()
            with open(f"/proc/{p}/smaps_rollup") as f:
                kb = sum(int(l.split()[1]) for l in f if l.startswith("Pss:"))
            out[name] = out.get(name, 0) + kb / 1024
            # Each thread lists the children it started.
            for tid in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{tid}/children") as f:
                    todo += [int(c) for c in f.read().split()]
        except FileNotFoundError:
            pass
    return ", ".join(f"{k} {v:.0f}" for k, v in sorted(out.items(), key=lambda kv: -kv[1]))


def launch_tray(home, **extra):
    env = tray_env(home, **extra)
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


def app_log(home):
    with open(os.path.join(home, "app.log")) as f:
        return f.read()


def wait_for(what, home, count, timeout=30):
    """Waits until the app's log holds `what` more than `count` times; answers the lines."""
    start = time.perf_counter()
    while True:
        lines = [l for l in app_log(home).splitlines() if what in l]
        if len(lines) > count:
            return lines
        if time.perf_counter() - start > timeout:
            raise SystemExit(f"no '{what}' within {timeout} s:\n{app_log(home)}")
        time.sleep(0.002)


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


def sign_in(home, upn):
    """`jumpgate signin` on the demo's configuration, playing the browser."""
    config = re.search(r"its client configuration is (\S+)", app_log(home)).group(1)
    proc = subprocess.Popen([CLI, "--config", config, "signin", "--no-open", "--user", upn],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    url = urllib.parse.urlsplit(proc.stdout.readline().strip())
    form = urllib.parse.parse_qsl(url.query) + [("upn", upn)]
    action = urllib.parse.urlunsplit((url.scheme, url.netloc, url.path, "", ""))
    opener = urllib.request.build_opener(NoRedirect)
    try:
        opener.open(action, data=urllib.parse.urlencode(form).encode())
        raise SystemExit("the sign-in page did not redirect")
    except urllib.error.HTTPError as e:
        location = e.headers["Location"]
    urllib.request.urlopen(location).read()
    if proc.wait() != 0:
        raise SystemExit("jumpgate signin failed")


def close_popover():
    """Moves the focus to the tray host's panel: the popover closes on blur, as it does when
    the user clicks elsewhere."""
    ids = subprocess.run(["xdotool", "search", "--name", "^panel$"], capture_output=True,
                         text=True).stdout.split()
    if not ids:
        raise SystemExit("no tray host panel to move the focus to: run through scripts/bench/tray.sh")
    # Without a window manager the popover has the focus only once it is given it.
    popovers = subprocess.run(["xdotool", "search", "--onlyvisible", "--name", "^Jumpgate$"],
                              capture_output=True, text=True).stdout.split()
    for wid in popovers[:1]:
        subprocess.run(["xdotool", "windowfocus", "--sync", wid], capture_output=True, timeout=10)
    time.sleep(0.3)
    subprocess.run(["xdotool", "windowfocus", ids[0]], capture_output=True, timeout=10)


# JUMPGATE_POPOVER for each way of running the popover, and what the app logs once the
# popover has closed.
MODES = {
    "helper process, next one started ahead": (None, "popover closed (its process exited"),
    "helper process on demand": ("on-demand", "popover closed (its process exited"),
    "in process, destroyed on close": ("destroy", "popover closed (destroyed)"),
    "in process, hidden on close": ("hide", "popover closed (hidden)"),
}


def popover(mode, trials):
    """Opening to interactive (app-measured, ms), PSS open and 10 s after the last close."""
    with tempfile.TemporaryDirectory() as home:
        setting, closed_line = MODES[mode]
        proc, _ = launch_tray(home, **({"JUMPGATE_POPOVER": setting} if setting else {}))
        sign_in(home, "alice@contoso.example")
        times, open_pss = [], []
        for _ in range(trials):
            lines = app_log(home).splitlines()
            seen = len([l for l in lines if "popover interactive" in l])
            closed = len([l for l in lines if closed_line in l])
            subprocess.run([TRAY], env=tray_env(home), stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL, timeout=30)
            line = wait_for("popover interactive", home, seen)[-1]
            times.append(float(re.search(r"interactive in ([0-9.]+) ms", line).group(1)))
            time.sleep(1)
            open_pss.append(pss_kb(proc.pid))
            close_popover()
            wait_for(closed_line, home, closed)
            time.sleep(0.5)
        time.sleep(10)
        closed_pss = pss_kb(proc.pid)
        parts = pss_by_process(proc.pid)
        stop(proc)
    return times, statistics.median(open_pss) / 1024, closed_pss / 1024, parts


def cpu_sample(pid):
    """(CPU seconds, context switches) of a process, its threads and its descendants."""
    ticks, switches, todo = 0, 0, [pid]
    hz = os.sysconf("SC_CLK_TCK")
    while todo:
        p = todo.pop()
        try:
            with open(f"/proc/{p}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
                ticks += int(fields[11]) + int(fields[12])
            for t in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{t}/status") as f:
                    for line in f:
                        if line.startswith(("voluntary_ctxt_switches", "nonvoluntary_ctxt_switches")):
                            switches += int(line.split()[1])
                with open(f"/proc/{p}/task/{t}/children") as f:
                    todo += [int(c) for c in f.read().split()]
        except (FileNotFoundError, ProcessLookupError):
            pass
    return ticks / hz, switches


def idle_cpu(seconds):
    with tempfile.TemporaryDirectory() as home:
        proc, _ = launch_tray(home)
        sign_in(home, "alice@contoso.example")
        sim, _ = launch_sim()
        time.sleep(10)
        a0, b0 = cpu_sample(proc.pid), cpu_sample(sim.pid)
        time.sleep(seconds)
        a1, b1 = cpu_sample(proc.pid), cpu_sample(sim.pid)
        stop(proc)
        stop(sim)
    return ((a1[0] - a0[0]) / seconds, (a1[1] - a0[1]) / seconds,
            (b1[0] - b0[0]) / seconds, (b1[1] - b0[1]) / seconds)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--trials", type=int, default=11)
    p.add_argument("--idle-seconds", type=int, default=60)
    p.add_argument("--only", choices=["launch", "memory", "popover", "cpu"])
    p.add_argument("--profile", choices=["debug", "release"], default="debug")
    args = p.parse_args()
    use_profile(args.profile)
    print(f"{args.profile} build")
    run = lambda part: args.only in (None, part)

    if run("popover"):
        for mode in MODES:
            times, open_mb, closed_mb, parts = popover(mode, args.trials)
            print(f"popover ({mode}), opening to interactive: median {statistics.median(times):.0f} ms "
                  f"over {len(times)} trials (min {min(times):.0f}, max {max(times):.0f}); PSS open "
                  f"{open_mb:.0f} MB; PSS 10 s after closing {closed_mb:.0f} MB ({parts})")

    if run("cpu"):
        app_cpu, app_sw, sim_cpu, sim_sw = idle_cpu(args.idle_seconds)
        print(f"idle, signed in, nothing pending, over {args.idle_seconds} s: CPU {app_cpu*100:.2f}% of a core, "
              f"{app_sw:.1f} context switches/s (app and children); baseline (jumpgate-sim idle) "
              f"CPU {sim_cpu*100:.2f}%, {sim_sw:.1f}/s")
    if not (run("launch") or run("memory")):
        return

    launches, base = [], []
    for _ in range(args.trials if run("launch") else 0):
        with tempfile.TemporaryDirectory() as home:
            proc, took = launch_tray(home)
            launches.append(took)
            stop(proc)
        proc, took = launch_sim()
        base.append(took)
        stop(proc)
    if launches:
        med, bmed = statistics.median(launches), statistics.median(base)
        print(f"launch to tray icon ready: median {med*1000:.0f} ms over {args.trials} trials "
              f"(min {min(launches)*1000:.0f}, max {max(launches)*1000:.0f}); baseline (jumpgate-sim to ready) "
              f"median {bmed*1000:.1f} ms; ratio {med/bmed:.0f}x")
    if not run("memory"):
        return

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

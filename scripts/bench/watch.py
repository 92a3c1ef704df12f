#!/usr/bin/env python3
"""Benchmarks for `jumpgate watch` against a local jumpgate-sim (no propagation delay).
Prints medians and p95, each with a baseline measured in the same run.

- bob approves at a random moment -> alice's `watch` prints request_approved
  (goal: median <= 1.5 s, p95 <= 3 s);
- alice submits (`jumpgate activate` returns) -> bob's `watch --approver` prints
  approval_waiting (goal: median <= 5 s);
  baseline for both: one ARM read of the request from this script (what an ideal watcher
  would need at the least).
- ARM reads per hour by alice's watcher while one request is pending (goal: <= 1800), and
  with nothing pending or open (goal: <= 60), counted from the simulator's request events;
  also bob's watcher, polling as an approver.
- bob's plain `watch` (no --approver), which finds him named as the approver in the demo
  policy: alice submits -> approval_waiting (goal: median <= 5 s), and ARM reads per hour
  with nothing pending (`--only auto-approver` runs this part alone).

Run through scripts/bench/watch.sh, which provides the keychain.
"""
import argparse
import os
import queue
import random
import subprocess
import sys
import tempfile
import threading
import time
import json

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cli import ALICE, BOB, JUMPGATE, Sim, stats  # noqa: E402

PIM = "2020-10-01"


class Watch:
    """A running `jumpgate --json watch`, its events stamped as they arrive."""

    def __init__(self, config, *extra):
        self.proc = subprocess.Popen([JUMPGATE, "--config", config, "--json", "watch", *extra],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.events = queue.Queue()
        self.progress = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        threading.Thread(target=self._read_progress, daemon=True).start()

    def _read(self):
        for line in self.proc.stdout:
            self.events.put((time.perf_counter(), json.loads(line)))

    def _read_progress(self):
        for line in self.proc.stderr:
            self.progress.put(line.rstrip("\n"))

    def said(self, needle, limit=30):
        """Waits for a progress line (stderr) containing `needle`."""
        deadline = time.perf_counter() + limit
        while True:
            left = deadline - time.perf_counter()
            if left <= 0:
                raise SystemExit(f"the watcher never said {needle!r} within {limit} s")
            try:
                line = self.progress.get(timeout=left)
            except queue.Empty:
                continue
            if needle in line:
                return line

    def next(self, name, limit=30):
        deadline = time.perf_counter() + limit
        while True:
            left = deadline - time.perf_counter()
            if left <= 0:
                raise SystemExit(f"no {name} within {limit} s")
            try:
                at, event = self.events.get(timeout=left)
            except queue.Empty:
                continue
            if event["event"] == name:
                return at, event

    def close(self):
        self.proc.kill()
        self.proc.wait()


def arm_reads(sim, upn, since):
    events = sim.call("GET", f"/_sim/events?since={since}")
    return sum(1 for e in events if e.get("kind") == "request" and e.get("method") == "GET"
               and e.get("caller") == upn and not e["path"].startswith(("/_sim", "/ip", "/cdn-cgi")))


def last_seq(sim):
    events = sim.call("GET", "/_sim/events")
    return events[-1]["seq"] if events else 0


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--trials", type=int, default=21)
    p.add_argument("--idle-seconds", type=int, default=600)
    p.add_argument("--pending-seconds", type=int, default=120)
    p.add_argument("--approver-idle-seconds", type=int, default=300)
    p.add_argument("--only", choices=["all", "auto-approver"], default="all")
    args = p.parse_args()
    if args.only == "all":
        flagged(args)
    auto_approver(args)


def flagged(args):
    """alice's watch, and bob's with --approver."""
    with tempfile.TemporaryDirectory() as tmp:
        sim = Sim(tmp)
        try:
            alice, bob = sim.user(ALICE), sim.user(BOB)
            sim.sign_in(alice, ALICE)
            sim.sign_in(bob, BOB)
            a, b = Watch(alice), Watch(bob, "--approver")
            time.sleep(2)
            approved, waiting, base = [], [], []
            for trial in range(args.trials):
                # The simulator's clock moves between trials: fresh tokens for this script.
                bob_token, alice_token = sim.token(BOB), sim.token(ALICE)
                out = subprocess.run([JUMPGATE, "--config", alice, "--json", "activate", "JIT Requester",
                                      "--justification", f"bench {trial}", "--duration", "30m"], capture_output=True, text=True)
                submitted = time.perf_counter()
                if out.returncode != 0:
                    raise SystemExit(f"activate failed ({out.returncode}): {out.stderr} {out.stdout}")
                request = json.loads(out.stdout)
                at, _ = b.next("approval_waiting")
                waiting.append(at - submitted)
                # The baseline: one read of the request.
                start = time.perf_counter()
                sim.call("GET", f"{request['scope']}/providers/Microsoft.Authorization/roleAssignmentScheduleRequests/{request['name']}?api-version={PIM}", token=alice_token)
                base.append(time.perf_counter() - start)
                # bob decides at a random moment.
                time.sleep(random.uniform(0.5, 4.0))
                approved_at = sim.approve_first(bob_token)
                at, event = a.next("request_approved")
                assert event["request"] == request["name"], event
                approved.append(at - approved_at)
                if os.environ.get("BENCH_VERBOSE"):
                    print(f"trial {trial}: approved after {(at - approved_at)*1000:.0f} ms, waiting after {waiting[-1]*1000:.0f} ms", flush=True)
                # End the role so the next trial can ask again.
                sim.call("POST", "/_sim/clock/advance", {"seconds": 31 * 60})
            report("bob approves -> alice's watch prints request_approved", approved, base)
            report("alice submits -> bob's watch prints approval_waiting", waiting, base)

            # Reads while one request is pending: alice asks, nobody decides.
            subprocess.run([JUMPGATE, "--config", alice, "activate", "JIT Requester", "--justification", "pending"],
                           check=True, capture_output=True)
            time.sleep(3)
            since = last_seq(sim)
            time.sleep(args.pending_seconds)
            reads = arm_reads(sim, ALICE, since)
            print(f"ARM reads by alice's watch with one request pending: {reads} in {args.pending_seconds} s = {reads * 3600 / args.pending_seconds:.0f} per hour (goal <= 1800)")
        finally:
            for w in ("a", "b"):
                if w in locals():
                    locals()[w].close()
            sim.close()

    # Idle: a fresh simulator, alice signed in with nothing pending or open.
    with tempfile.TemporaryDirectory() as tmp:
        sim = Sim(tmp)
        try:
            alice, bob = sim.user(ALICE), sim.user(BOB)
            sim.sign_in(alice, ALICE)
            sim.sign_in(bob, BOB)
            a, b = Watch(alice), Watch(bob, "--approver")
            time.sleep(5)
            since = last_seq(sim)
            time.sleep(args.idle_seconds)
            reads = arm_reads(sim, ALICE, since)
            approver = arm_reads(sim, BOB, since)
            print(f"ARM reads by alice's watch with nothing pending: {reads} in {args.idle_seconds} s = {reads * 3600 / args.idle_seconds:.0f} per hour (goal <= 60)")
            print(f"ARM reads by bob's watch --approver with nothing pending: {approver} in {args.idle_seconds} s = {approver * 3600 / args.idle_seconds:.0f} per hour (the inbox every 4 s)")
            a.close()
            b.close()
        finally:
            sim.close()


def auto_approver(args):
    """bob's plain `watch`: he is named as the approver in the demo policy he may read."""
    with tempfile.TemporaryDirectory() as tmp:
        sim = Sim(tmp)
        b = None
        try:
            alice, bob = sim.user(ALICE), sim.user(BOB)
            sim.sign_in(alice, ALICE)
            sim.sign_in(bob, BOB)
            b = Watch(bob)
            line = b.said("checking your approvals")
            print(f"bob's watch (no --approver) said: {line}")
            waiting, base = [], []
            for trial in range(args.trials):
                bob_token, alice_token = sim.token(BOB), sim.token(ALICE)
                out = subprocess.run([JUMPGATE, "--config", alice, "--json", "activate", "JIT Requester",
                                      "--justification", f"bench {trial}", "--duration", "30m"], capture_output=True, text=True)
                submitted = time.perf_counter()
                if out.returncode != 0:
                    raise SystemExit(f"activate failed ({out.returncode}): {out.stderr} {out.stdout}")
                request = json.loads(out.stdout)
                at, event = b.next("approval_waiting")
                assert event["request"] == request["name"], event
                waiting.append(at - submitted)
                start = time.perf_counter()
                sim.call("GET", f"{request['scope']}/providers/Microsoft.Authorization/roleAssignmentScheduleRequests/{request['name']}?api-version={PIM}", token=alice_token)
                base.append(time.perf_counter() - start)
                if os.environ.get("BENCH_VERBOSE"):
                    print(f"trial {trial}: waiting after {waiting[-1]*1000:.0f} ms", flush=True)
                # The inbox is polled at its own pace: a random pause keeps the trials from
                # falling into step with it.
                time.sleep(random.uniform(0.0, 4.0))
                sim.approve_first(bob_token)
                sim.call("POST", "/_sim/clock/advance", {"seconds": 31 * 60})
            report("alice submits -> bob's watch without --approver prints approval_waiting", waiting, base)

            time.sleep(5)
            since = last_seq(sim)
            time.sleep(args.approver_idle_seconds)
            reads = arm_reads(sim, BOB, since)
            print(f"ARM reads by bob's watch without --approver (found as approver) with nothing pending: {reads} in {args.approver_idle_seconds} s = {reads * 3600 / args.approver_idle_seconds:.0f} per hour")
        finally:
            if b is not None:
                b.close()
            sim.close()


def report(what, samples, base):
    med, p95 = stats(samples)
    bmed, _ = stats(base)
    print(f"{what}: median {med*1000:.0f} ms, p95 {p95*1000:.0f} ms over {len(samples)} trials; "
          f"baseline (one ARM read of the request) median {bmed*1000:.1f} ms; ratio {med/bmed:.0f}x")


if __name__ == "__main__":
    main()

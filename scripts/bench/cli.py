#!/usr/bin/env python3
"""Benchmarks for the jumpgate CLI against a local jumpgate-sim. Prints medians and p95, each
with a baseline measured in the same run.

- `jumpgate --version` cold start (goal: 10 ms median); baseline: spawning /bin/true.
- `jumpgate status`, signed in, with an active role and an open port (goal: 50 ms median);
  baseline: one HTTP GET to the simulator from this script.
- `connect`: from bob's approval to alice's port reachable, no propagation delay (goal: 2 s);
  baseline: none needed beyond the polling interval, reported as is.

Run through scripts/bench/cli.sh, which provides the keychain.
"""
import argparse
import json
import re
import os
import statistics
import subprocess
import tempfile
import time
import urllib.parse
import urllib.request

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
TARGET = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
JUMPGATE = os.path.join(TARGET, "debug", "jumpgate")
SIM = os.path.join(TARGET, "debug", "jumpgate-sim")
ALICE, BOB = "alice@contoso.example", "bob@contoso.example"


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


def stats(samples):
    s = sorted(samples)
    return statistics.median(s), s[min(len(s) - 1, round(0.95 * (len(s) - 1)))]


def timed(argv, **kw):
    start = time.perf_counter()
    out = subprocess.run(argv, capture_output=True, **kw)
    elapsed = time.perf_counter() - start
    if out.returncode != 0:
        raise SystemExit(f"{argv} failed: {out.stderr.decode()}")
    return elapsed


class Sim:
    def __init__(self, workdir, delay=0):
        self.dir = workdir
        config = os.path.join(workdir, "sim.toml")
        self.proc = subprocess.Popen([SIM, "serve", "--tenant", "demo", "--control", "--propagation-delay", str(delay), "--write-config", config],
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        self.url = self.proc.stdout.readline().strip().rsplit(" ", 1)[1]
        self.base_config = open(config).read()
        # Every /_sim/ call needs the run's control token, from the config the simulator wrote.
        self.control_token = re.search(r'^control_token = "([^"]+)"', self.base_config, re.M).group(1)

    def close(self):
        self.proc.terminate()
        self.proc.wait()

    def call(self, method, path, body=None, token=None, form=None):
        data, headers = None, {}
        if body is not None:
            data, headers["Content-Type"] = json.dumps(body).encode(), "application/json"
        if form is not None:
            data = urllib.parse.urlencode(form).encode()
        if token is None and path.startswith("/_sim/"):
            token = self.control_token
        if token:
            headers["Authorization"] = f"Bearer {token}"
        req = urllib.request.Request(self.url + path, data=data, headers=headers, method=method)
        with urllib.request.urlopen(req) as r:
            text = r.read()
            if not text or "json" not in r.headers.get("Content-Type", ""):
                return text
            return json.loads(text)

    def token(self, upn):
        return self.call("POST", "/_sim/token", {"upn": upn})["access_token"]

    def user(self, upn):
        name = upn.split("@")[0]
        path = os.path.join(self.dir, f"{name}.toml")
        with open(path, "w") as f:
            f.write(self.base_config + f'\n[storage]\nkeyring_service = "jumpgate-bench-{os.getpid()}-{name}-{time.time_ns()}"\nstate_dir = "{self.dir}/state-{name}"\n')
        return path

    def sign_in(self, config, upn):
        proc = subprocess.Popen([JUMPGATE, "--config", config, "signin", "--no-open", "--user", upn], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        url = urllib.parse.urlsplit(proc.stdout.readline().strip())
        form = dict(urllib.parse.parse_qsl(url.query))
        form["upn"] = upn
        opener = urllib.request.build_opener(NoRedirect)
        try:
            opener.open(urllib.request.Request(f"{url.scheme}://{url.netloc}{url.path}", data=urllib.parse.urlencode(form).encode()))
        except urllib.error.HTTPError as e:
            urllib.request.urlopen(e.headers["Location"]).read()
        if proc.wait() != 0:
            raise SystemExit("sign-in failed")

    def approve_first(self, bob_token):
        """Waits for a pending approval for bob, then approves it; returns when ARM answered."""
        while True:
            approvals = self.call("GET", "/providers/Microsoft.Authorization/roleAssignmentApprovals?api-version=2021-01-01-preview&$filter=asApprover()", token=bob_token)["value"]
            if approvals:
                a = approvals[0]
                # A stage is addressed by the last segment of its id, which differs from its name.
                stage = a["properties"]["stages"][0]["id"].rsplit("/", 1)[-1]
                start = time.perf_counter()
                self.call("PATCH", f"/providers/Microsoft.Authorization/roleAssignmentApprovals/{a['name']}/stages/{stage}?api-version=2021-01-01-preview",
                          {"properties": {"reviewResult": "Approve", "justification": "bench"}}, token=bob_token)
                return start
            time.sleep(0.05)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--trials", type=int, default=21)
    args = p.parse_args()
    n = args.trials

    base, version = [], []
    for _ in range(n):
        base.append(timed(["/bin/true"]))
        version.append(timed([JUMPGATE, "--version"]))
    report("jumpgate --version (cold start)", version, "spawn /bin/true", base)

    with tempfile.TemporaryDirectory() as tmp:
        sim = Sim(tmp)
        try:
            alice = sim.user(ALICE)
            sim.sign_in(alice, ALICE)
            bob_token = sim.token(BOB)
            connect = subprocess.Popen([JUMPGATE, "--config", alice, "connect", "jumpbox-win-01", "--justification", "bench", "--no-launch"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            sim.approve_first(bob_token)
            connect.wait()
            base, status = [], []
            for _ in range(n):
                start = time.perf_counter()
                sim.call("GET", "/ip")
                base.append(time.perf_counter() - start)
                status.append(timed([JUMPGATE, "--config", alice, "status"]))
            report("jumpgate status (1 role, 1 open port)", status, "one HTTP GET from this script", base)
        finally:
            sim.close()

    reach = []
    for _ in range(n):
        with tempfile.TemporaryDirectory() as tmp:
            sim = Sim(tmp)
            try:
                alice = sim.user(ALICE)
                sim.sign_in(alice, ALICE)
                bob_token = sim.token(BOB)
                connect = subprocess.Popen([JUMPGATE, "--config", alice, "connect", "jumpbox-win-01", "--justification", "bench", "--no-launch"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                approved_at = sim.approve_first(bob_token)
                if connect.wait() != 0:
                    raise SystemExit("connect failed")
                reach.append(time.perf_counter() - approved_at)
            finally:
                sim.close()
    med, p95 = stats(reach)
    print(f"connect, approval to port reachable (exit): median {med*1000:.0f} ms, p95 {p95*1000:.0f} ms over {n} trials")


def report(what, samples, baseline_name, baseline):
    med, p95 = stats(samples)
    bmed, bp95 = stats(baseline)
    print(f"{what}: median {med*1000:.1f} ms, p95 {p95*1000:.1f} ms; baseline ({baseline_name}) median {bmed*1000:.1f} ms; ratio {med/bmed:.1f}x")


if __name__ == "__main__":
    main()

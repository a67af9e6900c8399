"""The controller process of a lab: Addressing API + reconciler + observers, on loopback.

Started by `bgplab up` after the lab has converged (``start``), marked with the lab
like every other process of it, so `bgplab down` ends it. It writes
``controller.json`` (pid, port) into the lab directory once it is listening.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from controller.api import Behaviour, create_app
from controller.inventory import Inventory
from controller.observe.sampler import Sampler
from controller.reconcile import Reconciler
from lab.daemons import frr
from lab.errors import BgplabError
from lab.plan import LabPlan
from lab.running import RunningLab
from lab.procs import alive, mark_env
from lab.runtime.netns import spawn_net
from lab.state import LabState
from lab.wait import wait_until


def inventory_path(state: LabState) -> Path:
    return state.dir / "inventory.sqlite"


def info_path(state: LabState) -> Path:
    return state.dir / "controller.json"


def observe_dir(state: LabState) -> Path:
    d = state.dir / "observe"
    d.mkdir(exist_ok=True)
    return d


class EventLog:
    """Timestamped events, one JSON object per line, safe from several threads."""

    def __init__(self, path: Path):
        self.path = path
        self.lock = threading.Lock()
        self.f = open(path, "a", buffering=1)

    def __call__(self, kind: str, data: dict[str, Any]) -> None:
        line = json.dumps({"t": time.time(), "kind": kind, **data})
        with self.lock:
            self.f.write(line + "\n")


def serve(lab: str, seed: int, probes: int, extra: list[str]) -> None:
    running = RunningLab.open(lab)
    state, plan = running.state, running.plan
    log = EventLog(observe_dir(state) / "controller.jsonl")
    path = inventory_path(state)
    fresh = not path.exists()
    inv = Inventory(path)
    lab_announced = bool(state.data.get("announced", True))
    if fresh:
        counts = inv.seed(plan, seed=seed)
        if not lab_announced:
            inv.set_advertised([p.id for p in inv.prefixes()], False)
        log("seeded", {**counts, "advertised": lab_announced})
        # `up` announced exactly the plan (or nothing): that is what the speakers hold now.
        announced = {s.name: inv.desired(s.name) for s in plan.speakers()}
    else:
        announced = {}  # unknown after a controller restart: resend everything
    reconciler = Reconciler(plan, state, inv, announced, log)
    reconciler.start()
    if not fresh:
        reconciler.sync()

    obs = observe_dir(state)
    routers = {r.name: r.namespace for r in plan.routers() if r.installs_routes}
    observers = {
        r.name: (frr.FrrPaths(state.node_dir(r.name)), [str(x.peer_v4) for x in r.sessions if x.peer_kind.value == "exabgp"])
        for r in plan.peer_routers()
    }
    sampler = Sampler(routers, plan.pool_keys, observers, obs)
    sampler.start()
    reconciler.settled = sampler.wait_quiet
    start_data_plane(state, plan, inv, seed, probes, extra)

    app = create_app(inv, reconciler.on_change, Behaviour(), lab=LabRoutes(reconciler, sampler, obs))

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    # Accepted connections inherit it: without it a kept-alive client waited ~40 ms
    # (Nagle against delayed ACK) for every small answer.
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind(("127.0.0.1", 0))  # loopback only; the port is whatever is free
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False))

    def stop(*_: object) -> None:
        server.should_exit = True

    signal.signal(signal.SIGTERM, stop)
    tmp = info_path(state).with_suffix(".tmp")
    tmp.write_text(json.dumps({"pid": os.getpid(), "port": port, "url": f"http://127.0.0.1:{port}"}))
    os.replace(tmp, info_path(state))
    log("listening", {"port": port})
    try:
        server.run(sockets=[sock])
    finally:
        sampler.stop()
        reconciler.stop()
        inv.close()


class LabRoutes:
    """The lab's own API routes (observe, verify, sync) over the reconciler and the sampler."""

    def __init__(self, reconciler: Reconciler, sampler: Sampler, observe_dir: Path):
        self.reconciler, self.sampler, self.observe_dir = reconciler, sampler, observe_dir

    def observe(self) -> dict[str, Any]:
        return {"sample": self.sampler.latest, "probes": probe_summary(self.observe_dir / "probes.jsonl")}

    def status(self) -> dict[str, Any]:
        r = self.reconciler
        return {"sync": r.last_sync, "verify": r.last_verify, "verify_queries": r.verify_queries,
                "suspect": sorted(r.suspect),
                "restarts": {n: link.restarts for n, link in r.links.items()}}

    def verify(self, wait: float = 0.0) -> dict[str, Any]:
        return self.reconciler.verify(wait=wait)

    def sync(self):
        return self.reconciler.sync()

    def resend_all(self):
        return self.reconciler.resend_all()


def probe_targets(plan: LabPlan, seed: int, count: int, extra: list[str] = ()) -> list[dict[str, str]]:
    """A deterministic sample of BYOIP prefixes (plus ``extra`` ones, a drill's canary), each
    with a service address inside it (its first host address)."""
    byoip = [p for p in plan.prefixes if p.byoip] or list(plan.prefixes)
    chosen = [p.prefix for p in random.Random(seed).sample(byoip, min(count, len(byoip)))]
    known = {str(p.prefix) for p in plan.prefixes}
    for cidr in extra:
        if cidr not in known:
            raise BgplabError(f"probe target {cidr} is not one of the lab's prefixes")
        net = next(p.prefix for p in plan.prefixes if str(p.prefix) == cidr)
        if net not in chosen:
            chosen.append(net)
    return [{"prefix": str(n), "address": str(n.network_address + 1)} for n in chosen]


def start_data_plane(state: LabState, plan: LabPlan, inv: Inventory, seed: int, probes: int,
                     extra: list[str] = ()) -> None:
    """The edge's responders (one per speaker) and the end hosts' probes, each in its node's namespace."""
    obs = observe_dir(state)
    lengths = ",".join(sorted({f"{p.prefix.version}:{p.prefix.prefixlen}" for p in plan.prefixes}))
    running = state.daemons()
    # A speaker that carries only a synthetic table (no pool of the inventory's) serves nothing.
    serving = [n for n in plan.speakers() if plan.originated_by(n.name)]
    for node in serving:
        if alive(running.get(node.name, {}).get("responder", -1)):
            continue
        argv = [sys.executable, "-m", "controller.observe.responder", "--inventory", str(inv.path), "--lengths", lengths]
        state.add_daemon(node.name, "responder", spawn_net(state.lab, node, argv, log=state.node_dir(node.name) / "responder.out"))
    # Probes start once every responder listens: a refused probe at start is not an outage.
    def listening() -> tuple[bool, str]:
        waiting = [n.name for n in serving if not _listens(state.daemons()[n.name]["responder"], 80)]
        return not waiting, f"no listener yet on {', '.join(waiting)}"

    wait_until(listening, timeout=20, what="the edge responders to listen")
    if (probes <= 0 and not extra) or not plan.hosts():
        return
    targets = obs / "probe-targets.json"
    targets.write_text(json.dumps(probe_targets(plan, seed, probes, extra), indent=1))
    for host in plan.hosts():
        if alive(running.get(host.name, {}).get("probe", -1)):
            continue
        argv = [sys.executable, "-m", "controller.observe.probe", "--host", host.name, "--targets", str(targets),
                "--out", str(obs / "probes.jsonl")]
        state.add_daemon(host.name, "probe", spawn_net(state.lab, host, argv, log=state.node_dir(host.name) / "probe.out"))


def _listens(pid: int, port: int) -> bool:
    """A socket listening on ``port`` in the network namespace of process ``pid``."""
    for table in ("tcp6", "tcp"):
        try:
            lines = Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            f = line.split()
            if f[3] == "0A" and int(f[1].rsplit(":", 1)[1], 16) == port:
                return True
    return False


def recent_probes(path: Path, window: float = 1.5) -> list[dict[str, Any]]:
    """Probe results of the last ``window`` seconds (read from the file's tail)."""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 256 * 1024))
            lines = f.read().decode(errors="replace").splitlines()[1:]
    except FileNotFoundError:
        return []
    cutoff = time.time() - window
    out = []
    for line in reversed(lines):
        try:
            e = json.loads(line)
        except ValueError:
            continue
        if e["t"] < cutoff:
            break
        out.append(e)
    return out


def probe_summary(path: Path, window: float = 1.5) -> dict[str, dict[str, int]]:
    """Results of the probes of the last ``window`` seconds, per host."""
    out: dict[str, dict[str, int]] = {}
    for e in recent_probes(path, window):
        per = out.setdefault(e["host"], {})
        per[e["result"]] = per.get(e["result"], 0) + 1
    return out
def start(running: RunningLab, *, seed: int = 20260220, probes: int = 20, probe_prefixes: list[str] = (),
          timeout: float = 60.0) -> dict[str, Any]:
    """Start the controller of a running lab and wait until its API answers."""
    lab, state = running.name, running.state
    log = state.dir / "controller.out"
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "controller.service", "--lab", lab, "--seed", str(seed), "--probes", str(probes),
             *[a for p in probe_prefixes for a in ("--probe-prefix", p)]],
            stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
            env=mark_env(lab), start_new_session=True,
        )
    state.add_daemon("controller", "api", proc.pid)

    def answering() -> tuple[bool, str]:
        if not alive(proc.pid):
            raise BgplabError(f"the controller of lab '{lab}' exited at start: {log.read_text()[-800:]}")
        try:
            info = json.loads(info_path(state).read_text())
            r = httpx.get(f"{info['url']}/v1/health", timeout=2.0)
            return r.status_code == 200, f"health answered {r.status_code}"
        except (OSError, ValueError, KeyError, httpx.HTTPError) as e:
            return False, str(e)

    wait_until(answering, timeout=timeout, what=f"the controller of lab '{lab}' to answer", interval=0.05)
    return json.loads(info_path(state).read_text())


def main() -> None:
    ap = argparse.ArgumentParser(description="the controller of one lab (started by `bgplab up`)")
    ap.add_argument("--lab", required=True)
    ap.add_argument("--seed", type=int, default=20260220)
    ap.add_argument("--probes", type=int, default=20, help="BYOIP service addresses each end host probes")
    ap.add_argument("--probe-prefix", action="append", default=[], help="a prefix to probe as well (repeatable)")
    args = ap.parse_args()
    serve(args.lab, args.seed, args.probes, args.probe_prefix)


if __name__ == "__main__":
    main()

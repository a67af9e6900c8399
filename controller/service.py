"""The controller process of a lab: Addressing API + reconciler + observers, on loopback.

Started by `bgplab up` after the lab has converged (controller.launch), marked with the lab
like every other process of it, so `bgplab down` ends it. It writes
``controller.json`` (pid, port) into the lab directory once it is listening.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import threading
import time
from pathlib import Path
from typing import Any

import uvicorn

from controller.dashboard import Dashboard
from controller.api import ApiContext, create_app
from controller.changes import Changes
from controller.misbehaviours import Behaviour
from controller.client import admin_token_path
from controller.edge import Edge, EdgeFiles, Ticker
from controller.inventory import Inventory, InventoryError, cidr_of
from controller.dataplane import STAGE_PROBES, start_data_plane, write_stage_targets
from controller.observe.health import probe_health, probe_summary
from controller.observe.sampler import Sampler
from controller.observe.targets import pop_sources, stage_targets
from controller.paths import info_path, inventory_path, observe_dir
from controller.reconcile import Reconciler
from lab.kinds import router_of
from lab.procs import alive
from lab.running import RunningLab
from lab.state import LabState


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


def serve(lab: str, seed: int, probes: int, extra: list[str], machines: int = 4, edge_seed: int = 1,
          during_up: bool | None = None) -> None:
    """``during_up``: given when `up` started this controller while the lab converges (whether
    `up` will announce the prefixes); the controller then seeds its inventory and builds the
    edge meanwhile, and waits for the lab to be up before it samples, reconciles or probes."""
    running = RunningLab.open(lab)
    state, plan = running.state, running.plan
    log = EventLog(observe_dir(state) / "controller.jsonl")
    path = inventory_path(state)
    fresh = not path.exists()
    inv = Inventory(path)
    lab_announced = state.announced if during_up is None else during_up
    if fresh:
        # A lab brought up withdrawn starts with every prefix withdrawn, the pinned one too: that is
        # its initial state, not a withdrawal through the API.
        counts = inv.seed(plan, seed=seed, advertised=lab_announced)
        log("seeded", {**counts, "advertised": lab_announced})
        # `up` announced exactly the plan (or nothing): that is what the speakers hold now.
        announced = {s.name: inv.desired(s.name) for s in plan.channel_speakers()}
    else:
        announced = {}  # unknown after a controller restart: resend everything
    token_file = admin_token_path(state)
    if fresh or not token_file.exists():
        # The lab's admin token: `bgplab up` makes it, the CLI and drills read it (root's, 0600).
        token = inv.create_token("admin", "admin")
        fd = os.open(token_file.with_suffix(".tmp"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(token + "\n")
        os.replace(token_file.with_suffix(".tmp"), token_file)
        log("admin_token", {"path": str(token_file)})
    obs = observe_dir(state)
    # The edge: every PoP's machines start with the inventory's bindings; changes reach them
    # through the ticker (controller.edge), and each PoP's responder reads its own file.
    initial: dict[str, list[str]] = {}
    for b in inv.bindings():
        initial.setdefault(cidr_of(b.prefix_id), []).append(b.service)
    serving = {n.name: [str(p.prefix) for p in plan.originated_by(n.name)] for n in plan.speakers() if plan.originated_by(n.name)}
    edge = ticker = None
    if serving:
        files = EdgeFiles(state.dir / "edge", serving)
        edge = Edge({pop: machines for pop in serving}, initial, seed=edge_seed, store=files)
    if during_up is not None:
        state = wait_for_up(lab, during_up, log)
    if edge is not None:
        ticker = Ticker(edge.tick, "edge-ticker")
        ticker.start()
    routers = {r.name: r.namespace for r in plan.routers() if r.installs_routes}
    observers = {
        r.name: (router_of(r), state.node_dir(r.name), [str(x.peer_v4) for x in r.sessions if x.peer_kind.value == "exabgp"])
        for r in plan.peer_routers()
    }
    sampler = Sampler(routers, plan.pool_keys, observers, obs)
    sampler.start()
    # Every write goes through the change pipeline: configured state, the guardrails' decision on
    # its diff against operational state, then the speakers (the reconciler, made next: the two
    # know each other) and the edge. The staged rollout: the reconciler keeps a change in its
    # window from the other PoPs (the pipeline's overlay), the end hosts' probes judge it, a
    # ticker decides once its window has passed.
    relay = bool(pop_sources(plan))
    changes = Changes(inv, lambda prefixes: reconciler.on_change(prefixes), edge,
                      health=lambda since, until, ch: probe_health([obs / "probes.jsonl", obs / STAGE_PROBES],
                                                                  since, until, ch.announced_anywhere()),
                      on_stage=lambda cidrs: write_stage_targets(obs, stage_targets(inv, cidrs, relay)))
    reconciler = Reconciler(plan, state, inv, announced, log, overlay=changes.overlay, settled=sampler.wait_quiet)
    reconciler.start()
    if not fresh:
        reconciler.sync()
    start_data_plane(state, plan, inv, seed, probes, extra, machines)

    stager = Ticker(changes.tick, "stage-ticker")
    routes = LabRoutes(reconciler, sampler, obs, ticker, stager)
    # The live dashboard: its costly part (every router's sessions) polls only while a browser
    # is connected (controller.dashboard).
    dashboard = Dashboard(plan, state.node_dir, sampler, inv, changes, obs / "probes.jsonl",
                          versions=state.router_versions)
    app = create_app(ApiContext(inv, changes, Behaviour(), lab=routes, edge=edge, dashboard=dashboard))
    stager.start()

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
        dashboard.stop()
        stager.stop()
        if ticker is not None:
            ticker.stop()
        sampler.stop()
        reconciler.stop()
        inv.close()


def wait_for_up(lab: str, announced: bool, log: EventLog, every: float = 0.05) -> LabState:
    """Until `up` has recorded the lab as up (it started this controller while the lab
    converged); the lab's record as it is then, which this process writes from then on. A lab
    that `up` removed (it failed) ends the controller: `up` ends its processes too. So does an
    `up` that is gone without a word (killed): no one would ever say the lab is up."""
    while True:
        state = LabState.load(lab)
        if state is None or state.status not in ("creating", "up"):
            raise SystemExit(f"lab '{lab}' did not come up ({'gone' if state is None else state.status}): "
                             "the controller it started ends")
        if state.status == "up":
            break
        if not alive(state.data.get("pid", -1)):
            raise SystemExit(f"lab '{lab}' is still being created, but the `up` that creates it (pid "
                             f"{state.data.get('pid')}) is gone: the controller it started ends; `bgplab down {lab}`")
        time.sleep(every)
    if state.announced != announced:
        raise SystemExit(f"lab '{lab}' came up {'with' if state.announced else 'without'} its prefixes announced, "
                         f"but its controller was started for the other (--{'announced' if announced else 'withdrawn'})")
    log("lab_up", {})
    return state


class EdgeStopped(InventoryError):
    """The edge's propagation thread failed: not the client's mistake, 503, with the reason."""

    status = 503


class LabRoutes:
    """The lab's own API routes (observe, verify, sync) over the reconciler and the sampler."""

    def __init__(self, reconciler: Reconciler, sampler: Sampler, observe_dir: Path, ticker: Ticker | None = None,
                 stager: Ticker | None = None):
        self.reconciler, self.sampler, self.observe_dir = reconciler, sampler, observe_dir
        self.ticker, self.stager = ticker, stager

    def observe(self) -> dict[str, Any]:
        if self.ticker is not None and self.ticker.error is not None:
            raise EdgeStopped(f"the edge's propagation stopped: {self.ticker.error!r}")
        if self.stager is not None and self.stager.error is not None:
            raise EdgeStopped(f"the staged rollout's decisions stopped: {self.stager.error!r}")
        return {"sample": self.sampler.latest, "probes": probe_summary(self.observe_dir / "probes.jsonl")}

    def status(self) -> dict[str, Any]:
        r = self.reconciler
        return {"sync": r.last_sync, "verify": r.verification(), "verify_queries": r.verify_queries,
                "edge_error": repr(self.ticker.error) if self.ticker is not None and self.ticker.error else None,
                "stage_error": repr(self.stager.error) if self.stager is not None and self.stager.error else None,
                "suspect": sorted(r.suspect),
                "restarts": {n: link.restarts for n, link in r.links.items()}}

    def verify(self, wait: float = 0.0) -> dict[str, Any]:
        return self.reconciler.verify(wait=wait)

    def sync(self):
        return self.reconciler.sync()

    def resend_all(self):
        return self.reconciler.resend_all()


def main() -> None:
    ap = argparse.ArgumentParser(description="the controller of one lab (started by `bgplab up`)")
    ap.add_argument("--lab", required=True)
    ap.add_argument("--seed", type=int, default=20260220)
    ap.add_argument("--probes", type=int, default=20, help="BYOIP service addresses each end host probes")
    ap.add_argument("--probe-prefix", action="append", default=[], help="a prefix to probe as well (repeatable)")
    ap.add_argument("--edge-machines", type=int, default=4, help="machines per PoP")
    ap.add_argument("--edge-seed", type=int, default=1, help="the order binding changes reach the machines in")
    during = ap.add_mutually_exclusive_group()
    during.add_argument("--announced", dest="during_up", action="store_const", const=True, default=None,
                        help="started by `up` while the lab converges, which announces every prefix")
    during.add_argument("--withdrawn", dest="during_up", action="store_const", const=False,
                        help="started by `up` while the lab converges, which announces nothing")
    args = ap.parse_args()
    serve(args.lab, args.seed, args.probes, args.probe_prefix, args.edge_machines, args.edge_seed, args.during_up)


if __name__ == "__main__":
    main()

"""The mechanism alone: the drill's steps played against the real Addressing API over a freshly
seeded inventory, the edge in memory, on a simulated clock, and no BGP. A replay's controller
figures in seconds, for unit tests, ``bgplab drill mechanism`` and the sensitivity table
(controller.drills.sensitivity); what the network did only a live run measures."""

from __future__ import annotations

import multiprocessing
import os
import random
import tempfile
import warnings
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from controller.api import ApiContext, create_app
from controller.changes import Changes
from controller.client import ApiClient
from controller.drills import model as m
from controller.drills.mechanism import CONFIRM, CanaryWatch, Mechanism
from controller.drills.events import impact_states
from controller.drills.rundir import DrillState
from controller.edge import Edge
from controller.inventory import Inventory, InventoryShape, cidr_of, prefix_id
from controller.observe.probe import CANARY_INTERVAL
from controller.observe.targets import probe_targets
from controller.products import BY_NAME
from lab.errors import BgplabError
from lab.plan import build_plan
from lab.topology import load_topology

with warnings.catch_warnings():
    # Starlette would have its test client on httpx2; on httpx it works and says so on every
    # import, which a user of `bgplab drill mechanism` should not read. That one warning alone.
    warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient` is deprecated")
    from fastapi.testclient import TestClient


@dataclass(frozen=True)
class Constants:
    """The mechanism's own constants (inputs the sensitivity table moves too): how often the
    canary is probed (lab seconds) and how many failed probes in a row confirm its failure."""

    canary_interval: float = CANARY_INTERVAL
    confirm: int = CONFIRM


_PLANS: dict[Path, Any] = {}


def _plan(topology: Path):
    if topology not in _PLANS:
        _PLANS[topology] = build_plan(load_topology(topology), "mechanism")
    return _PLANS[topology]


def simulate(drill: m.Drill, topology: Path, *, speed: float | None = None, realtime: bool = True,
             workdir: Path | None = None, shape: InventoryShape | None = None,
             constants: Constants | None = None) -> dict[str, Any]:
    """Play ``drill``'s mechanism against the real Addressing API over a fresh inventory seeded
    with the drill's ``edge.inventory_seed`` (and ``shape``), the edge in memory, on a simulated
    clock. No BGP: a prefix is reachable while the API has it advertised. Returns the
    controller's figures."""
    constants = constants or Constants()

    plan = _plan(Path(topology))
    speed = speed or drill.speed
    timeline = drill.clock(speed, realtime)
    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        inv = Inventory(Path(tmp) / "inventory.sqlite")
        inv.seed(plan, seed=drill.edge.inventory_seed, shape=shape or InventoryShape())
        initial: dict[str, list[str]] = {}
        for b in inv.bindings():
            initial.setdefault(cidr_of(b.prefix_id), []).append(b.service)
        pops = [n.name for n in plan.speakers() if plan.originated_by(n.name)]
        lab = [0.0]
        edge = Edge({p: drill.edge.machines_per_pop for p in pops}, initial, seed=drill.edge.seed, clock=lambda: lab[0])
        # Entered once: one event loop for every request (a request outside it starts its own).
        admin = {"Authorization": f"Bearer {inv.create_token('admin', 'mechanism')}"}
        hosts = max(1, len(plan.hosts()))
        changes = Changes(inv, lambda changed: {}, edge, clock=lambda: lab[0],
                          health=_model_health(edge, plan, inv, drill, hosts))
        client = TestClient(create_app(ApiContext(inv, changes, edge=edge, clock=lambda: lab[0])),
                            headers=admin).__enter__()
        st = DrillState(speed=speed, start=drill.start, realtime=realtime)
        st.t0 = 1_000_000.0  # any epoch: the lab clock here is simulated
        events: list[dict[str, Any]] = []
        mech = Mechanism(drill, ApiClient("mechanism", http=client), st,
                         lambda kind, **d: events.append({"incident": mech.now, "kind": kind, **d}),
                         timeline, lambda: lab[0], watch=CanaryWatch(constants.confirm))
        mech.begin()
        rng = random.Random(f"probes:{drill.edge.seed}")
        impact_at_stop: dict[str, int] = {}
        incident = 0.0
        deadline = drill.end_offset() + 86400
        while True:
            lab[0] = st.t0 + timeline.lab(incident)
            edge.tick(lab[0])
            changes.tick()
            if mech.canary:
                reachable = inv.get(prefix_id(mech.canary)).advertised
                for _ in range(hosts):  # each end host probes the canary once a round
                    mech.canary_result(incident, reachable and edge.serves(rng.choice(edge.machines), mech.canary, "cdn"))
            mech.advance(incident)
            if mech.detect and not impact_at_stop and not any(t.running for t in mech.tasks.values()):
                impact_at_stop = impact_states(mech.api.prefixes(byoip=True, advertised=False), mech.original)
            if mech.done:
                break
            if incident > deadline:
                raise BgplabError(f"the mechanism of '{drill.name}' did not end within a day of its last step")
            # The probes' clock until detection; after it nothing depends on the step (advance
            # runs every event at its own time), so the simulation strides a minute at a time.
            watching = mech.canary is not None and "failed" not in st.detection
            incident += constants.canary_interval * timeline.speed_at(incident) if watching else 60.0
        mech.finish()
        # Measured on the edge: did every machine end with the API's bindings, and when did the
        # last of them arrive (after the push, its rollout's last machine)?
        lagging = sum(edge.lagging().values())
        edge_done = edge.last_due
        client.__exit__(None, None, None)
        inv.close()
    withdrawn = st.withdrawn_by_task
    customers = {st.owners[c] for c in withdrawn if c in st.owners}
    return {
        "speed": speed,
        "inventory_seed": drill.edge.inventory_seed,
        "withdrawn": len(withdrawn),
        "refused_by_api": sum(t.get("refused", 0) for t in st.tasks.values()),
        "affected_customers": len(customers),
        "byoip_customers": st.byoip_customers,
        "affected_customer_share": round(len(customers) / st.byoip_customers, 4) if st.byoip_customers else None,
        "impact_at_stop": impact_at_stop,
        "dashboard_customers": st.dashboard_customers,
        "dashboard_toggles_ok": len(st.restore_requests.get("dashboard", [])),
        "dashboard_refused": st.dashboard_refused,
        "restored_by_revert": len(st.restore_requests.get("revert", [])),
        "restored_by_config_push": len(st.restore_requests.get("config_push", [])),
        "canary_failed": mech.clock(st.detection["failed"]) if "failed" in st.detection else None,
        "task_stopped": mech.clock(st.detection["stopped"]) if "stopped" in st.detection else None,
        "edge_lagging_at_end": lagging,
        "held": st.pipeline["held"],
        "breaker_tripped": mech.clock(st.pipeline["breaker_trips"][0]["incident"]) if st.pipeline["breaker_trips"] else None,
        "stages_promoted": sum(1 for e in st.pipeline["stages"] if e["action"] == "stage_promoted"),
        "stages_rolled_back": sum(1 for e in st.pipeline["stages"] if e["action"] == "stage_rolled_back"),
        "restored_by_snapshot": len(st.restore_requests.get("snapshot", [])),
        "edge_last_change": mech.clock(timeline.incident(edge_done - st.t0)) if edge_done is not None else None,
    }


def _model_health(edge: Any, plan: Any, inv: Any, drill: m.Drill, hosts: int) -> Callable:
    """The staged rollout's health signal without a network: the probes the live lab would make
    (controller.observe.targets.probe_targets, same seed), each end host once per target, on prefixes some
    PoP announces. A probe fails where the stage's PoP announces the prefix and one of its machines
    does not serve the probed service (a 403 there); elsewhere traffic finds the prefix."""
    targets = probe_targets(plan, inv, drill.edge.inventory_seed, drill.probes)

    def health(since: float, until: float, changes: Any) -> dict[str, Any]:
        stage = changes.stage
        announced = changes.announced_anywhere()
        at_pop = changes.state.announced.get(stage["pop"], set())
        machines = [x for x in edge.machines if x.rpartition("/")[0] == stage["pop"]]
        total = bad = 0
        for t in targets:
            if t["prefix"] not in announced:
                continue
            total += hosts
            service = BY_NAME[t["product"]].service
            if service and t["prefix"] in at_pop and not all(edge.serves(x, t["prefix"], service) for x in machines):
                bad += hosts
        return {"total": total, "not_ok": bad, "basis": "the mechanism's model of the probes (no network)"}

    return health


# (drill, topology, speed[, inventory shape[, constants]])
Job = tuple[Any, ...]


def _simulate_job(job: Job) -> dict[str, Any]:
    drill, topology, speed, *rest = job
    return simulate(drill, topology, speed=speed, shape=rest[0] if rest else None,
                    constants=rest[1] if len(rest) > 1 else None)


def simulate_many(jobs: list[Job], workers: int | None = None) -> list[dict[str, Any]]:
    """Several simulations, one process each on as many cores as there are (each is CPU-bound
    and independent); results in the order of ``jobs``."""
    workers = workers or min(len(jobs), os.cpu_count() or 1)
    if workers <= 1:
        return [_simulate_job(j) for j in jobs]
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork")) as pool:
        return list(pool.map(_simulate_job, jobs))

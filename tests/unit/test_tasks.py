"""The cleanup task, the dashboard and the restores, against the real Addressing API
(FastAPI's TestClient over a seeded inventory, the edge in memory), through the same
client and mechanism the drills use."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from controller.misbehaviours import Behaviour
from tests.unit.apps import make_app
from tests.unit.auth import admin
from controller.client import ApiClient
from controller.drills.mechanism import Mechanism
from controller.drills.model import load_drill
from controller.drills.steps import ConfigPushStep, Dashboard, Revert
from controller.drills.rundir import DrillState
from controller.edge import Edge
from controller.inventory import Inventory, cidr_of
from lab.plan import build_plan
from lab.topology import load_topology

ROOT = Path(__file__).resolve().parents[2]
DRILL = ROOT / "tests/live/drills/mini-replay.yaml"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def setup(tmp_path: Path):
    drill, topology = load_drill(DRILL)
    plan = build_plan(load_topology(topology), "t")
    inv = Inventory(tmp_path / "inventory.sqlite")
    inv.seed(plan, seed=3)
    initial: dict[str, list[str]] = {}
    for b in inv.bindings():
        initial.setdefault(cidr_of(b.prefix_id), []).append(b.service)
    clock = Clock()
    edge = Edge({"edge-a": 2, "edge-b": 2}, initial, seed=1, clock=clock)
    behaviour = Behaviour()
    client = TestClient(make_app(inv, lambda changed: {"ok": True}, behaviour, edge=edge), headers=admin(inv))
    api = ApiClient("t", http=client)
    st = DrillState(speed=60, start=drill.start)
    st.t0 = 1000.0
    events: list[dict] = []
    mech = Mechanism(drill, api, st, lambda kind, **d: events.append({"kind": kind, **d}), drill.clock(60), clock)
    mech.begin()
    return inv, behaviour, mech, edge, clock, events


def test_the_task_pages_in_the_apis_order_and_deletes_with_dependents(setup) -> None:
    inv, behaviour, mech, edge, clock, events = setup
    task = mech.tasks["cleanup"]
    behaviour.set("pending_delete_bug", True)
    task.start(0)
    task.cycle()
    order = [p.cidr for p in inv.prefixes(byoip=True, onboarding_order=True)]
    withdrawn = mech.st.withdrawn_by_task
    # the batch is the API's first six; the first of them is the resolver's pinned prefix,
    # which the API refuses to withdraw: five withdrawn, one refused and logged
    resolver = inv.meta("resolver_web")
    assert order[0] == resolver
    assert set(withdrawn) == set(order[1:6]) and task.refused == 1
    assert any(e["kind"] == "task_refused" for e in events)
    assert inv.by_cidr(resolver).advertised and not any(inv.by_cidr(c).advertised for c in withdrawn)
    # dependents: 3 calls a cycle, prefix after prefix in the same order, the resolver's first
    removed = mech.st.bindings_removed
    assert list(removed)[0] == resolver and sum(len(v) for v in removed.values()) == 3
    assert inv.by_cidr(resolver).bindings == 0
    task.cycle()
    assert len(withdrawn) == 11 and sum(len(v) for v in removed.values()) == 6
    # the task pages: with per_page 4 it still finds what it found in one page
    assert task.spec.per_page < len(order)


def test_with_the_strict_handler_the_task_finds_nothing_and_counts_its_errors(setup) -> None:
    inv, behaviour, mech, edge, clock, events = setup
    task = mech.tasks["cleanup"]
    task.start(0)
    task.cycle()
    assert mech.st.withdrawn_by_task == {} and task.counts() == {"cycles": 1, "errors": 1, "refused": 0, "held": 0}
    assert all(p.advertised for p in inv.prefixes())


def test_dashboard_revert_and_config_push(setup) -> None:
    inv, behaviour, mech, edge, clock, events = setup
    task = mech.tasks["cleanup"]
    behaviour.set("pending_delete_bug", True)
    task.start(0)
    for _ in range(4):
        task.cycle()
    st = mech.st
    affected = set(st.withdrawn_by_task)
    bare = {p.cidr for p in inv.prefixes() if p.cidr in affected and not inv.bindings(p.id)}
    assert bare, "some prefixes lost every binding"
    task.stop()
    mech.steps = []  # this test plays the steps itself
    # every affected customer opens the dashboard and clicks through its prefixes, with its own token
    mech.now = mech.offset = 0.0
    mech._do_dashboard(Dashboard(at="18:00", do="dashboard", fraction=1.0, window="0s", click="1m"))
    assert {t.prefix["cidr"] for t in mech.toggles} == affected
    assert st.dashboard_customers == len({st.owners[c] for c in affected})
    mech.advance(3600.0)
    assert st.dashboard_refused == len(bare)  # no service bound: the API refuses
    assert set(st.restore_requests["dashboard"]) == affected - bare
    # the revert re-advertises what kept a binding (nothing is left here); the push the rest
    mech._do_revert(Revert(at="18:00", do="revert"))
    assert st.restore_requests["revert"] == []
    mech.offset = 3600.0
    mech._do_config_push(ConfigPushStep(at="18:00", do="config_push", per_machine="1m"))
    assert set(st.restore_requests["config_push"]) == bare
    assert all(p.advertised and inv.bindings(p.id) for p in inv.prefixes())
    assert set(st.restore_times) == affected
    # the push's bindings reach the machines one after another, a minute (1 lab s at speed 60) apart
    resolver = inv.meta("resolver_web")
    order = edge.order
    first_due = st.t0 + mech.timeline.lab(3600.0 + 60)
    edge.tick(first_due)
    assert edge.serves(order[0], resolver, "cdn") and not edge.serves(order[1], resolver, "cdn")
    edge.tick(first_due + 3.01)
    assert all(edge.serves(mach, resolver, "cdn") for mach in order)
    assert sum(edge.lagging().values()) == 0 and edge.last_due == pytest.approx(st.t0 + mech.timeline.lab(3600.0 + 240))


def test_a_customer_cannot_toggle_anothers_prefix(setup) -> None:
    inv, behaviour, mech, edge, clock, events = setup
    token = mech.api.call("POST", "/v1/lab/tokens", json={"role": "customer", "name": "c1", "account": "acct-0001"})
    mine, theirs = (next(p for p in inv.prefixes(byoip=True) if p.account_id == a) for a in ("acct-0001", "acct-0002"))
    h = {"Authorization": f"Bearer {token['result']['token']}"}
    http = mech.api.http
    assert http.patch(f"/v1/prefixes/{mine.id}/bgp/status", json={"advertised": False}, headers=h).status_code == 200
    r = http.patch(f"/v1/prefixes/{theirs.id}/bgp/status", json={"advertised": False}, headers=h)
    assert r.status_code == 403 and "does not own" in r.json()["errors"][0]["message"]
    assert inv.get(theirs.id).advertised
    r = http.patch(f"/v1/prefixes/{mine.id}/bgp/status", json={"advertised": True}, headers={"Authorization": "Bearer nope"})
    assert r.status_code == 401 and not inv.get(mine.id).advertised
    r = http.post("/v1/lab/config_push", json={"prefixes": [{"id": mine.id, "services": ["cdn"]}]}, headers=h)
    assert r.status_code == 403 and not inv.get(mine.id).advertised
    # the lab's own routes are the operator's
    for method, path, body in (("GET", "/v1/lab/tokens", None), ("PUT", "/v1/lab/behaviour", {"pending_delete_bug": True}),
                               ("PUT", "/v1/lab/edge", {"delay": 1})):
        r = http.request(method, path, json=body, headers=h)
        assert r.status_code == 403 and "needs the 'admin' permission" in r.json()["errors"][0]["message"], (path, r.text)
    assert behaviour.on["pending_delete_bug"] is False and edge.delay == 0

"""The change pipeline: each guardrail's decision on diffs, held changes and what operators do
with them, the breaker, snapshots and their restore, the audit log, the strict API lock."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from controller.misbehaviours import Behaviour
from controller.api import create_app
from tests.unit.apps import make_app, make_context
from tests.unit.auth import admin
from controller.changes import GUARDRAILS, Diff, Guardrails, Recent
from controller.edge import Edge
from controller.inventory import Inventory, cidr_of
from controller.observe.targets import STAGE_PROBES, stage_targets
from controller.products import BY_NAME
from lab.plan import build_plan
from lab.topology import load_topology

ROOT = Path(__file__).resolve().parents[2]
PLAN = build_plan(load_topology(ROOT / "topologies/byoip-incident.yaml"), "changes")


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def inv(tmp_path: Path) -> Inventory:
    inv = Inventory(tmp_path / "inventory.sqlite")
    inv.seed(PLAN, seed=7)
    return inv


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def sent() -> list:
    return []


@pytest.fixture
def edge(inv: Inventory, clock: Clock) -> Edge:
    initial: dict[str, list[str]] = {}
    for b in inv.bindings():
        initial.setdefault(cidr_of(b.prefix_id), []).append(b.service)
    return Edge({"edge-ams": 2, "edge-fra": 2}, initial, clock=clock)


@pytest.fixture
def client(inv: Inventory, sent: list, edge: Edge, clock: Clock) -> TestClient:
    def on_change(prefixes):
        sent.append(sorted(p.cidr for p in prefixes))
        return {"ok": True}

    return TestClient(make_app(inv, on_change, Behaviour(), edge=edge, clock=clock), headers=admin(inv))


def byoip_ids(inv: Inventory, n: int, skip: int = 0) -> list[str]:
    return [p.id for p in inv.prefixes(byoip=True, onboarding_order=True) if not p.pinned][skip:skip + n]


def withdraw(client: TestClient, ids: list[str]):
    return client.patch("/v1/prefixes/bgp/status", json={"advertised": False, "selector": {"ids": ids}})


def guard(client: TestClient, **g) -> None:
    r = client.put("/v1/lab/guardrails", json=g)
    assert r.status_code == 200, r.text


# -- each guardrail's decision, table-driven ------------------------------------------------

def _diff(withdraw: int = 0, bindings: int = 0, accounts: int = 1, byoip_total: int = 1000) -> Diff:
    return Diff(withdraw=[f"10.{i // 256}.{i % 256}.0/24" for i in range(withdraw)],
                bindings_removed={f"11.0.{i}.0/24": ["cdn"] for i in range(bindings)},
                accounts=[f"a{i}" for i in range(accounts)], byoip_withdrawn=withdraw, byoip_total=byoip_total)


class _P:
    def __init__(self, now: float = 100.0, breaker_open=None):
        self.clock = lambda: now
        self.breaker_open = breaker_open


R = Recent  # (at, withdraw, byoip_withdrawn, withdrawals, accounts)
DECISIONS = [
    # guardrail, settings, diff, recent changes, held?
    ("blast_radius", {}, _diff(500), [], False),  # not configured: nothing held
    ("blast_radius", {"blast_radius": {"max_prefixes": 50}}, _diff(50), [], False),  # at the limit
    ("blast_radius", {"blast_radius": {"max_prefixes": 50}}, _diff(51), [], True),
    ("blast_radius", {"blast_radius": {"max_prefixes": 50}}, _diff(0, bindings=80), [], False),  # no withdrawal
    # a window adds the recent changes inside it, and only those
    ("blast_radius", {"blast_radius": {"max_prefixes": 50, "window": 60}}, _diff(20),
     [R(90, 31, 31, 31, frozenset())], True),
    ("blast_radius", {"blast_radius": {"max_prefixes": 50, "window": 60}}, _diff(20),
     [R(30, 31, 31, 31, frozenset())], False),
    ("blast_radius", {"blast_radius": {"max_prefixes": 50}}, _diff(20), [R(90, 31, 31, 31, frozenset())], False),
    ("blast_radius", {"blast_radius": {"max_share": 0.02}}, _diff(21, byoip_total=1000), [], True),
    ("blast_radius", {"blast_radius": {"max_share": 0.02}}, _diff(20, byoip_total=1000), [], False),
    ("blast_radius", {"blast_radius": {"max_accounts": 3}}, _diff(1, accounts=4), [], True),
    ("blast_radius", {"blast_radius": {"max_accounts": 3, "window": 60}}, _diff(1, accounts=2),
     [R(99, 1, 1, 1, frozenset({"x", "y"}))], True),
    ("blast_radius", {"blast_radius": {"max_accounts": 3, "window": 60}}, _diff(0, bindings=1, accounts=1),
     [R(99, 1, 1, 1, frozenset({"a0", "y"}))], False),  # the same account counts once
    ("breaker", {}, _diff(500), [], False),
    ("breaker", {"breaker": {"max_withdrawals": 25, "window": 600}}, _diff(22), [], False),
    ("breaker", {"breaker": {"max_withdrawals": 25, "window": 600}}, _diff(0, bindings=4),
     [R(90, 22, 22, 22, frozenset())], True),  # 22 + 4 binding removals > 25
    ("breaker", {"breaker": {"max_withdrawals": 25, "window": 5}}, _diff(0, bindings=4),
     [R(90, 22, 22, 22, frozenset())], False),  # outside the window
    ("breaker", {"breaker": {"max_withdrawals": 25, "window": 600}}, _diff(0), [R(99, 60, 60, 60, frozenset())], False),
]


@pytest.mark.parametrize("name,settings,diff,recent,held", DECISIONS)
def test_each_guardrail_decides_on_the_diff_and_its_window(name, settings, diff, recent, held) -> None:
    hold = GUARDRAILS[name](Guardrails.model_validate(settings), diff, recent, _P())
    assert (hold is not None) == held
    if hold:
        assert hold.guardrail == name and hold.reason and hold.figures


def test_an_open_breaker_holds_every_withdrawal_and_no_announcement() -> None:
    g = Guardrails.model_validate({"breaker": {"max_withdrawals": 1000, "window": 1}})
    p = _P(breaker_open={"change": "chg-000001"})
    assert GUARDRAILS["breaker"](g, _diff(1), [], p) is not None
    assert GUARDRAILS["breaker"](g, Diff(announce=["10.0.0.0/24"]), [], p) is None


# -- through the API ----------------------------------------------------------------------

def test_a_held_change_is_a_409_with_its_id_and_diff_and_changes_nothing(client, inv, sent, edge) -> None:
    guard(client, blast_radius={"max_prefixes": 10})
    ids = byoip_ids(inv, 11)
    r = withdraw(client, ids)
    assert r.status_code == 409
    err = r.json()["errors"][0]
    assert err["guardrail"] == "blast_radius" and err["change"].startswith("chg-")
    assert err["diff"]["withdraw"] == 11 and err["diff"]["byoip_share"] == round(11 / 4306, 4)
    assert "above the limit of 10" in err["message"]
    assert all(inv.get(i).advertised for i in ids) and sent == []
    listed = client.get("/v1/changes?status=held").json()
    assert [c["id"] for c in listed["result"]] == [err["change"]] and listed["totals"] == {"held": 1}
    shown = client.get(f"/v1/changes/{err['change']}").json()["result"]
    assert shown["args"] == {"ids": ids, "advertised": False} and shown["diff"]["figures"]["withdraw"] == 11
    # ten pass
    assert withdraw(client, ids[:10]).status_code == 200


def test_approving_a_held_change_applies_it_and_rejecting_ends_it(client, inv, sent) -> None:
    guard(client, blast_radius={"max_prefixes": 5})
    a, b = byoip_ids(inv, 6), byoip_ids(inv, 6, skip=6)
    held_a = withdraw(client, a).json()["errors"][0]["change"]
    held_b = withdraw(client, b).json()["errors"][0]["change"]
    r = client.post(f"/v1/changes/{held_a}/approve")
    assert r.status_code == 200, r.text
    assert r.json()["result"]["diff"]["withdraw"] == 6
    assert not any(inv.get(i).advertised for i in a) and len(sent) == 1
    assert client.post(f"/v1/changes/{held_a}/approve").status_code == 409  # once
    assert client.post(f"/v1/changes/{held_b}/reject").json()["result"]["status"] == "rejected"
    assert client.post(f"/v1/changes/{held_b}/approve").status_code == 409
    assert all(inv.get(i).advertised for i in b)
    assert client.get("/v1/changes/chg-999999").status_code == 404
    assert client.get("/v1/changes/nonsense").status_code == 400
    # customers cannot decide for the operator
    token = inv.create_token("customer", "c", inv.get(a[0]).account_id)
    assert client.post(f"/v1/changes/{held_b}/reject", headers={"Authorization": f"Bearer {token}"}).status_code == 403


def test_the_breaker_trips_holds_withdrawals_lets_restores_through_and_is_reset(client, inv, clock) -> None:
    guard(client, breaker={"max_withdrawals": 25, "window": 600})
    first = byoip_ids(inv, 22)
    assert withdraw(client, first).status_code == 200
    removed = 0
    for pid in first:
        for b in client.get(f"/v1/prefixes/{pid}/bindings").json()["result"]:
            r = client.delete(f"/v1/prefixes/{pid}/bindings/{b['id']}")
            if r.status_code == 409:
                break
            removed += 1
        if r.status_code == 409:
            break
    assert removed == 3 and r.json()["errors"][0]["guardrail"] == "breaker"
    status = client.get("/v1/lab/guardrails").json()["result"]
    assert status["breaker_open"]["withdrawals"] == 26
    # open: any withdrawal is held, even one prefix long after; an announcement passes
    clock.t += 3600
    assert withdraw(client, byoip_ids(inv, 1, skip=100)).json()["errors"][0]["guardrail"] == "breaker"
    restore = client.patch(f"/v1/prefixes/{first[-1]}/bgp/status", json={"advertised": True})
    assert restore.status_code == 200, restore.text
    assert client.post("/v1/lab/breaker/reset").status_code == 200
    assert client.post("/v1/lab/breaker/reset").status_code == 409  # not open
    assert withdraw(client, byoip_ids(inv, 1, skip=100)).status_code == 200
    actions = [e["action"] for e in client.get("/v1/audit?limit=1000").json()["result"]]
    assert actions.count("breaker_tripped") == 1 and "breaker_reset" in actions


def test_snapshot_diff_and_restore_bring_back_every_prefix_and_binding(client, inv, sent, edge, clock) -> None:
    before = {p.cidr: (p.advertised, sorted(s)) for p in inv.prefixes()
              for s in [[b.service for b in inv.bindings(p.id)]]}
    snap = client.post("/v1/snapshots", json={"label": "known good"}).json()["result"]
    assert snap["announced"]["edge-ams"] == 6500 and snap["label"] == "known good"
    hit = byoip_ids(inv, 40)
    assert withdraw(client, hit).status_code == 200
    for pid in hit[:15]:
        for b in inv.bindings(pid):
            assert client.delete(f"/v1/prefixes/{pid}/bindings/{b.id}").status_code == 200
    diff = client.get(f"/v1/snapshots/{snap['id']}/diff").json()["result"]
    assert diff["prefixes"] == 40 and diff["announce"] == 40 and diff["withdraw"] == 0
    assert diff["bindings_back"] == sum(len(before[cidr_of(p)][1]) for p in hit[:15])
    # every change also left a snapshot before it; the labelled one is listed
    listed = client.get("/v1/snapshots").json()["result"]
    assert snap["id"] in [s["id"] for s in listed] and listed[-1]["label"] == "base"
    sent.clear()
    r = client.post(f"/v1/snapshots/{snap['id']}/restore")
    assert r.status_code == 200, r.text
    assert r.json()["result"]["prefixes"] == 40
    assert len(sent) == 1 and len(sent[0]) == 40  # one sync: packed, not prefix by prefix
    after = {p.cidr: (p.advertised, sorted(s)) for p in inv.prefixes()
             for s in [[b.service for b in inv.bindings(p.id)]]}
    assert after == before
    clock.t += 10
    edge.tick(clock.t)
    assert sum(edge.lagging().values()) == 0  # the edge has every binding back
    assert client.post(f"/v1/snapshots/{snap['id']}/restore").status_code == 409  # nothing left to restore
    assert client.get("/v1/snapshots/snap-999999").status_code == 404
    # the base snapshot restores too (the state the lab came up with)
    assert client.get("/v1/snapshots/snap-000000/diff").json()["result"]["prefixes"] == 0


def test_the_strict_api_guardrail_locks_the_2026_02_20_handler_out(client) -> None:
    assert client.put("/v1/lab/behaviour", json={"pending_delete_bug": True}).status_code == 200
    guard(client, strict_api=True)
    assert client.get("/v1/lab/behaviour").json()["result"] == {"pending_delete_bug": False}
    r = client.put("/v1/lab/behaviour", json={"pending_delete_bug": True})
    assert r.status_code == 409 and "strict_api" in r.json()["errors"][0]["message"]
    assert client.get("/v1/prefixes?pending_delete&byoip=true").status_code == 400


def test_guardrail_settings_are_validated_and_kept_across_a_restart(client, inv, edge, clock) -> None:
    bad = client.put("/v1/lab/guardrails", json={"breaker": {"max_withdrawals": 0, "window": 10}, "nope": 1})
    assert bad.status_code == 400
    problems = " ".join(bad.json()["errors"][0]["problems"])
    assert "breaker.max_withdrawals" in problems and "nope" in problems
    guard(client, blast_radius={"max_accounts": 3, "window": 60})
    again = TestClient(make_app(inv, None, Behaviour(), edge=edge, clock=clock), headers=admin(inv))
    assert again.get("/v1/lab/guardrails").json()["result"]["guardrails"] == {
        "strict_api": False, "blast_radius": {"max_accounts": 3, "window": 60.0}}


def test_the_audit_log_says_who_what_how_many_and_which_accounts(client, inv) -> None:
    ids = byoip_ids(inv, 3)
    withdraw(client, ids)
    p = inv.get(ids[0])
    token = inv.create_token("customer", p.account_id, p.account_id)
    client.patch(f"/v1/prefixes/{ids[0]}/bgp/status", json={"advertised": True}, headers={"Authorization": f"Bearer {token}"})
    log = client.get("/v1/audit").json()["result"]
    w, a = log[-2], log[-1]
    assert w["actor"] == "admin:test-admin" and w["action"] == "bgp_status" and w["prefixes"] == 3
    assert set(w["accounts"]) == {inv.get(i).account_id for i in ids} and w["change_id"].startswith("chg-")
    assert a["actor"] == f"customer:{p.account_id}" and a["prefixes"] == 1 and a["detail"]["announce"] == 1
    assert client.get("/v1/audit?after=x").status_code == 400


# -- the staged, health-mediated rollout ------------------------------------------------------

def staged_client(inv, sent, edge, clock, health, on_stage=None):
    ctx = make_context(inv, lambda prefixes: sent.append(sorted(p.cidr for p in prefixes)) or {"ok": True},
                       Behaviour(), edge=edge, clock=clock, health=health, on_stage=on_stage)
    client = TestClient(create_app(ctx), headers=admin(inv))
    guard(client, staged={"first": "edge-ams", "health_window": 60})
    return client, ctx.changes


def test_a_staged_withdrawal_reaches_one_pop_first_and_every_pop_once_healthy(inv, sent, edge, clock) -> None:
    client, ch = staged_client(inv, sent, edge, clock, lambda since, until, pipeline: {"total": 100, "not_ok": 1})
    ids = byoip_ids(inv, 5)
    cidrs = {cidr_of(i) for i in ids}
    assert withdraw(client, ids).status_code == 200
    # configured: withdrawn; operational: gone from edge-ams only; the reconciler keeps edge-fra as it was
    assert not any(inv.get(i).advertised for i in ids)
    assert not cidrs & ch.state.announced["edge-ams"] and cidrs <= ch.state.announced["edge-fra"]
    assert cidrs <= ch.overlay("edge-fra", inv.desired("edge-fra")) and not cidrs & ch.overlay("edge-ams", inv.desired("edge-ams"))
    # one change at a time: the next withdrawal waits
    r = withdraw(client, byoip_ids(inv, 1, skip=50))
    assert r.status_code == 409 and r.json()["errors"][0]["guardrail"] == "staged"
    assert ch.tick() is None  # the window has not passed
    clock.t += 61
    assert ch.tick() == "promoted"  # 1% unhealthy is within the limit
    assert not cidrs & ch.state.announced["edge-fra"] and ch.overlay("edge-fra", {"x"}) == {"x"}
    assert ch.stage is None and withdraw(client, byoip_ids(inv, 1, skip=50)).status_code == 200
    actions = [e["action"] for e in client.get("/v1/audit?limit=1000").json()["result"]]
    assert actions.count("stage_started") == 2 and actions.count("stage_promoted") == 1


def test_an_unhealthy_stage_is_rolled_back_on_its_pop_and_the_other_never_moved(inv, sent, edge, clock) -> None:
    client, ch = staged_client(inv, sent, edge, clock, lambda since, until, pipeline: {"total": 100, "not_ok": 7})
    pid = byoip_ids(inv, 1, skip=3)[0]
    cidr = cidr_of(pid)
    services = sorted(b.service for b in inv.bindings(pid))
    b = inv.bindings(pid)[0]
    assert client.delete(f"/v1/prefixes/{pid}/bindings/{b.id}").status_code == 200
    clock.t += 1
    edge.tick(clock.t)
    ams = [m for m in edge.machines if m.startswith("edge-ams")]
    fra = [m for m in edge.machines if m.startswith("edge-fra")]
    assert not all(edge.serves(m, cidr, b.service) for m in ams) and all(edge.serves(m, cidr, b.service) for m in fra)
    clock.t += 60
    assert ch.tick() == "rolled_back"
    assert sorted(x.service for x in inv.bindings(pid)) == services  # configured state back
    clock.t += 1
    edge.tick(clock.t)
    assert all(edge.serves(m, cidr, b.service) for m in ams + fra)
    status = client.get("/v1/lab/guardrails").json()["result"]
    assert status["stages"] == {"promoted": 0, "rolled_back": 1} and status["stage"] is None


def test_the_probes_watch_each_stage_s_own_prefixes_while_it_is_in_its_window(inv, sent, edge, clock) -> None:
    # A stage's prefixes go to the end hosts' probes as it enters its window, and come off once
    # it is decided: the lab's fixed sample seldom holds any of a 22-prefix change.
    told: list[list[str]] = []
    client, ch = staged_client(inv, sent, edge, clock, lambda since, until, pipeline: {"total": 10, "not_ok": 0},
                               on_stage=told.append)
    ids = byoip_ids(inv, 22)
    assert withdraw(client, ids).status_code == 200
    assert len(told) == 1 and sorted(told[0]) == sorted(cidr_of(i) for i in ids)
    targets = stage_targets(inv, told[0], relay=True)
    bound = {cidr_of(b.prefix_id): b.service for b in inv.bindings()}
    assert 0 < len(targets) <= STAGE_PROBES and all(t["prefix"] in told[0] for t in targets)
    for t in targets:  # each by a product bound to it that an end host probes, at its first address
        assert t["product"] in {b.service for b in inv.bindings() if cidr_of(b.prefix_id) == t["prefix"]}
        assert BY_NAME[t["product"]].probe in ("http", "relay") 
        assert t["address"] == str(ipaddress.ip_network(t["prefix"]).network_address + 1)
    assert not any(BY_NAME[t["product"]].probe == "relay" for t in stage_targets(inv, told[0], relay=False))
    assert stage_targets(inv, [c for c in told[0] if c not in bound], relay=True) == []
    clock.t += 61
    assert ch.tick() == "promoted" and told[-1] == []


def test_no_health_signal_means_no_promotion(inv, sent, edge, clock) -> None:
    client, ch = staged_client(inv, sent, edge, clock, lambda since, until, pipeline: {"total": 0, "not_ok": 0})
    ids = byoip_ids(inv, 2)
    withdraw(client, ids)
    clock.t += 61
    assert ch.tick() == "rolled_back" and all(inv.get(i).advertised for i in ids)


def test_a_drill_changing_pace_rescales_what_is_left_of_a_stage_window(inv, sent, edge, clock) -> None:
    client, ch = staged_client(inv, sent, edge, clock, lambda since, until, pipeline: {"total": 1, "not_ok": 0})
    withdraw(client, byoip_ids(inv, 1))
    clock.t += 30  # half the 60 s window
    guard(client, staged={"first": "edge-ams", "health_window": 6})  # ten times faster now
    assert ch.stage["until"] == pytest.approx(clock.t + 3)
    bad = client.put("/v1/lab/guardrails", json={"staged": {"first": "edge-nowhere", "health_window": 5}})
    assert bad.status_code == 400 and "no PoP 'edge-nowhere'" in bad.json()["errors"][0]["message"]


def test_a_promotion_a_speaker_cannot_take_surfaces(inv, edge, clock) -> None:
    from controller.changes import PropagationFailed

    calls = []

    def on_change(prefixes):
        calls.append(len(prefixes))
        return {"ok": True} if len(calls) == 1 else {"errors": ["edge-fra: down"], "failed": {"edge-fra": {"error": "down"}}}

    ctx = make_context(inv, on_change, Behaviour(), edge=edge, clock=clock,
                       health=lambda since, until, pipeline: {"total": 10, "not_ok": 0})
    client = TestClient(create_app(ctx), headers=admin(inv))
    guard(client, staged={"first": "edge-ams", "health_window": 5})
    assert withdraw(client, byoip_ids(inv, 2)).status_code == 200
    clock.t += 6
    with pytest.raises(PropagationFailed, match="edge-fra"):
        ctx.changes.tick()  # the service's ticker stops on it and its routes report it
    log = [e["action"] for e in client.get("/v1/audit").json()["result"]]
    assert "stage_promoted" in log


def test_a_stored_change_read_back_with_a_wrong_or_missing_argument_is_said_so() -> None:
    from controller.changes.kinds import BgpStatus, change_of
    from controller.inventory import InventoryError

    assert change_of("bgp_status", {"ids": ["a"], "advertised": False}) == BgpStatus(["a"], False)
    with pytest.raises(InventoryError, match="no kind of change 'nope'"):
        change_of("nope", {})
    with pytest.raises(InventoryError, match="has no argument colour"):
        change_of("bgp_status", {"ids": [], "advertised": True, "colour": 1})
    with pytest.raises(InventoryError, match="needs advertised"):
        change_of("bgp_status", {"ids": []})

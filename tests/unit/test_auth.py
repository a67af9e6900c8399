"""Tokens and their scopes: every route needs a token of the lab's, each role reaches what its
permission grants and nothing else, a request outside its scope is a 403 that changes nothing."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from controller.api import PERMISSIONS, ROLES, routes
from controller.misbehaviours import Behaviour
from controller.api import create_app
from tests.unit.apps import make_context
from controller.dashboard import Dashboard
from controller.inventory import Inventory, cidr_of
from controller.edge import Edge
from lab.plan import build_plan
from lab.topology import load_topology
from tests.unit.auth import bearer

ROOT = Path(__file__).resolve().parents[2]
PLAN = build_plan(load_topology(ROOT / "topologies/byoip-incident.yaml"), "auth")


class FakeLab:
    def verify(self, wait=0.0):
        return {"ok": True}

    def sync(self):
        return self

    def resend_all(self):
        return self

    def as_dict(self):
        return {"errors": [], "failed": {}}

    def status(self):
        return {}

    def observe(self):
        return {}


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    inv = Inventory(tmp_path_factory.mktemp("auth") / "inventory.sqlite")
    inv.seed(PLAN, seed=3)
    initial: dict[str, list[str]] = {}
    for b in inv.bindings():
        initial.setdefault(cidr_of(b.prefix_id), []).append(b.service)
    edge = Edge({"edge-ams": 1, "edge-fra": 1}, initial)
    ctx = make_context(inv, lambda p: {"ok": True}, Behaviour(), lab=FakeLab(), edge=edge)
    dash = Dashboard(PLAN, lambda n: tmp_path_factory.mktemp("nodes") / n, None, inv, ctx.changes,
                     tmp_path_factory.mktemp("obs") / "probes.jsonl", sessions_every=3600)
    client = TestClient(create_app(replace(ctx, dashboard=dash)), raise_server_exceptions=False)
    byoip = [p for p in inv.prefixes(byoip=True, onboarding_order=True) if not p.pinned]
    mine = byoip[10]
    theirs = next(p for p in byoip if p.account_id != mine.account_id)
    tokens = {role: inv.create_token(role, f"t-{role}") for role in ROLES if role != "customer"}
    tokens["customer"] = inv.create_token("customer", "t-customer", mine.account_id)
    return {"inv": inv, "client": client, "mine": mine, "theirs": theirs, "tokens": tokens}


def request_for(method: str, path: str, pid: str, inv: Inventory) -> tuple[str, dict | None]:
    """A well-formed request for a route, acting on prefix ``pid``."""
    binding = next(iter(inv.bindings(pid)), None)
    url = (path.replace("{prefix_id}", pid).replace("{bid}", binding.id if binding else "bnd-000000")
           .replace("{change_id}", "chg-000001").replace("{snapshot_id}", "snap-000000"))
    if path == "/v1/lab/stream":
        url += "?frames=1"  # the topology and one frame, then the end (it streams for ever otherwise)
    bodies = {
        ("PATCH", "/v1/prefixes/{prefix_id}/bgp/status"): {"advertised": False},
        ("PATCH", "/v1/prefixes/bgp/status"): {"advertised": False, "selector": {"ids": [pid]}},
        ("POST", "/v1/prefixes/{prefix_id}/bindings"): {"service": "spectrum"},
        ("PUT", "/v1/lab/behaviour"): {"pending_delete_bug": True},
        ("POST", "/v1/lab/config_push"): {"prefixes": [{"id": pid, "services": ["cdn"]}]},
        ("POST", "/v1/lab/tokens"): {"role": "read-only", "name": "made"},
        ("PUT", "/v1/lab/edge"): {"delay": 1},
        ("PUT", "/v1/lab/guardrails"): {"breaker": {"max_withdrawals": 5, "window": 10}},
        ("POST", "/v1/snapshots"): {"label": "x"},
        ("PUT", "/v1/lab/drill"): {"name": "d", "clock": "17:48:00", "speed": 60},
        ("PUT", "/v1/lab/faults/api"): {"kind": "slow", "seconds": 0.001, "delay": 0.001},
    }
    return url, bodies.get((method, path))


def fingerprint(inv: Inventory) -> str:
    with inv.lock:
        rows = [list(inv.db.execute(q)) for q in (
            "SELECT id, advertised, deleted, pending_delete FROM prefixes ORDER BY id",
            "SELECT prefix_id, service FROM bindings ORDER BY id",
            "SELECT COUNT(*) FROM tokens", "SELECT value FROM meta WHERE key = 'guardrails'",
            "SELECT COUNT(*) FROM change_records", "SELECT COUNT(*) FROM snapshot_labels")]
    return json.dumps([[tuple(r) for r in x] for x in rows])


ROUTES = sorted(k for k, v in PERMISSIONS.items() if v is not None)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(role=st.sampled_from(sorted(ROLES)), route=st.sampled_from(ROUTES), foreign=st.booleans())
def test_no_token_reaches_outside_its_scope(lab, role: str, route: tuple[str, str], foreign: bool) -> None:
    inv, client = lab["inv"], lab["client"]
    method, path = route
    pid = (lab["theirs"] if foreign else lab["mine"]).id
    url, body = request_for(method, path, pid, inv)
    before = fingerprint(inv)
    r = client.request(method, url, json=body, headers=bearer(lab["tokens"][role]))
    allowed = PERMISSIONS[route] in ROLES[role]
    names_a_prefix = "{prefix_id}" in path or route == ("PATCH", "/v1/prefixes/bgp/status")
    if role == "customer" and allowed and foreign and names_a_prefix:
        allowed = False  # a customer's permissions stop at its own account
    if not allowed:
        assert r.status_code == 403, (role, route, r.status_code, r.text)
        assert fingerprint(inv) == before, f"{role} {method} {url}: refused, yet something changed"
    else:
        assert r.status_code not in (401, 403), (role, route, r.status_code, r.text)
        assert r.status_code < 500, (role, route, r.status_code, r.text)


def test_every_route_but_the_health_check_needs_a_token_of_the_lab(lab) -> None:
    inv, client = lab["inv"], lab["client"]
    assert client.get("/v1/health").status_code == 200
    for method, path in ROUTES:
        url, body = request_for(method, path, lab["mine"].id, inv)
        assert client.request(method, url, json=body).status_code == 401, (method, path)
        r = client.request(method, url, json=body, headers=bearer("bgp-not-a-token"))
        assert r.status_code == 401 and "no token of this lab's" in r.json()["errors"][0]["message"]


# What answers without a token, all of it: the health check, and the API's description for a
# browser (the OpenAPI document and the two pages that render it: the routes' shapes, which the
# repository publishes anyway, and no data), and the dashboard's page (no data: it reads the
# stream with the token it is given).
OPEN = {"/v1/health", "/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc", "/dashboard"}


def test_what_answers_without_a_token_is_exactly_the_open_list(lab) -> None:
    client = lab["client"]
    answered = set()
    for route in routes(client.app):
        for method in sorted(getattr(route, "methods", None) or {"GET"}):
            if method == "HEAD" or "{" in route.path:
                continue
            if client.request(method, route.path).status_code != 401:
                answered.add(route.path)
    assert answered == OPEN
    assert "tok" not in client.get("/openapi.json").text.lower().replace("token", "")


def test_no_token_is_derived_from_the_seed_or_stored_in_the_clear(tmp_path) -> None:
    """Tokens are random (two inventories of one seed share none) and kept as digests: the
    inventory file holds no secret, and a token derived as bgplab's were before is nobody's."""
    import hashlib
    import os
    import sqlite3
    import stat

    made = []
    for n in (1, 2):
        inv = Inventory(tmp_path / f"inv{n}.sqlite")
        inv.seed(PLAN, seed=20260220)
        made.append({role: inv.create_token(role, role) for role in ("admin", "operator", "task", "read-only")})
        made[-1]["customer"] = inv.create_token("customer", "c", "acct-0001")
        inv.close()
        assert stat.S_IMODE(os.stat(tmp_path / f"inv{n}.sqlite").st_mode) == 0o600
    assert not set(made[0].values()) & set(made[1].values())
    inv = Inventory(tmp_path / "inv1.sqlite")
    for role, token in made[0].items():
        assert inv.token_info(token)["role"] == role
    for acct in ("acct-operator", "acct-resolver", "acct-0001"):
        derived = "tok-" + hashlib.sha256(f"bgplab:20260220:{acct}".encode()).hexdigest()[:32]
        assert inv.token_info(derived) is None
    inv.close()
    db = sqlite3.connect(tmp_path / "inv1.sqlite")
    dump = "\n".join(db.iterdump())
    assert not any(t in dump for t in made[0].values())
    assert "token" not in {c[1] for c in db.execute("PRAGMA table_info(accounts)")}


def test_a_customer_lists_only_its_own_prefixes(lab) -> None:
    client, mine = lab["client"], lab["mine"]
    h = bearer(lab["tokens"]["customer"])
    listed = client.get("/v1/prefixes", headers=h).json()["result"]
    assert listed and {p["account_id"] for p in listed} == {mine.account_id}
    assert client.get(f"/v1/prefixes?account_id={lab['theirs'].account_id}", headers=h).status_code == 403
    assert client.get(f"/v1/prefixes?cidr={lab['theirs'].cidr}", headers=h).status_code == 403


def test_tokens_are_made_by_an_admin_and_named_in_the_audit_log(lab) -> None:
    client = lab["client"]
    h = bearer(lab["tokens"]["admin"])
    r = client.post("/v1/lab/tokens", json={"role": "task", "name": "automation"}, headers=h)
    assert r.status_code == 201
    task = r.json()["result"]["token"]
    assert task.startswith("bgp-") and "token" not in json.dumps(client.get("/v1/lab/tokens", headers=h).json()["result"])
    bad = client.post("/v1/lab/tokens", json={"role": "customer", "name": "c"}, headers=h)
    assert bad.status_code == 400 and "names its account" in bad.json()["errors"][0]["message"]
    assert client.post("/v1/lab/tokens", json={"role": "root", "name": "x"}, headers=h).status_code == 400
    assert client.put("/v1/lab/guardrails", json={}, headers=h).status_code == 200  # whatever the property test set
    pid = lab["inv"].prefixes(byoip=True, onboarding_order=True)[40].id
    assert client.patch(f"/v1/prefixes/{pid}/bgp/status", json={"advertised": False}, headers=bearer(task)).status_code == 200
    log = client.get("/v1/audit?limit=10000", headers=h).json()["result"]
    assert log[-1]["actor"] == "task:automation" and log[-1]["action"] == "bgp_status"
    assert any(e["action"] == "token_create" and e["detail"]["name"] == "automation" for e in log)
    # a task may change prefixes but not the API's behaviour
    assert client.put("/v1/lab/behaviour", json={"pending_delete_bug": True}, headers=bearer(task)).status_code == 403


def test_a_customer_naming_a_deleted_prefix_of_another_account_gets_403_not_404(lab) -> None:
    """Found by the property test in CI: the bulk route checked existence before scope."""
    client, inv = lab["client"], lab["inv"]
    assert client.put("/v1/lab/guardrails", json={}, headers=bearer(lab["tokens"]["admin"])).status_code == 200
    victim = next(p for p in inv.prefixes(byoip=True, onboarding_order=True)[60:]
                  if p.account_id != lab["mine"].account_id and not p.pinned)
    assert client.delete(f"/v1/prefixes/{victim.id}", headers=bearer(lab["tokens"]["admin"])).status_code == 200
    r = client.patch("/v1/prefixes/bgp/status", json={"advertised": True, "selector": {"ids": [victim.id]}},
                     headers=bearer(lab["tokens"]["customer"]))
    assert r.status_code == 403 and "does not own" in r.json()["errors"][0]["message"]


def test_a_refusal_of_scope_is_in_the_audit_log_with_its_caller(lab) -> None:
    c, t = lab["client"], lab["tokens"]
    assert c.get("/v1/lab/tokens", headers=bearer(t["task"])).status_code == 403
    r = c.delete(f"/v1/prefixes/{lab['theirs'].id}", headers=bearer(t["customer"]))
    assert r.status_code == 403
    log = c.get("/v1/audit", params={"limit": 10000}, headers=bearer(t["admin"])).json()["result"]
    denied = [e for e in log if e["action"] == "denied"][-2:]
    assert [e["actor"] for e in denied] == ["task:t-task", "customer:t-customer"]
    assert denied[0]["detail"]["path"] == "/v1/lab/tokens" and denied[1]["detail"]["method"] == "DELETE"


def test_an_api_fault_answers_one_token_503_or_late_and_ends(lab) -> None:
    c, t = lab["client"], lab["tokens"]
    admin = bearer(t["admin"])
    for body, fragment in (({"kind": "slow", "seconds": 5}, "needs delay"), ({"kind": "unavailable"}, "needs seconds"),
                           ({"kind": "down", "seconds": 5}, "body.kind")):
        r = c.put("/v1/lab/faults/api", json=body, headers=admin)
        assert r.status_code == 400 and fragment in r.json()["errors"][0]["message"], r.json()
    assert c.put("/v1/lab/faults/api", json={"kind": "unavailable", "seconds": 60, "actor": "task:t-task"},
                 headers=bearer(t["operator"])).status_code == 403
    r = c.put("/v1/lab/faults/api", json={"kind": "unavailable", "seconds": 60, "actor": "task:t-task"}, headers=admin)
    assert r.status_code == 200 and r.json()["result"]["kind"] == "unavailable"
    r = c.get("/v1/prefixes", params={"limit": 1}, headers=bearer(t["task"]))
    assert r.status_code == 503 and r.headers["retry-after"] == "1" and "injected fault" in r.json()["errors"][0]["message"]
    assert c.get("/v1/prefixes", params={"limit": 1}, headers=bearer(t["read-only"])).status_code == 200  # others: not
    assert c.get("/v1/health").status_code == 200
    c.put("/v1/lab/faults/api", json={"kind": "slow", "seconds": 60, "delay": 0.3, "actor": "task:t-task"}, headers=admin)
    import time

    t0 = time.monotonic()
    assert c.get("/v1/prefixes", params={"limit": 1}, headers=bearer(t["task"])).status_code == 200
    assert time.monotonic() - t0 >= 0.3
    assert c.put("/v1/lab/faults/api", json={"kind": "none"}, headers=admin).json()["result"] is None
    assert c.get("/v1/prefixes", params={"limit": 1}, headers=bearer(t["task"])).status_code == 200


def test_changes_are_listed_by_actor_with_their_arguments(lab) -> None:
    c, t, inv = lab["client"], lab["tokens"], lab["inv"]
    # an account the other tests here leave alone (the property test may delete mine and theirs)
    untouched = {lab["mine"].account_id, lab["theirs"].account_id}
    p = next(x for x in inv.prefixes(byoip=True) if x.account_id not in untouched and not x.pinned and not x.deleted)
    token = bearer(inv.create_token("customer", "t-actor", p.account_id))
    assert c.patch(f"/v1/prefixes/{p.id}/bgp/status", json={"advertised": False}, headers=token).status_code == 200
    assert c.patch(f"/v1/prefixes/{p.id}/bgp/status", json={"advertised": True}, headers=token).status_code == 200
    rows = c.get("/v1/changes", params={"actor": "customer:t-actor", "full": "true"},
                 headers=bearer(t["admin"])).json()["result"]
    assert [x["args"]["advertised"] for x in rows] == [True, False] and all(x["actor"] == "customer:t-actor" for x in rows)
    assert "args" not in c.get("/v1/changes", headers=bearer(t["admin"])).json()["result"][0]
    assert c.get("/v1/changes", params={"full": "maybe"}, headers=bearer(t["admin"])).status_code == 400

"""The Addressing API: every endpoint, every error, both pending_delete behaviours."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from controller.misbehaviours import Behaviour
from tests.unit.apps import make_app
from tests.unit.auth import admin
from controller.inventory import OPERATOR, Inventory, customer_sizes, prefix_id
from lab.plan import build_plan
from lab.topology import load_topology

ROOT = Path(__file__).resolve().parents[2]
PLAN = build_plan(load_topology(ROOT / "topologies/byoip-incident.yaml"), "api")


@pytest.fixture
def inv(tmp_path: Path) -> Inventory:
    inv = Inventory(tmp_path / "inventory.sqlite")
    inv.seed(PLAN, seed=7)
    return inv


@pytest.fixture
def changes() -> list:
    return []


@pytest.fixture
def client(inv: Inventory, changes: list) -> TestClient:
    def on_change(prefixes):
        changes.append([p.id for p in prefixes])
        return {"announced": sum(p.advertised for p in prefixes)}

    return TestClient(make_app(inv, on_change, Behaviour()), headers=admin(inv))


def test_seed_counts_and_determinism(tmp_path: Path, inv: Inventory) -> None:
    assert len(inv.prefixes()) == 6501
    assert len(inv.prefixes(byoip=True)) == 4306
    accounts = inv.accounts()
    customers = [a for a in accounts if a["kind"] == "byoip"]
    # the resolver's website prefix is the first of the BYOIP pools; the customers own the rest
    assert len(customers) == 300 and sum(a["prefixes"] for a in customers) == 4305
    web = inv.by_cidr(inv.meta("resolver_web"))
    assert web.byoip and web.pinned and web.account_id == "acct-resolver"
    assert inv.by_cidr(inv.meta("resolver_dns")).account_id == "acct-resolver"
    sizes = sorted((a["prefixes"] for a in customers), reverse=True)
    assert sizes[0] > 20 * sizes[len(sizes) // 2], "per-customer counts should be heavy-tailed"
    assert all(len(inv.bindings(p.id)) >= 1 for p in inv.prefixes(limit=200))
    again = Inventory(tmp_path / "again.sqlite")
    again.seed(PLAN, seed=7)
    assert [(p.id, p.account_id) for p in again.prefixes()] == [(p.id, p.account_id) for p in inv.prefixes()]
    assert [(b.prefix_id, b.service) for b in again.bindings()] == [(b.prefix_id, b.service) for b in inv.bindings()]


def test_customer_sizes_sum_and_floor() -> None:
    import random

    sizes = customer_sizes(4306, 300, random.Random(1))
    assert sum(sizes) == 4306 and min(sizes) >= 1 and len(sizes) == 300


def test_openapi_is_served(client: TestClient) -> None:
    doc = client.get("/openapi.json").json()
    assert "/v1/prefixes" in doc["paths"] and "/v1/prefixes/{prefix_id}/bgp/status" in doc["paths"]


def test_list_filters(client: TestClient) -> None:
    r = client.get("/v1/prefixes", params={"account_id": "acct-0001"}).json()
    assert r["success"] and r["count"] == len(r["result"]) > 0
    assert {p["account_id"] for p in r["result"]} == {"acct-0001"}
    v6 = client.get("/v1/prefixes", params={"family": "ipv6", "byoip": "true"}).json()
    assert v6["count"] == 306
    assert client.get("/v1/prefixes", params={"limit": 5}).json()["count"] == 5
    assert client.get("/v1/prefixes", params={"cidr": "100.64.1.0/24"}).json()["result"][0]["id"] == "100.64.1.0_24"


@pytest.mark.parametrize(
    "params,status,fragment",
    [
        ({"family": "ipv5"}, 400, "'family' is ipv4 or ipv6"),
        ({"advertised": "maybe"}, 400, "'advertised' needs a value, true or false"),
        ({"limit": "0"}, 400, "'limit' is an integer from 1 to 1000000"),
        ({"limit": "99999999999999999999"}, 400, "'limit' is an integer from 1 to 1000000"),
        ({"account_id": "acct-9999"}, 404, "no account 'acct-9999'"),
        ({"cidr": "100.64.0.1/24"}, 400, "is not a prefix in CIDR form"),
        ({"cidr": "8.8.8.0/24"}, 404, "the lab does not own 8.8.8.0/24"),
        ({"pendingdelete": "true"}, 400, "unknown query parameter 'pendingdelete'"),
    ],
)
def test_list_errors(client: TestClient, params: dict, status: int, fragment: str) -> None:  
    r = client.get("/v1/prefixes", params=params)
    assert r.status_code == status
    assert fragment in r.json()["errors"][0]["message"]


def test_pending_delete_flag_default_rejects_empty_value(client: TestClient, inv: Inventory) -> None:
    inv.request_deletion("100.64.1.0_24")
    r = client.get("/v1/prefixes?pending_delete")
    assert r.status_code == 400 and "'pending_delete' needs a value" in r.json()["errors"][0]["message"]
    r = client.get("/v1/prefixes?pending_delete=true").json()
    assert [p["id"] for p in r["result"]] == ["100.64.1.0_24"]


def test_pending_delete_flag_with_the_2026_02_20_behaviour_returns_everything(client: TestClient, inv: Inventory) -> None:
    inv.request_deletion("100.64.1.0_24")
    assert client.put("/v1/lab/behaviour", json={"pending_delete_bug": True}).json()["result"] == {"pending_delete_bug": True}
    r = client.get("/v1/prefixes?pending_delete").json()
    assert r["count"] == 6501  # the bug: every prefix, not the one pending deletion
    # an explicit value still filters
    assert client.get("/v1/prefixes?pending_delete=true").json()["count"] == 1
    client.put("/v1/lab/behaviour", json={"pending_delete_bug": False})
    assert client.get("/v1/prefixes?pending_delete").status_code == 400


def test_get_and_patch_bgp_status(client: TestClient, changes: list) -> None:
    assert client.get("/v1/prefixes/100.64.1.0_24/bgp/status").json()["result"]["advertised"] is True
    r = client.patch("/v1/prefixes/100.64.1.0_24/bgp/status", json={"advertised": False})
    assert r.status_code == 200 and r.json()["result"]["advertised"] is False
    assert changes == [["100.64.1.0_24"]]
    assert client.get("/v1/prefixes/100.64.1.0_24").json()["result"]["advertised"] is False


@pytest.mark.parametrize(
    "path,body,status,fragment",
    [
        ("/v1/prefixes/100.64.1.0_24/bgp/status", {"advertised": "no"}, 400, "body.advertised: Input should be a valid boolean"),
        ("/v1/prefixes/100.64.1.0_24/bgp/status", {}, 400, "body.advertised: Field required"),
        ("/v1/prefixes/100.64.1.0_24/bgp/status", {"advertised": True, "x": 1}, 400, "body.x: Extra inputs are not permitted"),
        ("/v1/prefixes/8.8.8.0_24/bgp/status", {"advertised": False}, 404, "no prefix '8.8.8.0_24'"),
    ],
)
def test_patch_errors_change_nothing(client: TestClient, inv: Inventory, changes: list, path, body, status, fragment) -> None:
    before = [(p.id, p.advertised) for p in inv.prefixes()]
    r = client.patch(path, json=body)
    assert r.status_code == status and fragment in r.json()["errors"][0]["message"]
    assert [(p.id, p.advertised) for p in inv.prefixes()] == before and changes == []


def test_bulk_by_account_and_count(client: TestClient, inv: Inventory, changes: list) -> None:
    big = max(inv.accounts(), key=lambda a: a["prefixes"] if a["kind"] == "byoip" else 0)["id"]
    r = client.patch("/v1/prefixes/bgp/status", json={"advertised": False, "selector": {"account_id": big, "count": 3}})
    ids = r.json()["result"]["ids"]
    assert len(ids) == 3 and changes == [ids]
    assert all(inv.get(i).account_id == big and not inv.get(i).advertised for i in ids)
    assert len(inv.prefixes(advertised=False)) == 3


@pytest.mark.parametrize(
    "selector,status,fragment",
    [
        ({}, 400, "selector names no prefixes"),
        ({"ids": []}, 400, "selector.ids is empty"),
        ({"ids": ["100.64.1.0_24", "nope"]}, 404, "no prefix 'nope'"),
        ({"ids": ["100.64.1.0_24"], "account_id": "acct-0001"}, 400, "either ids or filters"),
        ({"account_id": "acct-9999"}, 404, "no account 'acct-9999'"),
        ({"family": "ipx"}, 400, "body.selector.family"),
        ({"count": 0}, 400, "body.selector.count"),
    ],
)
def test_bulk_errors_change_nothing(client: TestClient, inv: Inventory, changes: list, selector, status, fragment) -> None:
    r = client.patch("/v1/prefixes/bgp/status", json={"advertised": False, "selector": selector})
    assert r.status_code == status and fragment in r.json()["errors"][0]["message"], r.json()
    assert changes == [] and len(inv.prefixes(advertised=False)) == 0


def test_bindings_lifecycle(client: TestClient) -> None:
    pid = "100.64.1.0_24"
    before = client.get(f"/v1/prefixes/{pid}/bindings").json()["result"]
    r = client.post(f"/v1/prefixes/{pid}/bindings", json={"service": "spectrum"})
    assert r.status_code == 201
    bid = r.json()["result"]["id"]
    assert len(client.get(f"/v1/prefixes/{pid}/bindings").json()["result"]) == len(before) + 1
    assert client.delete(f"/v1/prefixes/{pid}/bindings/{bid}").json()["result"]["deleted"] is True
    r = client.delete(f"/v1/prefixes/{pid}/bindings/{bid}")
    assert r.status_code == 404 and f"has no binding '{bid}'" in r.json()["errors"][0]["message"]
    r = client.post(f"/v1/prefixes/{pid}/bindings", json={"service": "dns"})
    assert r.status_code == 400 and "body.service" in r.json()["errors"][0]["message"]


def test_a_deletion_request_can_be_cancelled(client: TestClient, inv: Inventory) -> None:
    pid = "100.64.1.0_24"
    assert client.delete(f"/v1/prefixes/{pid}/deletion_request").status_code == 409  # none to cancel
    client.post(f"/v1/prefixes/{pid}/deletion_request")
    r = client.delete(f"/v1/prefixes/{pid}/deletion_request")
    assert r.status_code == 200 and r.json()["result"]["pending_delete"] is False
    assert client.get("/v1/prefixes", params={"pending_delete": "true"}).json()["count"] == 0
    assert client.delete("/v1/prefixes/1.2.3.0_24/deletion_request").status_code == 404


def test_deletion_request_then_delete(client: TestClient, inv: Inventory, changes: list) -> None:
    pid = "100.64.1.0_24"
    assert client.post(f"/v1/prefixes/{pid}/deletion_request").json()["result"]["pending_delete"] is True
    r = client.delete(f"/v1/prefixes/{pid}").json()["result"]
    assert r["deleted"] is True and r["advertised"] is False
    assert inv.bindings(pid) == [] and changes == [[pid]]
    # deleted prefixes are gone from lists, and cannot be toggled or deleted again
    assert client.get("/v1/prefixes", params={"cidr": "100.64.1.0/24"}).json()["result"][0]["deleted"] is True
    r = client.patch(f"/v1/prefixes/{pid}/bgp/status", json={"advertised": True})
    assert r.status_code == 409 and "has been deleted" in r.json()["errors"][0]["message"]
    assert client.delete(f"/v1/prefixes/{pid}").status_code == 409
    assert client.post(f"/v1/prefixes/{pid}/bindings", json={"service": "cdn"}).status_code == 409
    assert client.get("/v1/prefixes").json()["count"] == 6500


def test_unknown_prefix_everywhere(client: TestClient) -> None:
    for method, path in [
        ("get", "/v1/prefixes/1.2.3.0_24"),
        ("get", "/v1/prefixes/1.2.3.0_24/bgp/status"),
        ("get", "/v1/prefixes/1.2.3.0_24/bindings"),
        ("post", "/v1/prefixes/1.2.3.0_24/deletion_request"),
        ("delete", "/v1/prefixes/1.2.3.0_24"),
    ]:
        r = getattr(client, method)(path)
        assert r.status_code == 404 and "no prefix '1.2.3.0_24'" in r.json()["errors"][0]["message"], (method, path)


def test_behaviour_wrong_type(client: TestClient) -> None:
    r = client.put("/v1/lab/behaviour", json={"pending_delete_bug": "yes"})
    assert r.status_code == 400


ACCOUNTS = [f"acct-{i:04d}" for i in range(1, 301)] + [OPERATOR]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    account=st.one_of(st.none(), st.sampled_from(ACCOUNTS)),
    family=st.one_of(st.none(), st.sampled_from(["ipv4", "ipv6"])),
    byoip=st.one_of(st.none(), st.booleans()),
    count=st.one_of(st.none(), st.integers(min_value=1, max_value=400)),
)
def test_a_selector_never_reaches_outside_what_it_names(shared_client, account, family, byoip, count) -> None:
    client, inv = shared_client
    sel = {k: v for k, v in {"account_id": account, "family": family, "byoip": byoip, "count": count}.items() if v is not None}
    before = {p.id: p.advertised for p in inv.prefixes()}
    r = client.patch("/v1/prefixes/bgp/status", json={"advertised": False, "selector": sel})
    if account is None and family is None and byoip is None:
        # no real filter (nothing, or only count): it names nothing, and nothing changes
        assert r.status_code == 400 and "selector names no prefixes" in r.json()["errors"][0]["message"]
        assert {p.id: p.advertised for p in inv.prefixes()} == before
        return
    assert r.status_code == 200, r.json()
    ids = set(r.json()["result"].get("ids", []))
    # exactly what the selector names, worked out from the inventory independently
    # (in the API's onboarding order; a withdrawal's filters leave the pinned resolver prefix out)
    named = [p.id for p in inv.prefixes(onboarding_order=True) if not p.pinned and (account is None or p.account_id == account)
             and (family is None or p.family == int(family[-1])) and (byoip is None or p.byoip == byoip)]
    assert ids == set(named[:count] if count is not None else named)
    after = {p.id: p.advertised for p in inv.prefixes()}
    # what it names did change, and nothing else did
    assert {i for i in after if after[i] != before[i]} == {i for i in ids if before[i]}
    assert all(not after[i] for i in ids)
    # put them back for the next example
    if ids:
        inv.set_advertised(sorted(ids), True)


@pytest.fixture(scope="module")
def shared_client(tmp_path_factory):
    inv = Inventory(tmp_path_factory.mktemp("prop") / "inventory.sqlite")
    inv.seed(PLAN, seed=3)
    return TestClient(make_app(inv), headers=admin(inv)), inv


def test_prefix_id_is_url_safe() -> None:
    assert prefix_id("2001:db8:4000::/48") == "2001:db8:4000::_48"


def test_a_prefix_without_bindings_cannot_be_advertised(client: TestClient, inv: Inventory) -> None:
    pid = "100.64.1.0_24"
    client.patch(f"/v1/prefixes/{pid}/bgp/status", json={"advertised": False})
    for b in inv.bindings(pid):
        client.delete(f"/v1/prefixes/{pid}/bindings/{b.id}")
    assert client.get(f"/v1/prefixes/{pid}").json()["result"]["bindings"] == 0
    r = client.patch(f"/v1/prefixes/{pid}/bgp/status", json={"advertised": True})
    assert r.status_code == 409 and "no service binding" in r.json()["errors"][0]["message"]
    assert inv.get(pid).advertised is False


def test_config_push_restores_deleted_prefixes(client: TestClient, inv: Inventory, changes: list) -> None:
    pid = "100.64.1.0_24"
    client.delete(f"/v1/prefixes/{pid}")
    r = client.post("/v1/lab/config_push", json={"prefixes": [{"id": pid, "services": ["cdn", "spectrum"]}]})
    assert r.status_code == 200 and r.json()["result"]["prefixes"] == 1
    p = client.get(f"/v1/prefixes/{pid}").json()["result"]
    assert p["advertised"] and not p["deleted"] and p["bindings"] == 2
    assert changes[-1] == [pid]


@pytest.mark.parametrize(
    "body,status,fragment",
    [
        ({"prefixes": []}, 400, "body.prefixes"),
        ({"prefixes": [{"id": "100.64.1.0_24", "services": []}]}, 400, "services"),
        ({"prefixes": [{"id": "9.9.9.0_24", "services": ["cdn"]}]}, 404, "no prefix '9.9.9.0_24'"),
        ({"prefixes": [{"id": "100.64.1.0_24", "services": ["dns"]}]}, 400, "services"),
    ],
)
def test_config_push_errors(client: TestClient, body, status, fragment) -> None:
    r = client.post("/v1/lab/config_push", json=body)
    assert r.status_code == status and fragment in r.json()["errors"][0]["message"], r.json()


# -- a hostile client: never a 5xx, never a hang, a 4xx changes nothing ---------------------


class FakeLab:
    """The lab routes' controller for unit tests of input handling (the real one is tested live)."""

    class Result:
        def as_dict(self) -> dict:
            return {"announced": 0, "withdrawn": 0, "errors": [], "failed": {}}

    def verify(self, wait: float = 0.0) -> dict:
        return {"ok": True, "waited": wait}

    def sync(self):
        return self.Result()

    def resend_all(self):
        return self.Result()

    def status(self) -> dict:
        return {}

    def observe(self) -> dict:
        return {}


@pytest.fixture
def lab_client(inv: Inventory) -> TestClient:
    return TestClient(make_app(inv, lambda prefixes: {"ok": True}, Behaviour(), lab=FakeLab()), raise_server_exceptions=False,
                      headers=admin(inv))


@pytest.mark.parametrize("method,url,body,fragment", [
    ("GET", "/v1/prefixes?limit=99999999999999999999", None, "'limit' is an integer from 1 to 1000000"),
    ("POST", "/v1/lab/verify?wait=nan", None, "'wait' is seconds from 0 to 60"),
    ("POST", "/v1/lab/verify?wait=1e9", None, "'wait' is seconds from 0 to 60"),
    ("POST", "/v1/lab/verify?wait=-1", None, "'wait' is seconds from 0 to 60"),
    ("POST", "/v1/lab/sync?full=maybe", None, "'full' needs a value"),
    ("GET", "/v1/prefixes?pending_delete=true&pending_delete=", None, "'pending_delete' given more than once"),
    ("GET", "/v1/prefixes?byoip=true&byoip=true", None, "'byoip' given more than once"),
    ("GET", "/v1/health?verbose=1", None, "unknown query parameter 'verbose' for /v1/health (it takes none)"),
    ("POST", "/v1/lab/verify?wiat=3", None, "unknown query parameter 'wiat' for /v1/lab/verify (it takes wait)"),
    ("PATCH", "/v1/prefixes/bgp/status", {"advertised": False, "selector": {}}, "selector names no prefixes"),
    ("PATCH", "/v1/prefixes/bgp/status", {"advertised": False, "selector": {"count": 5}}, "selector names no prefixes"),
    ("PATCH", "/v1/prefixes/bgp/status", {"advertised": False, "selector": {"advertised": True}}, "selector names no prefixes"),
    ("PATCH", "/v1/prefixes/bgp/status", {"advertised": False, "selector": {"all": True, "byoip": True}}, "cannot be combined with byoip"),
    ("PATCH", "/v1/prefixes/bgp/status", {"advertised": False, "selector": {"count": 10**12, "byoip": True}}, "selector.count"),
])
def test_bad_requests_get_a_4xx_that_names_the_problem(lab_client: TestClient, inv: Inventory, method, url, body, fragment) -> None:
    before = _digest(inv)
    r = lab_client.request(method, url, json=body)
    assert 400 <= r.status_code < 500 and fragment in r.json()["errors"][0]["message"], r.text
    assert _digest(inv) == before


def test_all_true_acts_on_everything_and_says_so(lab_client: TestClient, inv: Inventory) -> None:
    r = lab_client.patch("/v1/prefixes/bgp/status", json={"advertised": False, "selector": {"all": True}})
    # every prefix but the pinned one (the resolver's website), which the answer counts
    assert r.status_code == 200 and r.json()["result"]["prefixes"] == 6500
    assert r.json()["result"]["pinned_skipped"] == 1
    assert [p.cidr for p in inv.prefixes() if p.advertised] == [inv.meta("resolver_web")]


def test_verify_takes_a_bounded_wait(lab_client: TestClient) -> None:
    assert lab_client.post("/v1/lab/verify?wait=2.5").json()["result"]["waited"] == 2.5
    assert lab_client.post("/v1/lab/verify").json()["result"]["waited"] == 5.0


def test_a_change_that_does_not_reach_a_speaker_is_rolled_back_with_a_503(inv: Inventory) -> None:
    calls = []

    def on_change(prefixes):
        calls.append(len(prefixes))
        if len(calls) == 1:  # the change itself: one speaker fails
            return {"ok": False, "errors": ["edge-fra: broken pipe"],
                    "failed": {"edge-fra": {"error": "broken pipe", "announce": 0, "withdraw": 1, "prefixes": ["100.64.1.0/24"]}}}
        return {"ok": True, "errors": []}  # then the others are brought back to the rolled-back inventory

    client = TestClient(make_app(inv, on_change, Behaviour()), headers=admin(inv))
    r = client.patch("/v1/prefixes/100.64.1.0_24/bgp/status", json={"advertised": False})
    assert r.status_code == 503
    err = r.json()["errors"][0]
    assert "did not reach edge-fra and was rolled back" in err["message"] and err["failed"]["edge-fra"]["withdraw"] == 1
    assert err["rolled_back"] and err["speakers_restored"]
    assert inv.get("100.64.1.0_24").advertised is True  # the inventory claims nothing the network lacks
    assert calls == [1, 1]


def _digest(inv: Inventory) -> tuple:
    return (tuple((p.id, p.advertised, p.deleted, p.pending_delete) for p in inv.prefixes(include_deleted=True)),
            tuple((b.id, b.prefix_id, b.service) for b in inv.bindings()))


PATHS = ["/v1/health", "/v1/accounts", "/v1/prefixes", "/v1/prefixes/100.64.1.0_24", "/v1/prefixes/100.64.1.0_24/bgp/status",
         "/v1/prefixes/bgp/status", "/v1/prefixes/100.64.1.0_24/bindings", "/v1/prefixes/100.64.1.0_24/deletion_request",
         "/v1/prefixes/nope_99", "/v1/bindings", "/v1/lab/behaviour", "/v1/lab/config_push", "/v1/lab/verify",
         "/v1/lab/sync", "/v1/lab/observe", "/v1/lab/reconcile"]
KEYS = ["account_id", "advertised", "pending_delete", "family", "byoip", "cidr", "limit", "wait", "full", "x", ""]
VALUES = st.one_of(st.sampled_from(["", "true", "false", "1", "0", "nan", "inf", "-1", "1e308", "99999999999999999999",
                                    "ipv4", "ipv6", "acct-0001", "100.64.1.0/24", "::/0", "%00", "\u2603"]),
                   st.text(max_size=12))
QUERY = st.lists(st.tuples(st.sampled_from(KEYS), VALUES), max_size=4)
JSON = st.recursive(st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=8)),
                    lambda children: st.one_of(st.lists(children, max_size=3),
                                               st.dictionaries(st.sampled_from(
                                                   ["advertised", "selector", "ids", "all", "byoip", "count", "family",
                                                    "account_id", "prefixes", "id", "services", "service",
                                                    "pending_delete_bug", "x"]), children, max_size=4)),
                    max_leaves=8)


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(method=st.sampled_from(["GET", "POST", "PATCH", "PUT", "DELETE"]), path=st.sampled_from(PATHS), query=QUERY,
       body=st.one_of(st.none(), JSON))
def test_no_request_gets_a_5xx_or_hangs_and_a_4xx_changes_nothing(hostile, method, path, query, body) -> None:
    client, inv, _ = hostile
    before = _digest(inv)
    t0 = time.monotonic()
    r = client.request(method, path, params=query, json=body)
    took = time.monotonic() - t0
    assert r.status_code < 500, (method, path, query, body, r.text[:300])
    assert took < 2.0, (method, path, query, body, took)
    if r.status_code >= 400:
        assert r.json()["errors"][0]["message"]
        assert _digest(inv) == before, (method, path, query, body)
    elif _digest(inv) != before:  # a change that went through: put the inventory back for the next example
        hostile[1] = _fresh_inventory(hostile[2])
        hostile[0] = TestClient(make_app(hostile[1], lambda p: {"ok": True}, Behaviour(), lab=FakeLab()),
                                raise_server_exceptions=False, headers=admin(hostile[1]))


SMALL = build_plan(load_topology(ROOT / "tests/live/topologies/mini-clique.yaml"), "hostile")


def _fresh_inventory(directory: Path) -> Inventory:
    path = directory / f"inv-{time.monotonic_ns()}.sqlite"
    inv = Inventory(path)
    inv.seed(SMALL, seed=5)  # small, so that re-seeding after a change that went through is cheap
    return inv


@pytest.fixture(scope="module")
def hostile(tmp_path_factory):
    d = tmp_path_factory.mktemp("hostile")
    inv = _fresh_inventory(d)
    return [TestClient(make_app(inv, lambda p: {"ok": True}, Behaviour(), lab=FakeLab()), raise_server_exceptions=False,
                       headers=admin(inv)), inv, d]


def test_prefixes_page_in_onboarding_order(client: TestClient, inv: Inventory) -> None:
    everything = client.get("/v1/prefixes", params={"byoip": "true"}).json()["result"]
    created = [p["created"] for p in everything]
    assert created == sorted(created) and everything[0]["cidr"] == inv.meta("resolver_web")
    # onboarding sessions interleave customers: the first hundred come from many of them
    assert len({p["account_id"] for p in everything[:100]}) >= 10  # sessions of ~6 prefixes
    pages, page = [], 1
    while True:
        r = client.get("/v1/prefixes", params={"byoip": "true", "per_page": 1000, "page": page}).json()
        pages += r["result"]
        assert r["result_info"]["page"] == page and r["result_info"]["count"] == len(r["result"])
        if not r["result_info"]["more"]:
            break
        page += 1
    assert [p["id"] for p in pages] == [p["id"] for p in everything] and page == 5
    for params, fragment in (({"page": 2}, "'page' needs 'per_page'"), ({"per_page": 0}, "'per_page' is an integer"),
                             ({"per_page": 1001}, "from 1 to 1000"), ({"per_page": 5, "page": "x"}, "'page' is an integer"),
                             ({"per_page": 5, "limit": 5}, "either limit or page/per_page")):
        r = client.get("/v1/prefixes", params=params)
        assert r.status_code == 400 and fragment in r.json()["errors"][0]["message"], r.text


def test_a_pinned_prefix_is_never_withdrawn(client: TestClient, inv: Inventory) -> None:
    web = inv.by_cidr(inv.meta("resolver_web"))
    other = inv.prefixes(byoip=True)[5]
    r = client.patch(f"/v1/prefixes/{web.id}/bgp/status", json={"advertised": False})
    assert r.status_code == 409 and r.json()["errors"][0]["pinned"] == [web.id]
    # named by id in a bulk change: the whole change is refused, nothing changes
    r = client.patch("/v1/prefixes/bgp/status", json={"advertised": False, "selector": {"ids": [other.id, web.id]}})
    assert r.status_code == 409 and inv.get(other.id).advertised and inv.get(web.id).advertised
    # selected by a filter: left out, and the answer counts it
    r = client.patch("/v1/prefixes/bgp/status", json={"advertised": False, "selector": {"account_id": "acct-resolver"}})
    assert r.json()["result"]["pinned_skipped"] == 1 and inv.get(web.id).advertised
    assert client.delete(f"/v1/prefixes/{web.id}").status_code == 409 and not inv.get(web.id).deleted
    # its bindings can go (its website then answers 403 while it stays advertised)
    for b in inv.bindings(web.id):
        assert client.delete(f"/v1/prefixes/{web.id}/bindings/{b.id}").status_code == 200
    assert inv.get(web.id).advertised and inv.get(web.id).bindings == 0


def test_a_bad_rollout_changes_nothing(inv: Inventory) -> None:
    from controller.edge import Edge

    edge = Edge({"a": 2}, {})
    client = TestClient(make_app(inv, lambda p: {}, Behaviour(), edge=edge), headers=admin(inv))
    pid = inv.prefixes(byoip=True)[3].id
    inv.set_advertised([pid], False)
    body = {"prefixes": [{"id": pid, "services": ["cdn"]}], "rollout": [{"machine": "a/0", "at": 0}]}
    r = client.post("/v1/lab/config_push", json=body)
    assert r.status_code == 400 and "leaves out a/1" in r.json()["errors"][0]["message"]
    assert not inv.get(pid).advertised and edge.pending == []
    body["rollout"].append({"machine": "a/1", "at": 5})
    r = client.post("/v1/lab/config_push", json=body)
    assert r.status_code == 200 and inv.get(pid).advertised and len(edge.pending) == 2
    no_edge = TestClient(make_app(inv, lambda p: {}, Behaviour()), headers=admin(inv))
    assert no_edge.post("/v1/lab/config_push", json=body).status_code == 400


def test_a_lab_seeded_withdrawn_has_every_prefix_withdrawn(tmp_path: Path) -> None:
    inv = Inventory(tmp_path / "withdrawn.sqlite")
    inv.seed(PLAN, seed=7, advertised=False)
    # the pinned prefix too: an initial state, not a withdrawal through the API
    assert not any(p.advertised for p in inv.prefixes()) and inv.by_cidr(inv.meta("resolver_web")).pinned

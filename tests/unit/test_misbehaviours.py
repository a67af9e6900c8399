"""The API's misbehaviours as a table (controller.misbehaviours): named entries, switched on by
name from a drill or the API, each citing the incident it comes from."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from tests.unit.apps import make_app
from controller.drills.model import Drill
from controller.inventory import Inventory
from controller.misbehaviours import TABLE, Behaviour
from lab.plan import build_plan
from lab.topology import load_topology
from tests.unit.auth import admin
from tests.unit.test_drill import GOOD

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def client(tmp_path_factory) -> TestClient:
    inv = Inventory(tmp_path_factory.mktemp("inv") / "inventory.sqlite")
    inv.seed(build_plan(load_topology(ROOT / "topologies/minimal.yaml"), "mis"), seed=7)
    return TestClient(make_app(inv, lambda p: {"ok": True}, Behaviour()), headers=admin(inv))


def test_each_entry_names_its_incident_and_cites_the_postmortem() -> None:
    for name, entry in TABLE.items():
        assert entry.name == name and entry.incident
        assert f"reference/incident-{entry.incident}" in (type(entry).__doc__ or "")  # the postmortem it comes from
    assert "pending_delete_bug" in TABLE


def test_the_2026_02_20_entry_loosens_only_its_own_flag(client: TestClient) -> None:
    client.put("/v1/lab/behaviour", json={"pending_delete_bug": True})
    try:
        assert client.get("/v1/prefixes?pending_delete").status_code == 200
        r = client.get("/v1/prefixes?advertised")  # another flag: still refused
        assert r.status_code == 400 and "'advertised' needs a value" in r.json()["errors"][0]["message"]
    finally:
        client.put("/v1/lab/behaviour", json={"pending_delete_bug": False})


def test_the_api_lists_every_entry_and_refuses_an_unknown_name(client: TestClient) -> None:
    assert set(client.get("/v1/lab/behaviour").json()["result"]) == set(TABLE)
    r = client.put("/v1/lab/behaviour", json={"no_such_bug": True})
    assert r.status_code == 400 and "no_such_bug" in r.text
    assert client.get("/v1/lab/behaviour").json()["result"] == {n: False for n in TABLE}
    r = client.put("/v1/lab/behaviour", json={})
    assert r.status_code == 400 and "name at least one misbehaviour" in r.json()["errors"][0]["message"]


def test_strict_api_holds_a_schema_loosening_entry_off(client: TestClient) -> None:
    assert client.put("/v1/lab/guardrails", json={"strict_api": True}).status_code == 200
    try:
        r = client.put("/v1/lab/behaviour", json={"pending_delete_bug": True})
        assert r.status_code == 409 and "pending_delete_bug" in r.json()["errors"][0]["message"]
    finally:
        client.put("/v1/lab/guardrails", json={"strict_api": False})


def test_a_drill_switches_an_entry_by_name_and_is_told_of_an_unknown_one() -> None:
    doc = copy.deepcopy(GOOD)
    doc["steps"].insert(0, {"at": "17:48", "do": "behaviour", "pending_delete_bug": True})
    step = Drill.model_validate(doc).steps[0]
    assert step.misbehaviours == {"pending_delete_bug": True}
    assert step.model_dump()["pending_delete_bug"] is True  # dumped as the drill file says it
    for bad, word in (({"at": "17:48", "do": "behaviour", "no_such_bug": True}, "no_such_bug"),
                      ({"at": "17:48", "do": "behaviour"}, "names at least one misbehaviour")):
        doc["steps"][0] = bad
        with pytest.raises(Exception, match=word):
            Drill.model_validate(doc)


def test_behaviour_refuses_an_unknown_name() -> None:
    with pytest.raises(ValueError, match="unknown misbehaviour 'nope'"):
        Behaviour(nope=True)

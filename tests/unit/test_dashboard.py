"""The live dashboard's page and stream, over the real API with no lab: the topology first,
then frames; the stream takes its token in the address (a browser's EventSource sends no
headers) and refuses a request without one; the page loads nothing from the network."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from controller.misbehaviours import Behaviour
from controller.api import create_app
from tests.unit.apps import make_context
from controller.dashboard import PAGE, Dashboard, topology
from controller.inventory import Inventory
from lab.plan import build_plan
from lab.topology import load_topology

ROOT = Path(__file__).resolve().parents[2]
PLAN = build_plan(load_topology(ROOT / "topologies/byoip-incident.yaml"), "dash")


class Sampled:
    latest = {"observer_received": {"observer": {"ipv4": 5000, "ipv6": 1500}}, "kernel": {"t1": {"ipv4": 10, "ipv6": 2}}}


@pytest.fixture
def app(tmp_path: Path):
    inv = Inventory(tmp_path / "inv.sqlite")
    inv.seed(PLAN, seed=1)
    ctx = make_context(inv, lambda p: {"ok": True}, Behaviour())
    dash = Dashboard(PLAN, lambda n: tmp_path / n, Sampled(), inv, ctx.changes, tmp_path / "probes.jsonl", sessions_every=60)
    app = create_app(replace(ctx, dashboard=dash))
    yield TestClient(app), inv, dash
    dash.stop()


def test_topology_is_the_plan_s_nodes_and_links() -> None:
    t = topology(PLAN)
    assert {n["name"] for n in t["nodes"]} == set(PLAN.nodes)
    assert {"a": "edge-fra", "b": "t1", "bgp": True} in t["links"]
    assert len(t["links"]) == len({(x["a"], x["b"]) for x in t["links"]})


def test_the_stream_sends_the_topology_then_frames_with_the_token_in_the_address(app) -> None:
    client, inv, dash = app
    token = inv.create_token("read-only", "dash-test")
    assert client.get("/v1/lab/stream").status_code == 401
    assert client.get("/v1/lab/stream", params={"token": "nope"}).status_code == 401
    assert client.get("/v1/lab/stream", params={"token": token, "x": "1"}).status_code == 400
    events = []
    with client.stream("GET", "/v1/lab/stream", params={"token": token}) as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        for line in r.iter_lines():
            if line.startswith("data: "):
                events.append(json.loads(line[6:]))
            if len(events) == 2:
                break
    topo, frame = events
    assert {n["name"] for n in topo["nodes"]} == set(PLAN.nodes)
    assert frame["observer"] == 6500 and frame["kernel"] == {"t1": 12}
    assert frame["impact"] == {"withdrawn_bound": 0, "withdrawn_unbound": 0, "advertised": 4306}
    assert frame["drill"] is None


def test_a_drill_tells_the_dashboard_its_clock(app) -> None:
    client, inv, _ = app
    admin = {"Authorization": f"Bearer {inv.create_token('admin', 'a')}"}
    body = {"name": "replay", "clock": "17:56:00", "speed": 240, "next_step": "20:20 revert",
            "marks": [{"t": 1.0, "label": "sub-task deployed"}]}
    assert client.put("/v1/lab/drill", json=body, headers=admin).status_code == 200
    ro = {"Authorization": f"Bearer {inv.create_token('read-only', 'r')}"}
    r = client.get("/v1/lab/stream", params={"token": ro["Authorization"][7:], "frames": "1"})
    frame = json.loads(r.text.split("data: ")[2])
    assert frame["drill"]["clock"] == "17:56:00" and frame["drill"]["next_step"] == "20:20 revert"
    assert client.put("/v1/lab/drill", json=body, headers=ro).status_code == 403
    assert client.put("/v1/lab/drill", json={**body, "speed": 0}, headers=admin).status_code == 400


def test_the_page_loads_nothing_from_the_network(app) -> None:
    client, _, _ = app
    page = client.get("/dashboard")
    assert page.status_code == 200 and page.text == PAGE.read_text()
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", page.text)
    assert "EventSource(`/v1/lab/stream" in page.text


def test_the_mrt_tail_reads_a_dump_as_it_is_written(tmp_path: Path) -> None:
    """Read in pieces while the file grows (a record cut in half is read once whole), it finds
    every withdrawal the whole file's reading finds, and the AS-path changes between them."""
    from controller.dashboard import MrtTail
    from controller.observe import mrt

    src = ROOT / "tests" / "fixtures" / "run-mini" / "mrt" / "collector.mrt"
    vps = json.loads((src.parents[1] / "lab.json").read_text())["lab"]["vantage_points"]
    data = src.read_bytes()
    growing = tmp_path / "updates.mrt"
    tail = MrtTail(growing, vps, keep=100_000, per_read=7)
    for cut in range(0, len(data) + 1, 997):  # 997 bytes at a time: records are cut in the middle
        growing.write_bytes(data[:cut])
        tail.read()
    growing.write_bytes(data)
    while True:
        before = tail.offset
        tail.read()
        if tail.offset == before:
            break
    assert tail.offset == len(data)
    whole = [e for e in mrt.events(src) if e.peer_ip in vps]
    assert sum(1 for e in tail.events if e["kind"] == "withdraw") == sum(1 for e in whole if e.kind == "withdraw")
    changes = [e for e in tail.events if e["kind"] == "path"]
    assert changes and all(e["as_path"] != e["was"] for e in changes)


def test_the_mrt_tail_says_a_damaged_record_inside_the_file(tmp_path: Path) -> None:
    """A record damaged inside the dump (not the last one, still being written) is an error
    naming the file and the byte, as controller.observe.mrt raises it, not a silent stop."""
    import pytest

    from controller.dashboard import MrtTail
    from controller.observe.mrt import MrtError

    src = ROOT / "tests" / "fixtures" / "run-mini" / "mrt" / "collector.mrt"
    vps = json.loads((src.parents[1] / "lab.json").read_text())["lab"]["vantage_points"]
    data = bytearray(src.read_bytes())
    # the second record's MRT type (bytes 4-5 of its header) made nonsense: 0xffff
    first_len = int.from_bytes(data[8:12], "big")
    second = 12 + first_len
    data[second + 4:second + 6] = b"\xff\xff"
    bad = tmp_path / "updates.mrt"
    bad.write_bytes(bytes(data))
    tail = MrtTail(bad, vps)
    with pytest.raises(MrtError, match=f"updates.mrt: record 2 at byte {second}"):
        tail.read()


def test_a_script_can_ask_for_a_few_frames(app) -> None:
    client, inv, _ = app
    token = inv.create_token("read-only", "few")
    r = client.get("/v1/lab/stream", params={"token": token, "frames": "2"})
    assert r.status_code == 200 and r.text.count("data: ") == 3  # the topology, then two frames, then the end
    assert client.get("/v1/lab/stream", params={"token": token, "frames": "0"}).status_code == 400


def test_browsers_share_one_frame_a_second(app) -> None:
    _, inv, dash = app
    first = dash.frame()
    again = dash.frame(after=10**9)
    assert again["t"] == first["t"] and again["events"] == []  # the shared part once; each client's events its own
    dash._shared_at -= 1.0
    assert dash.frame()["t"] > first["t"]

"""The full table's feeders (lab/feed.py): the MRT dump GoBGP is given, read back by an
independent reader (mrtparse), and how a topology chooses a feeder."""

from __future__ import annotations

import copy
from pathlib import Path

import mrtparse
import pytest

from lab.errors import BgplabError, TopologyError
from lab.feed import GOBGP_FEEDER, config, write_mrt
from lab.kinds import daemons_of
from lab.plan import build_plan
from lab.routers import get_router
from lab.table import Route, Table, generate
from lab.topology import parse_topology
from lab.topology.model import TABLE_FEEDER


def _records(path: Path) -> list[dict]:
    # mrtparse's reader hands back one object, refilled per record
    return [copy.deepcopy(r.data) for r in mrtparse.Reader(str(path))]


def test_the_dump_holds_every_prefix_once_behind_its_own_path(tmp_path: Path) -> None:
    table = generate(500, 80, 7)
    dump = tmp_path / "t.mrt"
    assert write_mrt([table], dump, 64999, "10.0.0.9") == {"ipv4": 500, "ipv6": 80}
    assert dump.stat().st_mode & 0o777 == 0o600
    index, *ribs = _records(dump)
    assert list(index["subtype"].values()) == ["PEER_INDEX_TABLE"]
    assert index["peer_entries"][0]["peer_as"] == "64999" and index["peer_entries"][0]["peer_bgp_id"] == "10.0.0.9"
    want = {p: r.as_path for _, r in table.routes() for p in r.prefixes}
    got = {}
    for rec in ribs:
        prefix = f"{rec['prefix']}/{rec['length']}"
        assert prefix not in got, f"{prefix} twice"
        attrs = {list(a["type"].values())[0]: a["value"] for a in rec["rib_entries"][0]["path_attributes"]}
        got[prefix] = tuple(int(a) for seg in attrs["AS_PATH"] for a in seg["value"])
        if ":" in prefix:
            assert list(rec["subtype"].values()) == ["RIB_IPV6_UNICAST"]
            assert attrs["MP_REACH_NLRI"]["next_hop"] == ["::"]  # set per session by the speaker
        else:
            assert attrs["NEXT_HOP"] == "0.0.0.0"  # the session's own address replaces it
    assert got == {p: want[p] for p in got} and len(got) == len(want)
    # the prefixes of one attribute set follow each other (so they can leave in one UPDATE)
    order = [f"{r['prefix']}/{r['length']}" for r in ribs]
    first = table.ipv4[0].prefixes
    assert order[: len(first)] == list(first)


def test_padding_repeats_the_first_records_at_the_end(tmp_path: Path) -> None:
    table = generate(200, 0, 2)
    dump = tmp_path / "t.mrt"
    write_mrt([table], dump, 64999, "10.0.0.9", padding=7)
    ribs = _records(dump)[1:]
    assert len(ribs) == 207
    head = [f"{r['prefix']}/{r['length']}" for r in ribs[:7]]
    assert [f"{r['prefix']}/{r['length']}" for r in ribs[-7:]] == head


def test_a_prefix_the_dump_cannot_carry_is_named(tmp_path: Path) -> None:
    bad = Table(ipv4=(Route((4200000001,), ("10.1.0.0/16", "300.1.2.0/24")),), ipv6=())
    with pytest.raises(BgplabError, match=r"'300\.1\.2\.0/24' is not an ipv4 prefix"):
        write_mrt([bad], tmp_path / "t.mrt", 64999, "10.0.0.9")


def render_bgpd(plan, node: str) -> str:
    return get_router("frr").render(plan.lab, plan.nodes[node], Path("/run/bgplab/feed/nodes") / node)["bgpd.conf"]


def _doc(feeder: str | None = None, pools: tuple[str, ...] = ("net",)) -> dict:
    up = {"kind": "exabgp", "role": "edge", "asn": 64999, "originates": list(pools)}
    if feeder:
        up["feeder"] = feeder
    pools_doc = {"net": {"kind": "internet", "ipv4": 1000, "ipv6": 100},
                 "own": {"prefix": "100.64.0.0/16", "length": 24, "count": 4}}
    return {
        "name": "feed",
        "pools": {p: pools_doc[p] for p in pools},
        "nodes": {"up": up, "r1": {"kind": "router", "role": "transit", "asn": 65001},
                  "obs": {"kind": "router", "role": "peer", "asn": 65002}},
        "links": [["up", "r1"], ["r1", "obs"]],
    }


def test_gobgp_feeds_a_table_and_the_routers_connect_to_it() -> None:
    plan = build_plan(parse_topology(_doc("gobgp")))
    up = plan.nodes["up"]
    assert up.feeder == "gobgp" and daemons_of(up) == (GOBGP_FEEDER,)
    assert "gobgp" in plan.tools_needed and plan.implementations == ("frr",)
    assert plan.channel_speakers() == []  # the controller announces nothing through it
    [towards] = plan.nodes["r1"].sessions[:1]
    assert towards.peer == "up" and not towards.peer_connects  # it listens: r1 connects
    bgpd = render_bgpd(plan, "r1")
    assert f"neighbor {towards.peer_v4} passive" not in bgpd
    conf = config(up)
    # held until the table is in (lab.feed.release), IPv6 with the link's own next hop
    assert conf["global"]["apply-policy"]["config"]["default-export-policy"] == "reject-route"
    [stmt] = conf["policy-definitions"][0]["statements"]
    assert stmt["actions"]["bgp-actions"]["set-next-hop"] == str(up.sessions[0].local_v6)


def test_an_exabgp_speaker_connects_and_routers_wait_for_it() -> None:
    plan = build_plan(parse_topology(_doc("exabgp")))
    towards = next(s for s in plan.nodes["r1"].sessions if s.peer == "up")
    assert towards.peer_connects and plan.nodes["up"].feeder == "exabgp"
    assert f"neighbor {towards.peer_v4} passive" in render_bgpd(plan, "r1")
    assert "gobgp" not in plan.tools_needed


def test_the_default_feeder_is_for_tables_only() -> None:
    assert build_plan(parse_topology(_doc())).nodes["up"].feeder == TABLE_FEEDER
    # a speaker with pools the controller moves stays ExaBGP whatever the tables' default
    assert build_plan(parse_topology(_doc(pools=("net", "own")))).nodes["up"].feeder == "exabgp"


def test_a_gobgp_feeder_with_block_pools_or_on_a_router_is_refused() -> None:
    with pytest.raises(TopologyError, match=r"nodes\.up\.feeder: a speaker fed by GoBGP carries synthetic tables "
                                             r"only, and it originates the block pool own"):
        parse_topology(_doc("gobgp", pools=("net", "own")))
    doc = _doc()
    doc["nodes"]["r1"]["feeder"] = "gobgp"
    with pytest.raises(TopologyError, match="only a speaker"):
        parse_topology(doc)
    doc = _doc("bird")
    with pytest.raises(TopologyError, match=r"nodes\.up\.feeder"):
        parse_topology(doc)

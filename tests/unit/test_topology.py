"""Topology validation: each bad topology with the message it must produce."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest

from lab.errors import TopologyError
from lab.plan import build_plan
from lab.topology import load_topology, notes, parse_topology

ROOT = Path(__file__).resolve().parents[2]

GOOD = {
    "name": "unit",
    "pools": {"p4": {"prefix": "100.64.0.0/16", "length": 24, "count": 10, "byoip": True}},
    "nodes": {
        "edge": {"kind": "exabgp", "role": "edge", "asn": 13335, "originates": ["p4"]},
        "r1": {"kind": "frr", "role": "transit", "asn": 65001},
        "r2": {"kind": "frr", "role": "eyeball", "asn": 65002},
        "h1": {"kind": "host"},
    },
    "links": [["edge", "r1"], ["r1", "r2"], {"endpoints": ["h1", "r2"]}],
}


def mutate(path: str, value: object) -> dict:
    """GOOD with one value set (or removed, for value=...) at a dotted path."""
    doc = copy.deepcopy(GOOD)
    *parents, last = path.split(".")
    cur = doc
    for p in parents:
        cur = cur[int(p)] if isinstance(cur, list) else cur[p]
    if isinstance(cur, list):
        cur[int(last)] = value
    elif value is ...:
        del cur[last]
    else:
        cur[last] = value
    return doc


BAD = [
    ("unknown top-level field", mutate("colour", "red"), ["colour: unknown field"]),
    ("missing nodes", mutate("nodes", ...), ["nodes: Field required"]),
    ("asn out of range", mutate("nodes.r1.asn", 4_294_967_295), ["nodes.r1.asn: Input should be less than or equal to 4294967294"]),
    ("asn not a number", mutate("nodes.r1.asn", "sixty"), ["nodes.r1.asn: Input should be a valid integer"]),
    ("unknown kind", mutate("nodes.r1.kind", "bird"), ["nodes.r1.kind: Input should be 'router', 'exabgp' or 'host'"]),
    ("router without asn", mutate("nodes.r1", {"kind": "frr", "role": "transit"}), ["nodes.r1: a node of kind 'router' needs an asn"]),
    ("router without role", mutate("nodes.r1", {"kind": "router", "asn": 65001}), ["nodes.r1: a node of kind 'router' needs a role"]),
    ("unknown implementation", mutate("nodes.r1", {"kind": "router", "implementation": "cisco", "role": "transit", "asn": 65001}),
     ["nodes.r1: no router implementation 'cisco' (implementations: frr, bird, gobgp, openbgpd)"]),
    ("implementation of a speaker", mutate("nodes.edge", {"kind": "exabgp", "implementation": "frr", "role": "edge",
                                                          "asn": 64500, "originates": ["p4"]}),
     ["nodes.edge: only a router has an implementation (this node is an exabgp)"]),
    ("frr implemented by another", mutate("nodes.r1", {"kind": "frr", "implementation": "bird", "role": "transit", "asn": 65001}),
     ["nodes.r1: kind 'frr' is a router implemented by frr, not by 'bird'"]),
    ("host with asn", mutate("nodes.h1", {"kind": "host", "asn": 1}), ["nodes.h1: a host has no ASN"]),
    ("typo in node field", mutate("nodes.r1.routerid", "1.1.1.1"), ["nodes.r1.routerid: unknown field"]),
    ("bad router id", mutate("nodes.r1.router_id", "1.1.1"), ["nodes.r1.router_id: Input is not a valid IPv4 address"]),
    ("hold below 3", mutate("nodes.r1.timers", {"hold": 2}), ["nodes.r1.timers: hold must be 0 or at least 3 seconds"]),
    ("keepalive vs hold", mutate("timers", {"keepalive": 5, "hold": 9}), ["timers: keepalive 5 is more than a third of hold 9"]),
    ("negative mrai", mutate("nodes.r1.timers", {"mrai": -1}), ["nodes.r1.timers.mrai: Input should be greater than or equal to 0"]),
    ("link to unknown node", mutate("links.1", ["r1", "r9"]), ["links[1]: unknown node 'r9'"]),
    ("self link", mutate("links.1", ["r1", "r1"]), ["links[1]: a link joins two different nodes"]),
    ("three endpoints", mutate("links.1", ["r1", "r2", "edge"]), ["links[1]: List should have at most 2 items"]),
    ("duplicate link", {**GOOD, "links": GOOD["links"] + [["r2", "r1"]]}, ["links[3]: 'r2' and 'r1' are already linked by links[1]"]),
    ("speaker to host", {**GOOD, "links": [["edge", "r1"], ["r1", "r2"], ["h1", "edge"]]}, ["links[2]: 'h1' (host) and 'edge' (exabgp) cannot be linked"]),
    ("unknown pool", mutate("nodes.edge.originates", ["p4", "p6"]), ["nodes.edge.originates[1]: unknown pool 'p6' (pools: p4)"]),
    ("pool not a network", mutate("pools.p4.prefix", "100.64.0.1/16"), ["pools.p4.prefix: not a network in CIDR form (100.64.0.1/16 has host bits set)"]),
    ("pool too small", mutate("pools.p4.count", 300), ["pools.p4: count 300 exceeds the 256 /24s in 100.64.0.0/16"]),
    ("pool length", mutate("pools.p4.length", 12), ["pools.p4: length /12 must be between /16 and /32"]),
    ("pool in link space", mutate("pools.p4.prefix", "198.18.0.0/16"), ["pools.p4.prefix: 198.18.0.0/16 overlaps 198.18.0.0/16"]),
    ("duplicate router asn", mutate("nodes.r2.asn", 65001), ["nodes.r2.asn: AS65001 is already used by router 'r1'"]),
    ("unconnected node", {**GOOD, "nodes": {**GOOD["nodes"], "r3": {"kind": "frr", "role": "peer", "asn": 65003}}}, ["nodes.r3: not connected by any link"]),
    ("bad lab name", mutate("name", "my-lab"), ["name: lab name 'my-lab' must be"]),
    ("bad node name", {**GOOD, "nodes": {**GOOD["nodes"], "R_1": {"kind": "frr", "role": "peer", "asn": 65009}}, "links": GOOD["links"] + [["R_1", "r1"]]}, ["nodes.R_1: node names are"]),
    ("host to transit", {**GOOD, "links": [["edge", "r1"], ["r1", "r2"], ["h1", "r1"]]}, ["links[2]: host 'h1' must connect to an eyeball router, not 'r1'"]),
    ("frr as edge", mutate("nodes.r1.role", "edge"), ["nodes.r1: role 'edge' is for exabgp speakers"]),
    ("two tables", {**GOOD, "pools": {**GOOD["pools"], "t1": {"kind": "internet"}, "t2": {"kind": "internet", "seed": 2}},
                    "nodes": {**GOOD["nodes"], "edge": {**GOOD["nodes"]["edge"], "originates": ["p4", "t1", "t2"]}}},
     ["pools.t2: a lab carries one Internet table ('t1')"]),
    ("extended messages off between routers", mutate("links.1", {"endpoints": ["r1", "r2"], "extended_message": False}),
     ["links[1].extended_message: only a speaker's session can turn extended messages off"]),
]


def test_extended_messages_are_chosen_per_speaker_session() -> None:
    from lab.daemons import exabgp
    from lab.plan import build_plan

    doc = mutate("links.0", {"endpoints": ["edge", "r1"], "extended_message": False})
    plan = build_plan(parse_topology(doc), "unit")
    [s] = plan.nodes["edge"].sessions
    assert s.extended_message is False
    text = exabgp.render("unit", plan.nodes["edge"], exabgp.ExabgpPaths(Path("/x")), "bridge")["exabgp.conf"]
    assert "extended-message disable;" in text
    default = build_plan(parse_topology(GOOD), "unit")
    assert default.nodes["edge"].sessions[0].extended_message is True


@pytest.mark.parametrize("doc,expected", [(d, e) for _, d, e in BAD], ids=[n for n, _, _ in BAD])
def test_bad_topology_names_the_problem(doc: dict, expected: list[str]) -> None:
    with pytest.raises(TopologyError) as err:
        parse_topology(doc, "t.yaml")
    text = str(err.value)
    assert text.startswith("t.yaml: ")
    for fragment in expected:
        assert fragment in text, f"{fragment!r} not in:\n{text}"


def test_every_problem_is_reported_at_once() -> None:
    doc = copy.deepcopy(GOOD)
    doc["links"] = [["edge", "r1"], ["r1", "nope"], ["r2", "r2"], ["h1", "r2"]]
    doc["nodes"]["edge"]["originates"] = ["p4", "missing"]
    doc["nodes"]["r2"]["asn"] = 65001
    with pytest.raises(TopologyError) as err:
        parse_topology(doc, "t.yaml")
    assert len(err.value.problems) == 4, err.value.problems
    assert "4 problems" in str(err.value)


def test_structural_errors_are_all_reported() -> None:
    doc = copy.deepcopy(GOOD)
    doc["nodes"]["r1"]["asn"] = "x"
    doc["nodes"]["r2"]["kind"] = "switch"
    doc["pools"]["p4"]["count"] = 0
    with pytest.raises(TopologyError) as err:
        parse_topology(doc, "t.yaml")
    paths = sorted(p.split(":")[0] for p in err.value.problems)
    assert paths == ["nodes.r1.asn", "nodes.r2.kind", "pools.p4.count"]


def test_yaml_syntax_error_names_line(tmp_path: Path) -> None:
    f = tmp_path / "broken.yaml"
    f.write_text("name: x\nnodes: {a: [\n")
    with pytest.raises(TopologyError) as err:
        load_topology(f)
    assert "line 3" in str(err.value) and str(f) in str(err.value)


def test_missing_file() -> None:
    with pytest.raises(TopologyError, match="cannot read the file"):
        load_topology("/nonexistent/topology.yaml")


def test_not_a_mapping() -> None:
    with pytest.raises(TopologyError, match="expected a mapping"):
        parse_topology(["a"], "t.yaml")


@pytest.mark.parametrize("name", ["minimal", "byoip-incident"])
def test_shipped_topologies_are_valid(name: str) -> None:
    load_topology(ROOT / "topologies" / f"{name}.yaml")


def _rel_topo(links, **nodes):
    base = {
        "edge": {"kind": "exabgp", "role": "edge", "asn": 13335, "originates": ["p"]},
        "a": {"kind": "frr", "role": "transit", "asn": 65001},
        "b": {"kind": "frr", "role": "transit", "asn": 65002},
        "c": {"kind": "frr", "role": "transit", "asn": 65003},
        "col": {"kind": "frr", "role": "collector", "asn": 65500},
    }
    base.update(nodes)
    return {"name": "rel", "pools": {"p": {"prefix": "100.64.0.0/16", "length": 24, "count": 1}},
            "nodes": base, "links": links}


def test_relationships_parse_and_cycles_of_providers_are_refused() -> None:
    ok = parse_topology(_rel_topo([
        {"endpoints": ["edge", "a"], "relationship": "c2p"},
        {"endpoints": ["a", "b"], "relationship": "c2p"},
        {"endpoints": ["c", "b"], "relationship": "p2p"},
        ["col", "a"],
    ]))
    assert [ok.link_relationship(i).value for i in range(4)] == ["c2p", "c2p", "p2p", "c2p"]
    with pytest.raises(TopologyError) as e:
        parse_topology(_rel_topo([
            ["edge", "a"],
            {"endpoints": ["a", "b"], "relationship": "c2p"},
            {"endpoints": ["b", "c"], "relationship": "c2p"},
            {"endpoints": ["a", "c"], "relationship": "p2c"},
            ["col", "a"],
        ]))
    assert "links: customer-to-provider cycle a -> b -> c -> a" in str(e.value)


def test_relationships_that_cannot_hold_are_named() -> None:
    with pytest.raises(TopologyError) as e:
        parse_topology(_rel_topo([{"endpoints": ["a", "b"], "relationship": "sideways"}, ["edge", "a"]]))
    assert "links[1].relationship" not in str(e.value)
    assert "links[0].relationship: Input should be 'c2p', 'p2c', 'p2p' or 's2s'" in str(e.value)
    with pytest.raises(TopologyError) as e:
        parse_topology(_rel_topo([
            {"endpoints": ["edge", "a"], "relationship": "p2c"},
            {"endpoints": ["col", "a"], "relationship": "c2p"},
            ["a", "b"], ["b", "c"],
        ]))
    text = str(e.value)
    assert "links[0].relationship: speaker 'edge' can be a customer of 'a' or its peer, not its provider" in text
    assert "links[1].relationship: a collector's sessions have no relationship" in text


def test_a_router_says_its_implementation_and_the_old_kind_still_loads() -> None:
    old = copy.deepcopy(GOOD)
    new = copy.deepcopy(GOOD)
    for name, node in new["nodes"].items():
        if node["kind"] == "frr":
            new["nodes"][name] = {**node, "kind": "router", "implementation": "frr"}
    bare = copy.deepcopy(new)
    for node in bare["nodes"].values():
        node.pop("implementation", None)  # a router that names none gets the default
    plans = [build_plan(parse_topology(d, "t.yaml"), "t") for d in (old, new, bare)]
    assert [{n.name: (n.kind.value, n.implementation) for n in p.routers()} for p in plans] == \
        [{n: ("router", "frr") for n in (x.name for x in plans[0].routers())}] * 3
    assert all(p.implementations == ("frr",) for p in plans)
    assert all(n.implementation is None for n in plans[0].nodes.values() if n.kind.value != "router")


ROUTED = {**GOOD, "nodes": {**GOOD["nodes"], "r1": {"kind": "router", "role": "transit", "asn": 65001},
                            "r2": {"kind": "router", "implementation": "frr", "role": "eyeball", "asn": 65002},
                            "c": {"kind": "router", "role": "collector", "asn": 65500}},
          "links": [*GOOD["links"], ["r1", "c"]]}


def test_a_topology_s_implementation_is_the_default_of_its_routers() -> None:
    t = parse_topology({**ROUTED, "implementation": "bird"})
    # every router that names none; r2 names frr and keeps it
    assert t.nodes["r1"].implementation == "bird" and t.nodes["r2"].implementation == "frr"
    with pytest.raises(TopologyError, match="no router implementation 'cisco'"):
        parse_topology({**ROUTED, "implementation": "cisco"})


def test_implementation_override_runs_every_router_but_the_collector() -> None:
    t = parse_topology(ROUTED, implementation="gobgp")
    assert {n: x.implementation for n, x in t.nodes.items() if x.implementation} == {"r1": "gobgp", "r2": "gobgp", "c": "frr"}
    with pytest.raises(TopologyError, match="--implementation: no router implementation 'cisco'"):
        parse_topology(ROUTED, implementation="cisco")


def test_a_collector_must_record_updates_and_rib_only_routers_are_named() -> None:
    bad = copy.deepcopy(ROUTED)
    bad["nodes"]["c"]["implementation"] = "bird"
    with pytest.raises(TopologyError, match="nodes.c.implementation: a collector records every UPDATE it receives, and BIRD"):
        parse_topology(bad)
    said = notes(parse_topology({**ROUTED, "timers": {"mrai": 30}}, implementation="gobgp"))
    assert any("nodes r1, r2: RIB-only (GoBGP installs no route" in s for s in said), said
    assert any("GoBGP has no MRAI" in s and "up to 30 s" in s for s in said), said
    assert notes(parse_topology(ROUTED)) == []  # FRR, MRAI 0: nothing to say

"""One contract for the Router interface (lab.routers.base), run on every implementation in
lab.routers.ROUTERS, live, on both runtimes: the mini lab with its two routers run by the
implementation (the collector stays FRR), and every member of the interface asked of the real
daemons. What it answers is checked against the network (the FRR collector's table, the
kernel's routes, the peer's table after a reset), not against the plan that rendered it.

Then the same policy on each (the valley topology: no valley exported, customers preferred),
and a generated lab that mixes all of them: it converges, every path every router holds is
valley-free by the topology's relationships, and the observer hears every prefix.
"""

from __future__ import annotations

import ipaddress
import re

import pytest
import yaml

from lab import generate
from lab import kernel
from lab.kinds import router_of
from lab.routers import ROUTERS, get_router
from lab.routers.base import EXTENDED_MESSAGE, STANDARD_MESSAGE
from lab.topology import Kind, Relation, Role
from lab.wait import wait_until
from pathlib import Path

pytestmark = pytest.mark.live
IMPLEMENTATIONS = list(ROUTERS)
EDGE_AS = 13335
VALLEY = Path(__file__).parent / "topologies" / "valley.yaml"


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
def test_the_router_interface_on_the_mini_lab(lab_factory, implementation: str) -> None:
    report = lab_factory("minimal", implementation=implementation)
    running = report.running()
    plan, impl = running.plan, get_router(implementation)
    r1, r2 = plan.nodes["r1"], plan.nodes["r2"]
    assert r1.implementation == r2.implementation == implementation
    assert plan.nodes["collector"].implementation == "frr"  # the instrument stays FRR

    # version: the binary the node runs, as it says it
    version = report.router_versions[implementation]
    assert re.match(r"^\d+\.\d+", version), version

    for node in (r1, r2):
        d = running.node_dir(node.name)
        sessions = router_of(node).sessions(d)
        # every session the plan has, Established, described by its peer
        assert set(sessions) == {str(s.peer_v4) for s in node.sessions}
        for s in node.sessions:
            got = sessions[str(s.peer_v4)]
            assert got["state"] == "Established", (node.name, s.peer, got)
            assert got["description"].split()[0] == s.peer
        # the BGP table's prefixes per family: what the collector (FRR, not the subject) holds too
        assert router_of(node).received(d) == running.plan.expected_rib[node.name]
        sizes = router_of(node).message_sizes(d)
        assert set(sizes) == {str(s.peer_v4) for s in node.sessions}
        assert set(sizes.values()) <= {STANDARD_MESSAGE, EXTENDED_MESSAGE}
    collector = router_of(plan.nodes["collector"])
    coll = collector.received(running.node_dir("collector"))
    assert coll == router_of(r1).received(running.node_dir("r1")), "the collector holds what r1 holds"

    # the prefixes r1 received from the edge, per family: what the edge announced
    edge = router_of(r1).sessions(running.node_dir("r1"))[str(next(s.peer_v4 for s in r1.sessions if s.peer == "edge"))]
    assert edge["received"] == {f: sum(1 for p in plan.originated_by("edge") if p.family == f) for f in ("ipv4", "ipv6")}

    # the RIB: every pool prefix at r2 by r1 from the edge, one best path each
    for family in ("ipv4", "ipv6"):
        rib = router_of(r2).rib(running.node_dir("r2"), family)
        pool = [str(p.prefix) for p in plan.prefixes if p.family == family]
        assert set(pool) <= set(rib)
        for prefix in pool:
            paths = rib[prefix]
            assert [p["as_path"] for p in paths if p["best"]] == [[r1.asn, EDGE_AS]], (prefix, paths)

    # the kernel: routes marked as the implementation marks them, or none (RIB-only)
    for node in (r1, r2):
        if impl.kernel_proto is None:
            assert not node.installs_routes
            continue
        marked = sum(kernel.count_bgp_routes(node.namespace, impl.kernel_proto).values())
        want = sum(running.plan.expected_rib[node.name].values())
        assert marked == want, (node.name, marked, want)

    # updates sent, then a hard reset of r1's session to r2: r2 sees it leave Established (asked
    # of r2, the other end), then it comes back and r2's table ends whole
    d1, d2 = running.node_dir("r1"), running.node_dir("r2")
    assert router_of(r1).updates_sent(d1) > 0
    r2_addr = str(next(s.peer_v4 for s in r1.sessions if s.peer == "r2"))
    r1_addr = str(next(s.peer_v4 for s in r2.sessions if s.peer == "r1"))
    router_of(r1).clear_session(d1, r2_addr)
    states: list[str] = []

    def relearned() -> tuple[bool, str]:
        state = router_of(r2).sessions(d2)[r1_addr]["state"]
        if not states or states[-1] != state:
            states.append(state)
        got = router_of(r2).received(d2)
        return len(states) > 1 and state == "Established" and got == plan.expected_rib["r2"], f"{states} {got}"

    wait_until(relearned, timeout=60, what=f"r2's session to r1 ({implementation}) to go down and come back with the table",
               interval=0.01)

    # the feed: only the implementations that can be the collector write one
    assert (impl.feed(d1) is not None) == impl.records_updates
    # the shell: the implementation's own command, there in the node
    argv = impl.shell(d1, [])
    r = running.runtime.exec(running.name, r1, ["sh", "-c", f"command -v {argv[0]}"])
    assert r.rc == 0, (argv, r.err)


def _valley_free(hops: list[str], relation) -> bool:
    """The AS path as nodes from the holder outwards (holder, who it heard from, ..., origin):
    read from the origin, a route may go up (customer to provider) any number of times, cross
    one peering, then only go down; a sibling step changes nothing (the policy exports a
    sibling's routes as a customer's)."""
    phase = "up"
    steps = list(zip(hops[1:], hops[:-1]))[::-1]  # (sender, receiver), from the origin
    for sender, receiver in steps:
        rels = relation(receiver, sender)  # what the sender is to the receiver
        ok = False
        for rel in rels:
            if rel is Relation.sibling:
                ok, new = True, phase
            elif rel is Relation.customer and phase == "up":
                ok, new = True, "up"
            elif rel is Relation.peer and phase == "up":
                ok, new = True, "down"
            elif rel is Relation.provider:
                ok, new = True, "down"
            if ok:
                break
        if not ok:
            return False
        phase = new
    return True


# The policy is each implementation's rendering and daemon, the same on either runtime (the
# contract above runs on both): on namespaces only, as CI's time goes.
@pytest.mark.parametrize("runtime", ["netns"], indirect=True)
@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
def test_the_same_policy_on_each(lab_factory, implementation: str) -> None:
    """The valley topology (tests/live/topologies/valley.yaml) on one implementation: a route
    from a provider reaches no other provider and no peer; a customer's reaches both; a
    customer's longer path is preferred to a provider's shorter one."""
    report = lab_factory(str(VALLEY), implementation=implementation)
    running = report.running()
    a, b = ipaddress.ip_network("100.64.0.0/16"), ipaddress.ip_network("100.65.0.0/16")

    def table(r: str) -> dict:
        return router_of(running.plan.nodes[r]).rib(running.node_dir(r), "ipv4")

    def inside(t: dict, pool) -> list[str]:
        return sorted(p for p in t if ipaddress.ip_network(p).subnet_of(pool))

    m, p2, q = table("m"), table("p2"), table("q")
    assert len(inside(m, a)) == 20 and len(inside(m, b)) == 20
    assert inside(p2, a) == [] and inside(q, a) == []
    assert len(inside(p2, b)) == 20 and len(inside(q, b)) == 20
    b0 = str(next(b.subnets(new_prefix=24)))
    best = [p["as_path"] for p in m[b0] if p["best"]]
    assert best == [[65040, 65030, EDGE_AS]], m[b0]
    assert sorted(p["as_path"] for p in m[b0]) == [[65001, EDGE_AS], [65040, 65030, EDGE_AS]]


@pytest.mark.parametrize("runtime", ["netns"], indirect=True)
def test_a_lab_of_every_implementation_converges_valley_free(lab_factory, tmp_path) -> None:
    """A generated lab mixing every implementation (topology generate --implementations, equal
    shares): it comes up (every session, every table), every path every router but the collector
    holds is valley-free by the topology's relationships, and the observer hears every prefix."""
    sizes = generate.Sizes(tier1=3, tier2=4, stubs=5, pops=2, hosts=2, vantage_points=3, seed=7, mrai=0,
                           keepalive=3, hold=9, implementations=tuple((n, 1.0) for n in IMPLEMENTATIONS))
    doc = generate.build(sizes, "mixed")
    doc["pools"] = {"byoip-v4": {"prefix": "100.64.0.0/16", "length": 24, "count": 100, "byoip": True},
                    "owned-v6": {"prefix": "2001:db8:8000::/40", "length": 48, "count": 20}}
    for n in doc["nodes"].values():
        if n.get("kind") == "exabgp":
            n["originates"] = list(doc["pools"])
    path = tmp_path / "mixed.yaml"
    path.write_text(yaml.safe_dump(doc))
    impls = {n.get("implementation") for n in doc["nodes"].values() if n.get("role") not in (None, "collector")}
    assert set(IMPLEMENTATIONS) <= impls, impls  # every one is in the lab

    report = lab_factory(str(path))  # `up` waits for every session and every router's table
    running = report.running()
    plan = running.plan
    by_asn = {n.asn: n.name for n in plan.nodes.values() if n.kind is Kind.router}
    edges = [n.name for n in plan.nodes.values() if n.kind is Kind.exabgp]

    def relation(receiver: str, sender: str) -> list[Relation]:
        return [s.relation for s in plan.nodes[receiver].sessions if s.peer == sender]

    pool = {str(p.prefix) for p in plan.prefixes}
    checked = 0
    for node in plan.routers():
        if node.role is Role.collector:
            continue
        for family in ("ipv4", "ipv6"):
            for prefix, paths in router_of(node).rib(running.node_dir(node.name), family).items():
                if prefix not in pool:  # an eyeball's own subnet
                    continue
                for p in paths:
                    hops = [node.name] + [by_asn.get(a, "?") for a in p["as_path"][:-1]]
                    assert p["as_path"][-1] == EDGE_AS, (node.name, prefix, p)
                    # the origin: any of the edge's PoPs this path's last router peers with
                    last = hops[-1]
                    origins = [e for e in edges if relation(last, e)]
                    assert any(_valley_free(hops + [e], relation) for e in origins), (node.name, prefix, p["as_path"])
                    checked += 1
    assert checked > 0
    observer = plan.nodes["observer"]
    assert router_of(observer).received(running.node_dir("observer")) == plan.expected_rib["observer"]

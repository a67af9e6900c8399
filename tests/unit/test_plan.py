"""The addressing plan: deterministic, unique, within the lab's own ranges."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest

from lab.plan import build_plan, namespace_name
from lab.topology import LINK_V4, LINK_V6, Kind, load_topology

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def ref():
    return build_plan(load_topology(ROOT / "topologies/byoip-incident.yaml"))


def test_reference_counts(ref) -> None:
    assert ref.counts() == {"prefixes": 6501, "byoip": 4306, "ipv4": 6001, "ipv6": 500}
    assert len(ref.nodes) == 12
    assert len({p.prefix for p in ref.prefixes}) == 6501


def test_plan_is_deterministic() -> None:
    t = load_topology(ROOT / "topologies/byoip-incident.yaml")
    a, b = build_plan(t, "x"), build_plan(t, "x")
    assert a.nodes == b.nodes and a.prefixes == b.prefixes


def test_addresses_unique_and_in_lab_ranges(ref) -> None:
    v4, v6 = [], []
    for node in ref.nodes.values():
        for i in node.interfaces:
            assert i.v4.ip in LINK_V4 and i.v6.ip in LINK_V6
            v4.append(i.v4.ip)
            v6.append(i.v6.ip)
        v4.append(node.loopback_v4.ip)
    assert len(v4) == len(set(v4)) and len(v6) == len(set(v6))


def test_link_ends_share_a_subnet_and_point_at_each_other(ref) -> None:
    for node in ref.nodes.values():
        for i in node.interfaces:
            other = next(x for x in ref.nodes[i.peer].interfaces if x.link == i.link)
            assert other.peer == node.name and other.peer_ifname == i.name
            assert i.v4.network == other.v4.network and i.v4.network.prefixlen == 31
            assert i.v6.network == other.v6.network


def test_interface_names_fit_the_kernel_limit(ref) -> None:
    for node in ref.nodes.values():
        names = [i.name for i in node.interfaces]
        assert names == [f"eth{n}" for n in range(1, len(names) + 1)]
        assert all(len(n) <= 15 for n in names)


def test_sessions_mirror_each_other(ref) -> None:
    for node in ref.nodes.values():
        for s in node.sessions:
            back = [x for x in ref.nodes[s.peer].sessions if x.peer == node.name]
            assert len(back) == 1
            assert back[0].peer_v4 == s.local_v4 and back[0].peer_asn == node.asn


def test_hosts_get_their_eyeball_as_gateway(ref) -> None:
    for host in ref.hosts():
        gw = host.gateway_v4
        eyeball = ref.nodes[host.interfaces[0].peer]
        assert gw in [i.v4.ip for i in eyeball.interfaces]
        assert host.interfaces[0].v4.network in eyeball.networks


def test_every_router_expects_every_prefix(ref) -> None:
    for r in ref.routers():
        assert {f: len(s) for f, s in ref.expected[r.name].items()} == {"ipv4": 6001, "ipv6": 500}
        # plus the two eyeball networks' host subnets
        assert ref.expected_rib[r.name] == {"ipv4": 6003, "ipv6": 502}


def test_routes_do_not_cross_non_transit_nodes() -> None:
    # edge -> r1 (peer) -> r2: r1 peers with the edge and buys transit from r2; a peer's
    # route does not go to a provider (a valley), so r2 gets nothing.
    t = load_topology(ROOT / "topologies/minimal.yaml").model_copy(
        update={
            "nodes": {
                "edge": load_topology(ROOT / "topologies/minimal.yaml").nodes["edge"],
                "r1": load_topology(ROOT / "topologies/minimal.yaml").nodes["r2"],
                "r2": load_topology(ROOT / "topologies/minimal.yaml").nodes["r1"],
                "collector": load_topology(ROOT / "topologies/minimal.yaml").nodes["collector"],
            }
        }
    )
    plan = build_plan(t, "x")
    assert len(plan.expected["r1"]["ipv4"]) == 200
    assert len(plan.expected["r2"]["ipv4"]) == 0
    # the collector is fed like a customer, as route collectors' peers feed them everything:
    # it hears r1's routes (and r2's none).
    assert len(plan.expected["collector"]["ipv4"]) == 200
    assert {s.peer: s.relation.value for s in plan.nodes["r1"].sessions} == {
        "edge": "peer", "r2": "provider", "collector": "customer"}


def test_namespace_names_carry_the_lab(ref) -> None:
    p = build_plan(ref.topology, "lab_2")
    assert p.nodes["t1"].namespace == namespace_name("lab_2", "t1") == "bgplab-lab_2-t1"


def test_roles_are_a_shorthand_for_relationships(ref) -> None:
    rel = {(n.name, s.peer): s.relation.value for n in ref.routers() for s in n.sessions}
    assert rel[("t1", "t2")] == rel[("t2", "t1")] == "sibling"  # a transit carries everything
    assert rel[("t1", "edge-fra")] == "customer"
    assert rel[("observer", "edge-fra")] == "peer"
    assert rel[("observer", "t1")] == "provider" and rel[("t1", "observer")] == "customer"
    assert rel[("eye1", "t2")] == "provider"
    assert rel[("collector", "t1")] == "provider" and rel[("t1", "collector")] == "customer"
    assert not ref.nodes["collector"].installs_routes
    assert ref.nodes["edge-fra"].kind is Kind.exabgp


def test_pool_keys_match_kernel_notation(ref) -> None:
    keys = ref.pool_keys
    assert (4, "100.64.0.0/24") in keys
    assert (6, str(ipaddress.ip_network("2001:db8:4000::/48"))) in keys

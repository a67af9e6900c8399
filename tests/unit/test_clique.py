"""The clique experiment's pure parts: its topology is a valid full mesh of siblings with the
origin on r1, and the target band is the issue's."""

from __future__ import annotations

import pytest

from controller.experiments import clique
from lab.errors import UsageError
from lab.plan import build_plan
from lab.topology import Relation, parse_topology


@pytest.mark.parametrize("n", [3, 4, 5, 6])
def test_clique_topology_is_a_full_mesh_of_siblings(n: int) -> None:
    plan = build_plan(parse_topology(clique.topology(n, 5, "c")))
    routers = plan.routers()
    assert len(routers) == n
    for r in routers:
        peers = {s.peer: s.relation for s in r.sessions}
        others = {x.name for x in routers} - {r.name}
        assert others <= set(peers) and all(peers[o] is Relation.sibling for o in others)
        assert r.sessions[0].timers.mrai == 5
        assert plan.expected_rib[r.name] == {"ipv4": 1, "ipv6": 0}
    assert [s.peer for s in plan.nodes["origin"].sessions] == ["r1"]


def test_bounds_and_sizes() -> None:
    assert clique.bounds(5, 30) == (45.0, 122.0)
    assert clique.bounds(6, 5) == (11.25, 27.0)
    with pytest.raises(UsageError):
        clique.topology(2, 5, "c")

"""The Gao-Rexford policies rendered from a topology's relationships, on real FRR: a route
learned from a provider goes to no other provider and no peer (no valley), and a customer's
route is preferred over a provider's shorter one. What each router holds is read from its
bgpd, not from the plan that rendered the policies."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest

from lab.routers.frr import daemons as frr

pytestmark = pytest.mark.live
VALLEY = str(Path(__file__).parent / "topologies" / "valley.yaml")
POOL_A = ipaddress.ip_network("100.64.0.0/16")
POOL_B = ipaddress.ip_network("100.65.0.0/16")


def _table(running, router: str) -> dict[str, list[dict]]:
    return frr.vtysh_json(frr.FrrPaths(running.node_dir(router)), "show bgp ipv4 unicast")["routes"]


def _in(routes: dict, pool) -> list[str]:
    return sorted(p for p in routes if ipaddress.ip_network(p).subnet_of(pool))


def _best(paths: list[dict]) -> dict:
    return next(p for p in paths if p.get("bestpath") is True)


def test_a_valley_is_not_exported_and_customers_are_preferred(lab_factory) -> None:
    report = lab_factory(VALLEY)
    running = report.running()
    m, p2, q = (_table(running, r) for r in ("m", "p2", "q"))

    # m has both pools; a's from its provider p1 only.
    assert len(_in(m, POOL_A)) == 20 and len(_in(m, POOL_B)) == 20
    # A provider's route is not exported to another provider or to a peer...
    assert _in(p2, POOL_A) == [] and _in(q, POOL_A) == []
    # ...a customer's is, to both.
    assert len(_in(p2, POOL_B)) == 20 and len(_in(q, POOL_B)) == 20

    # m prefers its customer c's 3-hop path for b over its provider p1's 2-hop one.
    b0 = str(next(POOL_B.subnets(new_prefix=24)))
    paths = m[b0]
    assert len(paths) == 2, paths
    best = _best(paths)
    assert best["path"] == "65040 65030 13335"
    assert best["locPrf"] == 200
    other = next(p for p in paths if p is not best)
    assert other["path"] == "65001 13335" and other["locPrf"] == 50

    # Tags say what each route was learned over: m's community on its customer route.
    detail = frr.vtysh_json(frr.FrrPaths(running.node_dir("m")), f"show bgp ipv4 unicast {b0}")
    tags = {p["aspath"]["string"]: p.get("largeCommunity", {}).get("string") for p in detail["paths"]}
    assert tags == {"65040 65030 13335": "65010:1:1", "65001 13335": "65010:1:4"}
    # p2 hears b through m (its customer), whose tag it replaces with its own.
    a2 = frr.vtysh_json(frr.FrrPaths(running.node_dir("p2")), f"show bgp ipv4 unicast {b0}")
    assert [(p["aspath"]["string"], p["largeCommunity"]["string"]) for p in a2["paths"]] == [
        ("65010 65040 65030 13335", "65002:1:1")]

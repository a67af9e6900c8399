"""A full-table lab in a reduced size (100,000 IPv4 + 20,000 IPv6 prefixes): the table
reaches the observer's RIB and r1's kernel, in one UPDATE per attribute set; the routers
that keep only a RIB install nothing. The full size runs in `make bench-full-table`."""

from __future__ import annotations

from pathlib import Path

import pytest

from lab.routers.frr import daemons as frr
from lab.kernel import count_bgp_routes

pytestmark = pytest.mark.live
TOPOLOGY = str(Path(__file__).parent / "topologies" / "full-table-100k.yaml")


def test_a_reduced_full_table_comes_up(lab_factory) -> None:
    report = lab_factory(TOPOLOGY)  # `up` waits until every RIB and r1's kernel hold it
    running = report.running()
    plan = report.plan
    [pool] = plan.tables
    table = plan.table(pool)
    want = {"ipv4": 100_000, "ipv6": 20_000}
    assert {f: table.count(f) for f in want} == want
    for r in ("r1", "r2", "observer"):
        assert frr.rib_counts(frr.FrrPaths(running.node_dir(r))) == want, r
    assert count_bgp_routes(plan.nodes["r1"].namespace) == want
    assert count_bgp_routes(plan.nodes["observer"].namespace) == {"ipv4": 0, "ipv6": 0}  # fib: false
    # one UPDATE per attribute set (none is bigger than a message), plus an End-of-RIB per family
    upstream = next(s for s in plan.nodes["r1"].sessions if s.peer == "upstream")
    stats = frr.vtysh_json(frr.FrrPaths(running.node_dir("r1")), "show bgp neighbors")[str(upstream.peer_v4)]
    sets = table.attribute_sets("ipv4") + table.attribute_sets("ipv6")
    assert sets <= stats["messageStats"]["updatesRecv"] <= sets + 2
    print(f"{sets:,} attribute sets, {stats['messageStats']['updatesRecv']:,} UPDATEs; "
          f"up {report.timings}")

"""A full-table lab in a reduced size (100,000 IPv4 + 20,000 IPv6 prefixes), fed by each feeder
(lab/feed.py): the table reaches the observer's RIB and r1's kernel, in as many UPDATEs as the
feeder's packing makes (counted on r1's session, the network's count); the routers that keep
only a RIB install nothing. The full size runs in `make bench-full-table`, both feeders."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from lab.kernel import count_bgp_routes
from lab.routers.frr import daemons as frr
from lab.table import Table

pytestmark = pytest.mark.live
TOPOLOGY = Path(__file__).parent / "topologies" / "full-table-100k.yaml"
STANDARD = 4096  # GoBGP 3.10 has no RFC 8654 extended messages


def gobgp_updates(table: Table) -> int:
    """UPDATEs GoBGP 3.10 sends for ``table`` on a fresh session: IPv4 packed per attribute set
    into 4,096-byte messages (its packerV4), every other family one prefix per UPDATE (its
    packerMP: internal/pkg/table/message.go)."""
    n = 0
    for route in table.ipv4:
        segment = 2 + 4 * (len(route.as_path) + 1)  # the speaker prepends its own AS
        attrs = 4 + (3 if segment <= 255 else 4) + segment + 7  # ORIGIN, AS_PATH, NEXT_HOP
        room = STANDARD - 19 - 2 - 2 - attrs  # header, withdrawn and attribute lengths
        used, n = 0, n + 1
        for prefix in route.prefixes:
            size = 1 + (int(prefix.split("/")[1]) + 7) // 8
            if used + size > room:
                used, n = 0, n + 1
            used += size
    return n + table.count("ipv6")


@pytest.mark.parametrize("feeder", ["exabgp", "gobgp"])
def test_a_reduced_full_table_comes_up(lab_factory, feeder: str, tmp_path: Path) -> None:
    doc = yaml.safe_load(TOPOLOGY.read_text())
    doc["nodes"]["upstream"]["feeder"] = feeder
    topology = tmp_path / "full-table.yaml"
    topology.write_text(yaml.safe_dump(doc))
    report = lab_factory(str(topology))  # `up` waits until every RIB and r1's kernel hold it
    running = report.running()
    plan = report.plan
    assert plan.nodes["upstream"].feeder == feeder
    [pool] = plan.tables
    table = plan.table(pool)
    want = {"ipv4": 100_000, "ipv6": 20_000}
    assert {f: table.count(f) for f in want} == want
    for r in ("r1", "r2", "observer"):
        assert frr.rib_counts(frr.FrrPaths(running.node_dir(r))) == want, r
    assert count_bgp_routes(plan.nodes["r1"].namespace) == want
    assert count_bgp_routes(plan.nodes["observer"].namespace) == {"ipv4": 0, "ipv6": 0}  # fib: false
    upstream = next(s for s in plan.nodes["r1"].sessions if s.peer == "upstream")
    stats = frr.vtysh_json(frr.FrrPaths(running.node_dir("r1")), "show bgp neighbors")[str(upstream.peer_v4)]
    got = stats["messageStats"]["updatesRecv"]
    if feeder == "exabgp":
        # one UPDATE per attribute set (none is bigger than an extended message), plus an End-of-RIB per family
        least = table.attribute_sets("ipv4") + table.attribute_sets("ipv6")
    else:
        least = gobgp_updates(table)
    assert least <= got <= least + 2
    print(f"{feeder}: {table.attribute_sets('ipv4') + table.attribute_sets('ipv6'):,} attribute sets, {got:,} UPDATEs; "
          f"up {report.timings}")

"""The synthetic Internet table: deterministic, the sizes asked for, shaped as documented,
and clear of the lab's own address space."""

from __future__ import annotations

import ipaddress
from collections import Counter

from lab.daemons import exabgp
from lab.plan import build_plan
from lab.table import IPV4_EXCLUDED, IPV4_LENGTHS, PRIVATE_ASN, generate
from lab.topology import parse_topology


def test_same_seed_same_table_other_seed_other_table() -> None:
    a = generate(20_000, 4_000, seed=3)
    assert a == generate(20_000, 4_000, seed=3)
    assert a != generate(20_000, 4_000, seed=4)


def test_sizes_uniqueness_and_shape() -> None:
    t = generate(50_000, 10_000, seed=1)
    v4 = [p for r in t.ipv4 for p in r.prefixes]
    v6 = [p for r in t.ipv6 for p in r.prefixes]
    assert (len(v4), len(v6)) == (50_000, 10_000) == (t.count("ipv4"), t.count("ipv6"))
    assert len(set(v4)) == len(v4) and len(set(v6)) == len(v6)
    lengths = Counter(int(p.split("/")[1]) for p in v4)
    norm = sum(IPV4_LENGTHS.values())
    for length in (24, 22, 23, 20, 21, 16):  # the shares asked for, to the prefix
        assert abs(lengths[length] - 50_000 * IPV4_LENGTHS[length] / norm) <= 50  # rounding goes to /24
    assert lengths.most_common(1)[0][0] == 24
    assert Counter(int(p.split("/")[1]) for p in v6).most_common(1)[0][0] == 48
    # many origins, most with few prefixes, every path ending at its own origin
    assert t.attribute_sets("ipv4") > 3_000
    origins = {r.as_path[-1] for r in t.ipv4}
    assert len(origins) == len(t.ipv4) and all(a >= PRIVATE_ASN for r in t.ipv4 for a in r.as_path)
    mean = sum(len(r.as_path) for r in t.ipv4) / len(t.ipv4)
    assert 3.0 <= mean <= 4.5  # plus the speaker's own AS: ~4.4, as seen from a transit


def test_no_prefix_in_reserved_or_lab_space() -> None:
    lab_pool = ipaddress.ip_network("44.0.0.0/8")
    t = generate(20_000, 2_000, seed=2, avoid=(str(lab_pool),))
    for r in t.ipv4:
        for p in r.prefixes:
            net = ipaddress.ip_network(p)
            assert not net.overlaps(lab_pool) and not any(net.overlaps(x) for x in IPV4_EXCLUDED), p
    doc6 = ipaddress.ip_network("2001:db8::/32")
    assert not any(ipaddress.ip_network(p).overlaps(doc6) for r in t.ipv6 for p in r.prefixes)


def test_a_table_pool_is_planned_by_count_and_announced_per_attribute_set() -> None:
    doc = {
        "name": "tbl",
        "pools": {"net": {"kind": "internet", "ipv4": 3000, "ipv6": 300, "seed": 5},
                  "own": {"prefix": "100.64.0.0/16", "length": 24, "count": 10}},
        "nodes": {"up": {"kind": "exabgp", "role": "edge", "asn": 64999, "originates": ["net", "own"]},
                  "r1": {"kind": "frr", "role": "transit", "asn": 65001},
                  "obs": {"kind": "frr", "role": "peer", "asn": 65002, "fib": False}},
        "links": [["up", "r1"], ["r1", "obs"]],
    }
    plan = build_plan(parse_topology(doc))
    assert len(plan.prefixes) == 10  # the pool's; the table is generated, not planned prefix by prefix
    assert plan.expected_rib["obs"] == {"ipv4": 3010, "ipv6": 300}
    assert plan.expected_table["r1"] == {"ipv4": 3000, "ipv6": 300}
    assert plan.nodes["r1"].table_routes == 3300 and not plan.nodes["obs"].installs_routes
    table = plan.table("net")
    assert not any(p.startswith("100.64.") for r in table.ipv4 for p in r.prefixes)
    cmds = exabgp.table_announcements(plan.nodes["up"].sessions, table)
    assert len(cmds) == table.attribute_sets("ipv4") + table.attribute_sets("ipv6")  # one session
    first = cmds[0].render()
    path = " ".join(map(str, table.ipv4[0].as_path))
    assert f"as-path [ {path} ] nlri {table.ipv4[0].prefixes[0]}" in first

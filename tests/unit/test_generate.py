"""The topology generator: valid files, Internet-like tiers, valley-free reachability, and
the same file for the same seed (the committed ones are what the generator writes)."""

from __future__ import annotations

import re
import shlex
from collections import Counter
from pathlib import Path

import pytest
from click.testing import CliRunner

from controller.cli import cli
from lab import generate
from lab.errors import UsageError
from lab.plan import build_plan
from lab.topology import Kind, Relation, load_topology, parse_topology

ROOT = Path(__file__).resolve().parents[2]
COMMITTED = [ROOT / "topologies/byoip-internet.yaml", ROOT / "tests/live/topologies/internet-20.yaml"]


def _plan(sizes: generate.Sizes):
    return build_plan(parse_topology(generate.build(sizes, "g")), "g")


@pytest.mark.parametrize("seed", [1, 2, 3, 17])
def test_every_router_learns_every_prefix_valley_free(seed: int) -> None:
    plan = _plan(generate.Sizes(seed=seed))
    hosts = len(plan.hosts())
    for r in plan.routers():
        # the 6,500 and every eyeball's host subnets, under the rendered (valley-free) policies
        assert plan.expected_rib[r.name] == {"ipv4": 6000 + hosts, "ipv6": 500 + hosts}, r.name


def test_tiers_and_degrees() -> None:
    sizes = generate.Sizes(seed=5)
    plan = _plan(sizes)
    rel = {n.name: Counter(s.relation for s in n.sessions if s.peer != "collector") for n in plan.routers()}
    tier1 = [n for n in rel if n.startswith("tier1-")]
    tier2 = [n for n in rel if n.startswith("tier2-")]
    stubs = [n for n in rel if n.startswith("stub-")]
    assert (len(tier1), len(tier2), len(stubs)) == (sizes.tier1, sizes.tier2, sizes.stubs)
    for t in tier1:  # a clique of transit-free peers
        assert rel[t][Relation.peer] == sizes.tier1 - 1 and rel[t][Relation.provider] == 0
    for t in tier2:
        assert rel[t][Relation.provider] in (2, 3) and rel[t][Relation.peer] >= 1
        providers = {s.peer for s in plan.nodes[t].sessions if s.relation is Relation.provider}
        assert providers <= set(tier1)
    for s in stubs:
        assert rel[s][Relation.provider] in (2, 3) and rel[s][Relation.customer] == 0
    pops = plan.speakers()
    assert len(pops) == sizes.pops and {p.asn for p in pops} == {13335}
    for pop in pops:
        seen = Counter(next(x.relation for x in plan.nodes[s.peer].sessions if x.peer == pop.name) for s in pop.sessions)
        # to its neighbours, a PoP is a customer of two and a peer of several
        assert seen[Relation.customer] == 2 and seen[Relation.peer] >= sizes.edge_peers
    vps = {s.peer for s in plan.nodes["collector"].sessions}
    assert len(vps) == sizes.vantage_points
    assert vps & set(tier1) and vps & set(tier2) and vps & set(stubs)
    assert len(plan.hosts()) == sizes.hosts
    assert [n.name for n in plan.routers() if n.role.value == "peer"] == ["observer"]


def test_the_same_seed_gives_the_same_file_and_another_seed_another() -> None:
    a = generate.render(generate.Sizes(seed=7), "x", "")
    assert a == generate.render(generate.Sizes(seed=7), "x", "")
    assert a != generate.render(generate.Sizes(seed=8), "x", "")


@pytest.mark.parametrize("path", COMMITTED, ids=lambda p: p.name)
def test_committed_files_are_what_the_generator_writes(path: Path, tmp_path: Path) -> None:
    text = path.read_text()
    args = re.search(r"^#   bgplab topology generate ?(.*)$", text, re.M)[1]
    out = tmp_path / "t.yaml"
    r = CliRunner().invoke(cli, ["topology", "generate", *shlex.split(args), "-o", str(out)])
    assert r.exit_code == 0, r.output
    assert out.read_text() == text
    topo = load_topology(path)
    ases = {n.asn for n in topo.nodes.values() if n.kind is not Kind.host}
    if path.name == "byoip-internet.yaml":
        assert 40 <= len(ases) <= 60
        assert topo.timers.mrai == 30
        assert sum(p.count for p in topo.pools.values()) == 6500
        assert sum(p.count for p in topo.pools.values() if p.byoip) == 4306


def test_bad_sizes_are_named() -> None:
    with pytest.raises(UsageError) as e:
        generate.build(generate.Sizes(tier1=1, hosts=99, tier2_peering=2))
    text = str(e.value)
    assert "--tier1: at least 2" in text and "--hosts: between 0 and the number of stubs (28)" in text
    assert "--tier2-peering: a probability between 0 and 1" in text
    r = CliRunner().invoke(cli, ["topology", "generate", "--tier1", "1"])
    assert r.exit_code != 0 and "--tier1: at least 2" in r.output


def test_implementations_are_dealt_by_share_and_placed_by_the_seed() -> None:
    mix = (("frr", 0.5), ("bird", 0.3), ("gobgp", 0.2))
    doc = generate.build(generate.Sizes(seed=3, implementations=mix))
    routers = {n: s["implementation"] for n, s in doc["nodes"].items() if s.get("kind") == "router"}
    assert routers.pop("collector") == "frr"  # the instrument is not dealt
    counts = Counter(routers.values())
    assert sum(counts.values()) == 45 and counts == {"frr": 22, "bird": 14, "gobgp": 9}  # 22.5, 13.5, 9: largest remainders
    again = generate.build(generate.Sizes(seed=3, implementations=mix))
    assert again == doc
    other = generate.build(generate.Sizes(seed=4, implementations=mix))
    assert {n: s.get("implementation") for n, s in other["nodes"].items()} != {n: s.get("implementation") for n, s in doc["nodes"].items()}
    # the graph is the one FRR alone gets: only the implementations differ
    plain = generate.build(generate.Sizes(seed=3))
    assert plain["links"] == doc["links"]
    parse_topology(doc, "mixed")  # validates like any file


def test_bad_implementation_shares_are_named() -> None:
    for mix, words in (((("cisco", 1.0),), "no router implementation cisco"), ((("frr", -1.0),), "shares are >= 0")):
        with pytest.raises(UsageError, match=words):
            generate.build(generate.Sizes(implementations=mix))
    r = CliRunner().invoke(cli, ["topology", "generate", "--implementations", "frr=half"])
    assert r.exit_code == 2 and "a share is a number" in r.output

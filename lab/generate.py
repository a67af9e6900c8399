"""An Internet-like topology, generated: tiers of ASes with business relationships.

``bgplab topology generate`` writes what ``build`` returns as an ordinary topology file;
it validates like any other. The same sizes and seed give the same file, byte for byte.

The shape follows what measurements of the AS graph describe (CAIDA's AS relationships,
the hierarchy of Gao 2001 and Oliveira et al. 2010):

* tier 1: a clique of transit-free networks, each the peer of every other;
* tier 2: regional transits, each a customer of two or three tier-1s, peering with some
  other tier-2s (at exchange points);
* stubs and eyeball networks: customers of two tier-2s (multihomed), some of them with
  end hosts for the probes;
* the edge network (AS13335-like): several PoPs, each an ExaBGP speaker announcing the
  same anycast prefixes, a customer of one tier-1 and one tier-2 (paid transit) and a peer
  of other tier-2s and of eyeballs (as a large CDN peers openly);
* the observer (the incident graph's peer): a peer of one PoP and a customer of a tier-2;
* a route collector fed by vantage points in every tier, as RIPE RIS and RouteViews are.

Every router is its own AS (the lab builds eBGP only). Timers are the Internet's unless
told otherwise: an advertisement interval (MRAI) of 30 s, as RFC 4271 suggests and many
deployed routers use, and keepalive 30 / hold 90.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

import yaml

from lab.errors import UsageError

# The reference lab's inventory: 6,500 prefixes, 4,306 of them BYOIP (the incident's figure).
INCIDENT_POOLS: dict[str, dict[str, Any]] = {
    "byoip-v4": {"prefix": "100.64.0.0/11", "length": 24, "count": 4000, "byoip": True},
    "byoip-v6": {"prefix": "2001:db8:4000::/36", "length": 48, "count": 306, "byoip": True},
    "owned-v4": {"prefix": "100.96.0.0/11", "length": 24, "count": 2000},
    "owned-v6": {"prefix": "2001:db8:8000::/36", "length": 48, "count": 194},
}

EDGE_ASN = 13335
OBSERVER_ASN = 65301
COLLECTOR_ASN = 65500
TIER1_BASE, TIER2_BASE, STUB_BASE = 64600, 64700, 64800


@dataclass(frozen=True)
class Sizes:
    """What to generate. ``ases`` counts every AS: the routers' and the edge's (one AS)."""

    tier1: int = 4
    tier2: int = 12
    stubs: int = 28
    pops: int = 4
    hosts: int = 4  # eyeball networks with an end host each (probe sources)
    vantage_points: int = 8  # the collector's sessions, spread over the tiers
    tier2_peering: float = 0.3  # chance that two tier-2s peer
    edge_peers: int = 4  # networks each PoP peers with (tier-2s and eyeballs)
    seed: int = 1
    # Each router implementation's share of the routers (the collector stays FRR): frr alone
    # by default; a mix is dealt out by largest remainder and placed by the seed.
    implementations: tuple[tuple[str, float], ...] = (("frr", 1.0),)
    mrai: int = 30
    keepalive: int = 30
    hold: int = 90

    @property
    def ases(self) -> int:
        return self.tier1 + self.tier2 + self.stubs + 3  # + observer, collector, edge

    def problems(self) -> list[str]:
        out = []
        if self.tier1 < 2:
            out.append("--tier1: at least 2 (a clique of tier-1s peering with each other)")
        if self.tier2 < 2:
            out.append("--tier2: at least 2 (each stub is a customer of two tier-2s)")
        if self.stubs < 1:
            out.append("--stubs: at least 1")
        if self.pops < 1:
            out.append("--pops: at least 1 (the edge's speakers)")
        if not 0 <= self.hosts <= self.stubs:
            out.append(f"--hosts: between 0 and the number of stubs ({self.stubs})")
        if self.vantage_points < 1 or self.vantage_points > self.tier1 + self.tier2 + self.stubs:
            out.append(f"--vantage-points: between 1 and the routers that can feed the collector "
                       f"({self.tier1 + self.tier2 + self.stubs})")
        shares = dict(self.implementations)
        if not shares or any(w < 0 for w in shares.values()) or sum(shares.values()) <= 0:
            out.append("--implementations: shares are >= 0 and at least one is > 0 (frr=0.5,bird=0.5)")
        # imported here: the table of implementations is only needed when a mix is asked for
        from lab.routers import ROUTERS
        unknown = [n for n in shares if n not in ROUTERS]
        if unknown:
            out.append(f"--implementations: no router implementation {', '.join(unknown)} (implementations: {', '.join(ROUTERS)})")
        if not 0 <= self.tier2_peering <= 1:
            out.append("--tier2-peering: a probability between 0 and 1")
        if TIER1_BASE + self.tier1 > TIER2_BASE or TIER2_BASE + self.tier2 > STUB_BASE or STUB_BASE + self.stubs > OBSERVER_ASN:
            out.append(f"too many ASes in one tier for the private ASN plan (tier 1 from {TIER1_BASE}, "
                       f"tier 2 from {TIER2_BASE}, stubs from {STUB_BASE}, at most 100 per tier, "
                       f"{OBSERVER_ASN - STUB_BASE} stubs)")
        if self.hold and self.keepalive * 3 > self.hold:
            out.append(f"--keepalive {self.keepalive} is more than a third of --hold {self.hold}")
        return out


def _deal_implementations(nodes: dict[str, dict[str, Any]], sizes: Sizes) -> None:
    """Each router but the collector gets an implementation: counts by largest remainder of
    the shares, placed by a generator of their own (the graph is the same as with FRR alone)."""
    shares = [(n, w) for n, w in sizes.implementations if w > 0]
    if [n for n, _ in shares] == ["frr"]:
        return
    routers = [n for n, spec in nodes.items() if spec.get("kind") == "router" and spec.get("role") != "collector"]
    total = sum(w for _, w in shares)
    exact = [(n, w * len(routers) / total) for n, w in shares]
    counts = {n: int(x) for n, x in exact}
    for n, _ in sorted(exact, key=lambda e: (-(e[1] - int(e[1])), e[0]))[:len(routers) - sum(counts.values())]:
        counts[n] += 1
    deck = [n for n, _ in shares for _ in range(counts[n])]
    random.Random(f"implementations-{sizes.seed}").shuffle(deck)
    for router, impl in zip(routers, deck):
        nodes[router]["implementation"] = impl


def build(sizes: Sizes, name: str = "internet") -> dict[str, Any]:
    """The topology as a mapping, ready for ``yaml.safe_dump`` and ``parse_topology``."""
    problems = sizes.problems()
    if problems:
        raise UsageError("cannot generate this topology: " + "; ".join(problems))
    rng = random.Random(sizes.seed)
    tier1 = [f"tier1-{i + 1}" for i in range(sizes.tier1)]
    tier2 = [f"tier2-{i + 1:02d}" for i in range(sizes.tier2)]
    stubs = [f"stub-{i + 1:02d}" for i in range(sizes.stubs)]
    pops = [f"edge-{i + 1}" for i in range(sizes.pops)]
    nodes: dict[str, dict[str, Any]] = {}
    for i, n in enumerate(tier1):
        nodes[n] = {"kind": "router", "implementation": "frr", "role": "transit", "asn": TIER1_BASE + i + 1}
    for i, n in enumerate(tier2):
        nodes[n] = {"kind": "router", "implementation": "frr", "role": "transit", "asn": TIER2_BASE + i + 1}
    for i, n in enumerate(stubs):
        nodes[n] = {"kind": "router", "implementation": "frr", "role": "eyeball", "asn": STUB_BASE + i + 1}
    for n in pops:
        nodes[n] = {"kind": "exabgp", "role": "edge", "asn": EDGE_ASN, "originates": list(INCIDENT_POOLS)}
    nodes["observer"] = {"kind": "router", "implementation": "frr", "role": "peer", "asn": OBSERVER_ASN}
    nodes["collector"] = {"kind": "router", "implementation": "frr", "role": "collector", "asn": COLLECTOR_ASN}

    links: list[dict[str, Any] | list[str]] = []

    def link(a: str, b: str, rel: str) -> None:
        links.append({"endpoints": [a, b], "relationship": rel})

    # Tier 1: a clique of peers.
    for i, a in enumerate(tier1):
        for b in tier1[i + 1:]:
            link(a, b, "p2p")
    # Tier 2: two or three tier-1 providers each; peering among themselves at random, and
    # each with at least one peer so that peer paths exist everywhere.
    for a in tier2:
        for p in sorted(rng.sample(tier1, min(len(tier1), rng.choice((2, 2, 3))))):
            link(a, p, "c2p")
    peered: set[frozenset[str]] = set()
    for i, a in enumerate(tier2):
        for b in tier2[i + 1:]:
            if rng.random() < sizes.tier2_peering:
                peered.add(frozenset((a, b)))
    for a in tier2:
        if not any(a in pair for pair in peered):
            b = rng.choice([x for x in tier2 if x != a])
            peered.add(frozenset((a, b)))
    for a, b in sorted(tuple(sorted(p)) for p in peered):
        link(a, b, "p2p")
    # Stubs: customers of two tier-2s (a few of three), spread evenly over the tier-2s.
    load = {t: 0 for t in tier2}
    for s in stubs:
        k = 3 if rng.random() < 0.15 and len(tier2) >= 3 else 2
        least = sorted(tier2, key=lambda t: (load[t], rng.random()))[:k]
        for p in sorted(least):
            load[p] += 1
            link(s, p, "c2p")
    # The edge: each PoP buys transit from one tier-1 and one tier-2, and peers openly with
    # tier-2s and eyeball networks (the PoPs share every prefix: anycast).
    for i, pop in enumerate(pops):
        t1 = tier1[i % len(tier1)]
        t2 = tier2[(i * 3) % len(tier2)]
        link(pop, t1, "c2p")
        link(pop, t2, "c2p")
        candidates = [t for t in tier2 if t != t2] + stubs
        for peer in sorted(rng.sample(candidates, min(sizes.edge_peers, len(candidates)))):
            link(pop, peer, "p2p")
    # The observer: the incident graph's peer, direct with the first PoP, and a customer of
    # a tier-2 that does not peer with that PoP.
    link("observer", pops[0], "p2p")
    direct = {lk["endpoints"][1] for lk in links if isinstance(lk, dict) and lk["endpoints"][0] == pops[0]}
    upstream = next((t for t in tier2 if t not in direct), tier2[-1])
    link("observer", upstream, "c2p")
    # The collector's vantage points: a share of every tier, at least one tier-1.
    vps = _vantage_points(rng, sizes.vantage_points, tier1, tier2, stubs)
    for vp in vps:
        links.append(["collector", vp])
    _deal_implementations(nodes, sizes)
    # End hosts behind some eyeball networks.
    for i, s in enumerate(sorted(rng.sample(stubs, sizes.hosts))):
        host = f"host{i + 1}"
        nodes[host] = {"kind": "host"}
        links.append([host, s])

    return {
        "name": name,
        "description": (f"generated Internet-like lab: {sizes.tier1} tier-1, {sizes.tier2} tier-2, {sizes.stubs} "
                        f"stub/eyeball ASes, the edge with {sizes.pops} PoPs, observer and collector "
                        f"({sizes.ases} ASes; seed {sizes.seed})"),
        "timers": {"keepalive": sizes.keepalive, "hold": sizes.hold, "mrai": sizes.mrai, "connect_retry": 1},
        "pools": INCIDENT_POOLS,
        "nodes": nodes,
        "links": links,
    }


def _vantage_points(rng: random.Random, n: int, tier1: list[str], tier2: list[str], stubs: list[str]) -> list[str]:
    """``n`` vantage points across the tiers in proportion to a collector's peers: about a
    quarter tier-1s, half tier-2s, a quarter stubs (and every tier at least once)."""
    want = [max(1, round(n * 0.25)), max(1, round(n * 0.5)), 0]
    want[2] = max(0, n - want[0] - want[1])
    out: list[str] = []
    for pool, k in zip((tier1, tier2, stubs), want):
        out += sorted(rng.sample(pool, min(k, len(pool))))
    rest = [x for x in tier1 + tier2 + stubs if x not in out]
    out += sorted(rng.sample(rest, n - len(out))) if len(out) < n else []
    return out[:n]


HEADER = """\
# Generated by
#   bgplab topology generate {args}
# an Internet-like AS graph with business relationships (tier-1 clique, multihomed tier-2s
# and stubs, the edge's PoPs as customers and peers, the observer and a route collector).
# Regenerate rather than edit by hand.
"""


def render(sizes: Sizes, name: str, args: str) -> str:
    """The file's text: a header saying how to regenerate it, then the topology."""
    body = yaml.safe_dump(build(sizes, name), sort_keys=False, default_flow_style=None, width=120)
    return HEADER.format(args=args) + body

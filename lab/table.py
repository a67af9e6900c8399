"""A synthetic Internet routing table: deterministic per seed, shaped like today's.

A full-table lab needs what a router sees from a transit: about a million IPv4 and two
hundred thousand IPv6 prefixes, of the lengths real tables have, behind AS paths of
realistic length towards tens of thousands of origin ASes, so that the routers hold as
many distinct attribute sets as they would in reality (each one its own UPDATE).

Where the shape comes from (approximations, read off public reports; the generator's
knobs, not measurements of the lab):

* IPv4 prefix lengths: the share of each length in the IPv4 table as APNIC's and
  potaroo.net's BGP table reports (bgp.potaroo.net, the CIDR report) show it for
  2024-2025: /24 about 60 %, then /22, /23, /20, /21, /19, /16, /18, /17, and a thin
  tail of shorter prefixes.
* IPv6 prefix lengths: /48 about half, then /32, /44, /40, /46, /36, /29 (potaroo.net's
  AS131072 IPv6 report: ~220,000 FIB entries, average prefix length ~43).
* Origins: ~75,000 ASes originate IPv4 routes, most one to a few prefixes, a few
  thousands (a Zipf-like spread); ~33,000 originate IPv6.
* AS path length: 4 to 5 ASes on average as seen from a transit (APNIC's weekly routing
  table report), with 1 in 10 paths prepended.

Synthetic ASNs come from the private 4-byte range (RFC 6996), addresses from public
unicast space outside what the lab uses for links, loopbacks and its own pools. The
prefixes are unique; like a real table, some cover others (a /16 and /24s inside it).
"""

from __future__ import annotations

import bisect
import functools
import ipaddress
import random
from dataclasses import dataclass
from typing import Iterator

# Share of each prefix length (the generator's input, from the reports above).
IPV4_LENGTHS = {
    24: 0.600, 22: 0.130, 23: 0.110, 20: 0.050, 21: 0.044, 19: 0.024, 16: 0.0135, 18: 0.0135,
    17: 0.008, 15: 0.002, 14: 0.0012, 13: 0.0006, 12: 0.0003, 11: 0.0001,
}
IPV6_LENGTHS = {
    48: 0.52, 32: 0.12, 44: 0.09, 40: 0.06, 46: 0.03, 36: 0.03, 29: 0.025, 47: 0.02, 42: 0.02,
    45: 0.015, 34: 0.01, 38: 0.01, 43: 0.01, 28: 0.01, 33: 0.01, 30: 0.005, 35: 0.005, 41: 0.005,
}
# Path length (ASes after the speaker's own) and its share: mean ~3.4, ~4.4 with the speaker.
PATH_LENGTHS = {1: 0.04, 2: 0.20, 3: 0.32, 4: 0.24, 5: 0.12, 6: 0.05, 7: 0.03}
PREPENDED = 0.10  # share of origins whose path repeats the origin AS 1-3 times
TIER1 = 16  # ASes a path's first hop is drawn from (the speaker buys transit from them)
TRANSIT = 2_000  # ASes in the middle of paths
PRIVATE_ASN = 4_200_000_000  # RFC 6996: 4200000000-4294967294

# Public unicast space the generator may use, minus what the lab itself uses.
IPV4_SPACE = ipaddress.ip_network("0.0.0.0/0")
IPV4_EXCLUDED = [ipaddress.ip_network(n) for n in (
    "0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16", "172.16.0.0/12",
    "192.0.0.0/24", "192.0.2.0/24", "192.168.0.0/16", "198.18.0.0/15", "198.51.100.0/24",
    "203.0.113.0/24", "224.0.0.0/3",
)]
IPV6_SPACE = ipaddress.ip_network("2000::/3")
IPV6_EXCLUDED = [ipaddress.ip_network("2001:db8::/32")]


@dataclass(frozen=True)
class Route:
    """Prefixes that share one AS path (one attribute set, one UPDATE's worth)."""

    as_path: tuple[int, ...]
    prefixes: tuple[str, ...]


@dataclass(frozen=True)
class Table:
    ipv4: tuple[Route, ...]
    ipv6: tuple[Route, ...]

    def count(self, family: str) -> int:
        return sum(len(r.prefixes) for r in getattr(self, family))

    def attribute_sets(self, family: str) -> int:
        return len(getattr(self, family))

    def routes(self) -> Iterator[tuple[str, Route]]:
        for family in ("ipv4", "ipv6"):
            for r in getattr(self, family):
                yield family, r


def _counts(total: int, shares: dict[int, float]) -> dict[int, int]:
    norm = sum(shares.values())
    counts = {length: int(total * s / norm) for length, s in shares.items()}
    counts[max(shares, key=shares.get)] += total - sum(counts.values())  # rounding goes to the bulk
    return counts


def _allowed(version: int, excluded: list) -> list[tuple[int, int]]:
    """(first, last) address integer ranges usable for prefixes, sorted."""
    space = IPV4_SPACE if version == 4 else IPV6_SPACE
    ranges = [(int(space.network_address), int(space.broadcast_address))]
    for ex in excluded:
        lo, hi = int(ex.network_address), int(ex.broadcast_address)
        out = []
        for a, b in ranges:
            if hi < a or lo > b:
                out.append((a, b))
                continue
            if a < lo:
                out.append((a, lo - 1))
            if hi < b:
                out.append((hi + 1, b))
        ranges = out
    return sorted(ranges)


def _prefixes(rng: random.Random, version: int, total: int, shares: dict[int, float], excluded: list) -> list[str]:
    bits = 32 if version == 4 else 128
    ranges = _allowed(version, excluded)
    starts = [a for a, _ in ranges]
    sizes = [b - a + 1 for a, b in ranges]
    cumulative = []
    acc = 0
    for s in sizes:
        acc += s
        cumulative.append(acc)
    out: list[str] = []
    to_text = ipaddress.IPv4Address if version == 4 else ipaddress.IPv6Address
    for length, n in sorted(_counts(total, shares).items()):
        step = 1 << (bits - length)
        seen: set[int] = set()
        while len(seen) < n:
            pos = rng.randrange(acc)
            i = bisect.bisect_right(cumulative, pos)
            addr = starts[i] + (pos - (cumulative[i] - sizes[i]))
            net = addr - (addr % step)
            if net < starts[i] or net + step - 1 > starts[i] + sizes[i] - 1:
                continue  # the aligned block crosses out of usable space
            seen.add(net)
        out.extend(f"{to_text(net)}/{length}" for net in sorted(seen))
    rng.shuffle(out)
    return out


def _paths(rng: random.Random, origins: int) -> list[tuple[int, ...]]:
    lengths = list(PATH_LENGTHS)
    weights = list(PATH_LENGTHS.values())
    tier1 = [PRIVATE_ASN + i for i in range(TIER1)]
    transit = [PRIVATE_ASN + TIER1 + i for i in range(TRANSIT)]
    out = []
    for i in range(origins):
        origin = PRIVATE_ASN + TIER1 + TRANSIT + i
        hops = rng.choices(lengths, weights)[0]
        if hops == 1:
            path = [origin]
        else:
            path = [rng.choice(tier1)] + [rng.choice(transit) for _ in range(hops - 2)] + [origin]
        if rng.random() < PREPENDED:
            path += [origin] * rng.randint(1, 3)
        out.append(tuple(path))
    return out


def _assign(rng: random.Random, prefixes: list[str], paths: list[tuple[int, ...]]) -> tuple[Route, ...]:
    """Spread prefixes over origins Zipf-like (a few origins hold thousands, most a few);
    every origin gets at least one."""
    n = len(paths)
    weights = [1.0 / (rank + 1) ** 0.7 for rank in range(n)]  # the largest origin: ~1 % of the table
    groups: list[list[str]] = [[] for _ in range(n)]
    k = min(n, len(prefixes))
    for i in range(k):  # one each first
        groups[i].append(prefixes[i])
    picks = rng.choices(range(n), weights, k=len(prefixes) - k)
    for p, g in zip(prefixes[k:], picks):
        groups[g].append(p)
    return tuple(Route(path, tuple(g)) for path, g in zip(paths, groups) if g)


@functools.lru_cache(maxsize=2)
def generate(ipv4: int, ipv6: int, seed: int = 1, origins_v4: int | None = None,
             origins_v6: int | None = None, avoid: tuple[str, ...] = ()) -> Table:
    """The table for these sizes and seed; the same arguments give the same table.

    Origins default to the ratios of today's table: ~75,000 for a million IPv4 prefixes
    (one per ~13), ~33,000 for 200,000 IPv6 (one per ~6). ``avoid``: networks (the lab's
    own pools) no generated prefix may fall in or cover.
    """
    rng = random.Random(seed)
    extra = [ipaddress.ip_network(n) for n in avoid]
    excluded4 = IPV4_EXCLUDED + [n for n in extra if n.version == 4]
    excluded6 = IPV6_EXCLUDED + [n for n in extra if n.version == 6]
    o4 = origins_v4 if origins_v4 is not None else max(1, round(ipv4 / 13.3)) if ipv4 else 0
    o6 = origins_v6 if origins_v6 is not None else max(1, round(ipv6 / 6.0)) if ipv6 else 0
    # IPv6 origins are mostly networks that originate IPv4 too: both draw on one list of paths.
    paths = _paths(rng, max(o4, o6))
    v4 = _assign(rng, _prefixes(rng, 4, ipv4, IPV4_LENGTHS, excluded4), paths[:o4]) if ipv4 else ()
    v6 = _assign(rng, _prefixes(rng, 6, ipv6, IPV6_LENGTHS, excluded6), paths[:o6]) if ipv6 else ()
    return Table(v4, v6)

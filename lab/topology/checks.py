"""A topology's problems, every one at once with its path (``nodes.t3.asn: ...``): pydantic's,
said in a user's words, and the cross-references the models cannot see (links to unknown
nodes, ASNs, relationships, provider cycles)."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from lab.routers import ROUTERS, get_router
from lab.topology.model import NODE_NAME, RESERVED, Kind, LongLink, Pool, Relationship, Role, TablePool, Topology


def _loc(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out or "(top level)"


def pydantic_problems(err: ValidationError) -> list[str]:
    problems = []
    for e in err.errors():
        # Union members add their own names to the location; they are noise to a user.
        loc = tuple(p for p in e["loc"] if p not in ("list[str]", "LongLink", "function-after[_fits(), Pool]", "block", "internet"))
        loc = tuple(p for p in loc if not (isinstance(p, str) and p.startswith(("list[", "function-"))))
        msg = e["msg"].removeprefix("Value error, ")
        if e["type"] == "extra_forbidden":
            msg = "unknown field (check its spelling)"
        problems.append(f"{_loc(loc)}: {msg}")
    # A link that fails both union members is reported twice; keep each message once.
    return list(dict.fromkeys(problems))


def semantic_problems(t: Topology) -> list[str]:
    """Cross-references pydantic cannot see: every one is collected, none stops the others."""
    problems: list[str] = []
    for name in t.nodes:
        if not NODE_NAME.match(name):
            problems.append(
                f"nodes.{name}: node names are 1-24 characters of a-z, 0-9 and '-', starting with a letter"
            )

    for name, node in t.nodes.items():
        for j, pool in enumerate(node.originates):
            if pool not in t.pools:
                known = ", ".join(sorted(t.pools)) or "none declared"
                problems.append(f"nodes.{name}.originates[{j}]: unknown pool '{pool}' (pools: {known})")

    for name, node in t.nodes.items():
        if node.kind is Kind.router and node.effective_role is Role.collector and node.implementation in ROUTERS \
                and not get_router(node.implementation).records_updates:
            problems.append(f"nodes.{name}.implementation: a collector records every UPDATE it receives, and "
                            f"{get_router(node.implementation).label} writes no such feed here (a collector runs "
                            f"{', '.join(n for n in ROUTERS if get_router(n).records_updates)})")

    for name, node in t.nodes.items():
        blocks = [p for p in node.originates if p in t.pools and not isinstance(t.pools[p], TablePool)]
        if node.feeder == "gobgp" and blocks:
            problems.append(f"nodes.{name}.feeder: a speaker fed by GoBGP carries synthetic tables only, and it "
                            f"originates the block pool{'s' if len(blocks) > 1 else ''} {', '.join(blocks)} (the "
                            "controller announces and withdraws those through ExaBGP: feeder: exabgp)")

    # Routers in one AS would need iBGP; the lab builds eBGP sessions only.
    seen_asn: dict[int, str] = {}
    for name, node in t.nodes.items():
        if node.kind is not Kind.router:
            continue
        if node.asn in seen_asn:
            problems.append(
                f"nodes.{name}.asn: AS{node.asn} is already used by router '{seen_asn[node.asn]}' "
                "(routers sharing an AS would need iBGP, which the lab does not build)"
            )
        seen_asn[node.asn] = name
    for name, node in t.nodes.items():
        if node.kind is Kind.exabgp and node.asn in seen_asn:
            problems.append(f"nodes.{name}.asn: AS{node.asn} is a router's AS ('{seen_asn[node.asn]}')")

    link_count: dict[str, int] = {n: 0 for n in t.nodes}
    pairs: dict[frozenset[str], int] = {}
    for i in range(len(t.links)):
        a, b = t.link_endpoints(i)
        where = f"links[{i}]"
        missing = [n for n in (a, b) if n not in t.nodes]
        for n in missing:
            problems.append(f"{where}: unknown node '{n}'")
        if missing:
            continue
        if a == b:
            problems.append(f"{where}: a link joins two different nodes, not '{a}' to itself")
            continue
        pair = frozenset((a, b))
        if pair in pairs:
            problems.append(f"{where}: '{a}' and '{b}' are already linked by links[{pairs[pair]}]")
        pairs[pair] = i
        link_count[a] += 1
        link_count[b] += 1
        ka, kb = t.nodes[a].kind, t.nodes[b].kind
        if not t.link_extended_message(i) and Kind.exabgp not in (ka, kb):
            problems.append(
                f"{where}.extended_message: only a speaker's session can turn extended messages off "
                f"(a router offers them on every session, so '{a}' and '{b}' always negotiate them)"
            )
        rel = t.links[i].relationship if isinstance(t.links[i], LongLink) else None
        if rel is not None:
            roles = {t.nodes[a].effective_role, t.nodes[b].effective_role}
            if Role.host in roles:
                problems.append(f"{where}.relationship: a host's link carries no BGP session, so no relationship")
            elif Role.collector in roles:
                problems.append(f"{where}.relationship: a collector's sessions have no relationship (it is fed "
                                "everything, as a customer is, and exports nothing); leave it out")
            elif rel is not Relationship.p2p and Kind.exabgp in (ka, kb):
                # The edge's speakers are one AS: they buy transit or peer, they sell no transit
                # here (ExaBGP re-exports nothing it hears, and is sent nothing).
                spk, other = (a, b) if ka is Kind.exabgp else (b, a)
                if rel is not (Relationship.c2p if spk == a else Relationship.p2c):
                    problems.append(f"{where}.relationship: speaker '{spk}' can be a customer of '{other}' or its "
                                    f"peer, not its {'sibling' if rel is Relationship.s2s else 'provider'} "
                                    "(a speaker re-exports nothing)")
        if Kind.router not in (ka, kb):
            problems.append(
                f"{where}: '{a}' ({ka.value}) and '{b}' ({kb.value}) cannot be linked: every link has a router on one end"
            )
        for n, other in ((a, b), (b, a)):
            if t.nodes[n].kind is Kind.host and t.nodes[other].effective_role is not Role.eyeball:
                problems.append(f"{where}: host '{n}' must connect to an eyeball router, not '{other}'")
            if t.nodes[n].effective_role is Role.collector and t.nodes[other].kind is not Kind.router:
                problems.append(f"{where}: collector '{n}' peers with routers only, not '{other}'")

    problems += _provider_cycles(t)

    for name, count in link_count.items():
        node = t.nodes[name]
        if count == 0:
            problems.append(f"nodes.{name}: not connected by any link")
        elif node.kind is Kind.host and count > 1:
            problems.append(f"nodes.{name}: a host has exactly one link (it has {count})")

    # Pools must not overlap each other or the lab's own link and loopback space.
    nets = [(n, p.network) for n, p in t.pools.items() if isinstance(p, Pool)]
    for i, (n1, net1) in enumerate(nets):
        for reserved in RESERVED:
            if net1.version == reserved.version and net1.overlaps(reserved):
                problems.append(f"pools.{n1}.prefix: {net1} overlaps {reserved}, which the lab uses for links and loopbacks")
        for n2, net2 in nets[i + 1 :]:
            if net1.version == net2.version and net1.overlaps(net2):
                problems.append(f"pools.{n2}.prefix: {net2} overlaps pool '{n1}' ({net1})")
    tables = [n for n, p in t.pools.items() if isinstance(p, TablePool)]
    for n in tables[1:]:
        problems.append(f"pools.{n}: a lab carries one Internet table ('{tables[0]}'); two generated tables would "
                        "share prefixes (several speakers may originate the same one)")
    unused = set(t.pools) - {p for node in t.nodes.values() for p in node.originates}
    for n in sorted(unused):
        problems.append(f"pools.{n}: no speaker originates this pool")
    return problems


def _provider_cycles(t: Topology) -> list[str]:
    """Gao-Rexford converges when no AS is, through its providers, its own provider."""
    providers: dict[str, list[str]] = {n: [] for n in t.nodes}
    for i in range(len(t.links)):
        a, b = t.link_endpoints(i)
        if a not in t.nodes or b not in t.nodes or a == b:
            continue
        if Role.collector in (t.nodes[a].effective_role, t.nodes[b].effective_role):
            continue  # a collector exports nothing: it closes no cycle
        rel = t.link_relationship(i)
        if rel is Relationship.c2p:
            providers[a].append(b)
        elif rel is Relationship.p2c:
            providers[b].append(a)
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(n: str) -> list[str] | None:
        state[n] = 1
        stack.append(n)
        for p in providers[n]:
            if state.get(p) == 1:
                return stack[stack.index(p):] + [p]
            if p not in state and (cycle := visit(p)):
                return cycle
        stack.pop()
        state[n] = 2
        return None

    for n in t.nodes:
        if n not in state and (cycle := visit(n)):
            return [f"links: customer-to-provider cycle {' -> '.join(cycle)} (each is a customer of the next; "
                    "no AS can be its own provider's provider)"]
    return []


def notes(t: Topology) -> list[str]:
    """What a valid topology does not do that a reader could expect, said before the lab is up:
    routers whose implementation installs nothing in the kernel (RIB-only), and an MRAI set
    for routers whose implementation has none."""
    out = []
    routers = {n: node for n, node in t.nodes.items() if node.kind is Kind.router and node.implementation in ROUTERS}
    by_impl: dict[str, list[str]] = {}
    for n, node in routers.items():
        by_impl.setdefault(node.implementation, []).append(n)
    for impl, names in by_impl.items():
        r = get_router(impl)
        if r.kernel_proto is None:
            names_ = [n for n in names if routers[n].effective_role is not Role.collector]
            if names_:
                out.append(f"nodes {', '.join(names_)}: RIB-only ({r.label} installs no route in the kernel here), so "
                           "no traffic is forwarded through them and their kernel figures are null")
    mrai = max([t.timers.mrai or 0] + [node.timers.mrai or 0 for node in t.nodes.values()]
               + [t.link_timers(i).mrai or 0 for i in range(len(t.links))])
    if mrai:
        without = [n for n, node in routers.items() if not get_router(node.implementation).mrai
                   and node.effective_role is not Role.collector]
        if without:
            labels = sorted({get_router(routers[n].implementation).label for n in without})
            out.append(f"nodes {', '.join(without)}: {' and '.join(labels)} ha{'s' if len(labels) == 1 else 've'} no MRAI, "
                       f"so the topology's MRAI (up to {mrai} s) does not pace their UPDATEs")
    return out

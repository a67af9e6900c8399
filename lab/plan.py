"""The plan: everything derived from a topology, pure and deterministic.

Addresses, interface names, sessions, the prefixes each speaker originates and the
prefixes each router should end up with. No I/O; the same topology and lab name
give the same plan.
"""

from __future__ import annotations

import ipaddress
from collections import deque
from dataclasses import dataclass, field, replace
from functools import cached_property
from itertools import islice

from lab.topology import (
    DEFAULT_TIMERS,
    LINK_V4,
    LINK_V6,
    LOOPBACK_V4,
    LOOPBACK_V6,
    Kind,
    Relation,
    Role,
    Pool,
    TablePool,
    Timers,
    Topology,
    check_lab_name,
)
from lab.table import generate

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
FAMILIES = ("ipv4", "ipv6")


def namespace_name(lab: str, node: str) -> str:
    return f"bgplab-{lab}-{node}"


def family_of(net: IPNetwork) -> str:
    return "ipv4" if net.version == 4 else "ipv6"


@dataclass(frozen=True)
class PlannedPrefix:
    prefix: IPNetwork
    pool: str
    byoip: bool
    origins: tuple[str, ...]  # speakers that originate it

    @property
    def family(self) -> str:
        return family_of(self.prefix)


@dataclass(frozen=True)
class Interface:
    name: str  # inside the node, eth1..ethN in link order, as containerlab names them
    link: int
    peer: str
    peer_ifname: str
    v4: ipaddress.IPv4Interface
    v6: ipaddress.IPv6Interface


@dataclass(frozen=True)
class Session:
    """One eBGP session as seen from its local end."""

    ifname: str
    local_v4: ipaddress.IPv4Address
    local_v6: ipaddress.IPv6Address
    peer: str
    peer_kind: Kind
    peer_role: Role
    peer_asn: int
    peer_v4: ipaddress.IPv4Address
    peer_v6: ipaddress.IPv6Address
    timers: Timers
    extended_message: bool = True  # offered by this end (a speaker's choice; FRR always offers)
    # What the peer is to this end (Gao-Rexford): the link's relationship or the roles' shorthand.
    relation: Relation = Relation.peer
    # The peer connects and does not listen (an ExaBGP speaker): this end waits for it (passive).
    # A speaker GoBGP feeds listens, and waits 5-9 s before its own first attempt (GoBGP's
    # connectLoop), so this end connects to it.
    peer_connects: bool = False


@dataclass(frozen=True)
class NodePlan:
    name: str
    kind: Kind
    role: Role
    asn: int | None
    namespace: str
    index: int
    router_id: ipaddress.IPv4Address
    loopback_v4: ipaddress.IPv4Interface
    loopback_v6: ipaddress.IPv6Interface
    interfaces: tuple[Interface, ...]
    sessions: tuple[Session, ...]
    # Subnets an eyeball router originates (its links to hosts).
    networks: tuple[IPNetwork, ...]
    # Default gateways: a host's eyeball router; a speaker's first router, so that
    # the edge's answers to end hosts find their way back.
    gateway_v4: ipaddress.IPv4Address | None = None
    gateway_v6: ipaddress.IPv6Address | None = None
    pools: tuple[str, ...] = ()
    # Networks a speaker answers on (its pools): every address in them is local to it.
    local_networks: tuple[IPNetwork, ...] = ()
    fib: bool = True  # the topology's `fib` (see installs_routes)
    # Prefixes of synthetic Internet tables this router will hold (its kernel settings
    # are chosen for it when there are any: see lab/routers/frr/daemons.py).
    table_routes: int = 0
    implementation: str | None = None  # a router's (lab.routers): which daemons run it
    feeder: str | None = None  # a speaker's: what feeds its tables (lab.feed: exabgp or gobgp)

    @property
    def installs_routes(self) -> bool:
        """Routers install their best paths into the kernel; the collector only records, and so
        does a router whose topology entry says ``fib: false`` or whose implementation has no
        way to the kernel (RIB-only: lab.routers.base.Router.kernel_proto)."""
        return self.kind is Kind.router and self.role is not Role.collector and self.fib and self.has_fib

    @property
    def has_fib(self) -> bool:
        """Whether this router's implementation can install routes at all."""
        # imported here: the implementations import this module
        from lab.routers import get_router
        return self.kind is Kind.router and get_router(self.implementation).kernel_proto is not None


@dataclass(frozen=True)
class LabPlan:
    lab: str
    topology: Topology
    nodes: dict[str, NodePlan]
    prefixes: tuple[PlannedPrefix, ...]
    # Per router: the pool prefixes (by family) it should have in its RIB (and kernel).
    expected: dict[str, dict[str, frozenset[IPNetwork]]] = field(repr=False)
    # Per router: every prefix (pools, tables and eyeball subnets) it should have in its BGP table.
    expected_rib: dict[str, dict[str, int]] = field(repr=False)
    # Synthetic Internet tables (pool name -> its spec) and, per router, how many of their
    # prefixes it should hold, by family. Their prefixes are generated, not planned one by
    # one: a million PlannedPrefix objects would be most of a plan's cost.
    tables: dict[str, TablePool] = field(default_factory=dict, repr=False)
    expected_table: dict[str, dict[str, int]] = field(default_factory=dict, repr=False)

    def table(self, pool: str):  # -> lab.table.Table
        """The generated table of pool ``pool`` (the same for the same topology)."""
        spec = self.tables[pool]
        avoid = tuple(str(p.network) for p in self.topology.pools.values() if isinstance(p, Pool))
        return generate(spec.ipv4, spec.ipv6, spec.seed, avoid=avoid)

    def tables_of(self, speaker: str) -> list[str]:
        return [p for p in self.nodes[speaker].pools if p in self.tables]

    def routers(self) -> list[NodePlan]:
        return [n for n in self.nodes.values() if n.kind is Kind.router]

    @property
    def implementations(self) -> tuple[str, ...]:
        """The router implementations the lab runs (lab.routers), each once."""
        return tuple(dict.fromkeys(n.implementation for n in self.routers()))

    @property
    def tools_needed(self) -> tuple[str, ...]:
        """The router implementations whose programs the lab runs: its routers', and GoBGP's where
        it feeds a speaker's tables (lab.feed)."""
        fed = ("gobgp",) if any(n.feeder == "gobgp" for n in self.speakers()) else ()
        return tuple(dict.fromkeys(self.implementations + fed))

    def speakers(self) -> list[NodePlan]:
        return [n for n in self.nodes.values() if n.kind is Kind.exabgp]

    def channel_speakers(self) -> list[NodePlan]:
        """The speakers the controller announces and withdraws through (ExaBGP's channel): all
        but those GoBGP feeds a table (lab.feed)."""
        return [n for n in self.speakers() if n.feeder != "gobgp"]

    def hosts(self) -> list[NodePlan]:
        return [n for n in self.nodes.values() if n.kind is Kind.host]

    def originated_by(self, speaker: str) -> list[PlannedPrefix]:
        return [p for p in self.prefixes if speaker in p.origins]

    @cached_property
    def pool_keys(self) -> frozenset[tuple[int, str]]:
        """(version, 'a.b.c.d/len') of every pool prefix, for matching kernel routes fast."""
        return frozenset((p.prefix.version, str(p.prefix)) for p in self.prefixes)

    def peer_routers(self) -> list[NodePlan]:
        """Routers of role ``peer``: the incident graph's observer, fed directly by the edge."""
        return [n for n in self.nodes.values() if n.role is Role.peer]

    def counts(self) -> dict[str, int]:
        return {
            "prefixes": len(self.prefixes),
            "byoip": sum(p.byoip for p in self.prefixes),
            "ipv4": sum(p.prefix.version == 4 for p in self.prefixes),
            "ipv6": sum(p.prefix.version == 6 for p in self.prefixes),
        }


def _pool_prefixes(topology: Topology) -> tuple[PlannedPrefix, ...]:
    origins: dict[str, list[str]] = {name: [] for name in topology.pools}
    for node_name, node in topology.nodes.items():
        for pool in node.originates:
            origins[pool].append(node_name)
    out = []
    for name, pool in topology.pools.items():
        if not isinstance(pool, Pool):
            continue
        subnets = islice(pool.network.subnets(new_prefix=pool.length), pool.count)
        out.extend(PlannedPrefix(s, name, pool.byoip, tuple(origins[name])) for s in subnets)
    return tuple(out)


# Routes learned from these are exported to every neighbour; routes learned from the
# others only to customers and siblings (Gao-Rexford's valley-free export rule).
EXPORT_ALL = (Relation.customer, Relation.sibling)


def _reach(start: str, sessions: dict[str, tuple[Session, ...]], nodes: dict[str, NodePlan]) -> set[str]:
    """Routers that learn a route originated at ``start``, under the rendered policies.

    A router prefers customer routes, then siblings', peers', providers' (local preference),
    and exports what it prefers: a customer's or sibling's route to everyone, a peer's or
    provider's only to its customers and siblings. So a router's class is the best relation
    it learned the route over, and the fixpoint below is what BGP converges to. The
    collector exports nothing. Router ASNs are unique, so no AS-path loop cuts a path here.
    """
    best: dict[str, int] = {start: 0}  # 0 = the origin; then EXPORT_ALL -> 1, others -> 2
    queue = deque([start])
    while queue:
        cur = queue.popleft()
        node = nodes[cur]
        if node.kind is Kind.router and node.role is Role.collector:
            continue
        for s in sessions[cur]:
            nb = s.peer
            if nodes[nb].kind is not Kind.router or nb == start:
                continue
            if best[cur] == 2 and s.relation not in EXPORT_ALL:
                continue  # a peer's or provider's route goes to customers and siblings only
            # What cur is to nb decides the class nb learns it in.
            back = next(x.relation for x in sessions[nb] if x.peer == cur)
            cls = 1 if back in EXPORT_ALL else 2
            if cls < best.get(nb, 3):
                best[nb] = cls
                queue.append(nb)
    return set(best) - {start}


def build_plan(topology: Topology, lab: str | None = None) -> LabPlan:
    lab = check_lab_name(lab or topology.name)
    names = list(topology.nodes)
    index = {n: i + 1 for i, n in enumerate(names)}
    link_v4 = LINK_V4.subnets(new_prefix=31)
    link_v6 = LINK_V6.subnets(new_prefix=64)

    ifaces: dict[str, list[Interface]] = {n: [] for n in names}
    link_timers: dict[int, Timers] = {}
    for i in range(len(topology.links)):
        a, b = topology.link_endpoints(i)
        net4, net6 = next(link_v4), next(link_v6)
        ifa, ifb = f"eth{len(ifaces[a]) + 1}", f"eth{len(ifaces[b]) + 1}"
        ifaces[a].append(
            Interface(ifa, i, b, ifb, ipaddress.IPv4Interface(f"{net4[0]}/31"), ipaddress.IPv6Interface(f"{net6[1]}/64"))
        )
        ifaces[b].append(
            Interface(ifb, i, a, ifa, ipaddress.IPv4Interface(f"{net4[1]}/31"), ipaddress.IPv6Interface(f"{net6[2]}/64"))
        )
        link_timers[i] = topology.link_timers(i)

    def peer_iface(iface: Interface) -> Interface:
        return next(x for x in ifaces[iface.peer] if x.link == iface.link)

    base_timers = topology.timers.over(DEFAULT_TIMERS)
    nodes: dict[str, NodePlan] = {}
    for n in names:
        spec = topology.nodes[n]
        i = index[n]
        lo4 = ipaddress.IPv4Interface(f"{LOOPBACK_V4[i]}/32")
        lo6 = ipaddress.IPv6Interface(f"{LOOPBACK_V6[i]}/128")
        sessions = []
        networks: list[IPNetwork] = []
        gw4 = gw6 = None
        for iface in ifaces[n]:
            peer = topology.nodes[iface.peer]
            other = peer_iface(iface)
            if spec.kind is Kind.host or (spec.kind is Kind.exabgp and gw4 is None):
                gw4, gw6 = other.v4.ip, other.v6.ip
            if spec.kind is Kind.host:
                continue
            if peer.kind is Kind.host:
                networks += [iface.v4.network, iface.v6.network]
                continue
            # Most specific wins: link, then each end's node, then the topology, then defaults.
            timers = link_timers[iface.link].over(spec.timers.over(peer.timers.over(base_timers)))
            relations = topology.link_relations(iface.link)
            first = topology.link_endpoints(iface.link)[0] == n
            sessions.append(
                Session(
                    ifname=iface.name,
                    local_v4=iface.v4.ip,
                    local_v6=iface.v6.ip,
                    peer=iface.peer,
                    peer_kind=peer.kind,
                    peer_role=peer.effective_role,
                    peer_asn=peer.asn,
                    peer_v4=other.v4.ip,
                    peer_v6=other.v6.ip,
                    timers=timers,
                    extended_message=topology.link_extended_message(iface.link),
                    relation=relations[0] if first else relations[1],
                    peer_connects=peer.kind is Kind.exabgp and topology.feeder_of(iface.peer) != "gobgp",
                )
            )
        nodes[n] = NodePlan(
            name=n,
            kind=spec.kind,
            implementation=spec.implementation,
            feeder=topology.feeder_of(n),
            role=spec.effective_role,
            asn=spec.asn,
            namespace=namespace_name(lab, n),
            index=i,
            router_id=spec.router_id or lo4.ip,
            loopback_v4=lo4,
            loopback_v6=lo6,
            interfaces=tuple(ifaces[n]),
            sessions=tuple(sessions),
            networks=tuple(networks),
            gateway_v4=gw4,
            gateway_v6=gw6,
            pools=tuple(spec.originates),
            local_networks=tuple(topology.pools[p].network for p in spec.originates if isinstance(topology.pools[p], Pool)),
            fib=spec.fib if spec.fib is not None else True,
        )

    prefixes = _pool_prefixes(topology)
    sessions = {n: nodes[n].sessions for n in names}
    reach = {n: _reach(n, sessions, nodes) for n in names if nodes[n].kind is not Kind.host}

    # A router holds a pool's prefixes when a speaker originating that pool reaches it. Routers
    # that hear the same pools share one set per family (several anycast speakers reach most
    # routers: adding each prefix once per speaker and router was most of a plan's time).
    block_pools = {name for name, pool in topology.pools.items() if isinstance(pool, Pool)}
    pools_at: dict[str, set[str]] = {r: set() for r in names if nodes[r].kind is Kind.router}
    for speaker in (n for n in names if nodes[n].kind is Kind.exabgp):
        for r in reach[speaker]:
            pools_at[r] |= block_pools & set(nodes[speaker].pools)
    by_pools: dict[frozenset[str], dict[str, frozenset[IPNetwork]]] = {}
    for held in {frozenset(p) for p in pools_at.values()}:
        by_pools[held] = {f: frozenset(p.prefix for p in prefixes if p.pool in held and p.family == f) for f in FAMILIES}
    expected = {r: by_pools[frozenset(held)] for r, held in pools_at.items()}
    rib: dict[str, dict[str, int]] = {r: {f: len(expected[r][f]) for f in FAMILIES} for r in expected}
    tables = {name: pool for name, pool in topology.pools.items() if isinstance(pool, TablePool)}
    table_counts: dict[str, dict[str, int]] = {r: {f: 0 for f in FAMILIES} for r in expected}
    for name, pool in tables.items():
        reached = set().union(*(reach[s] for s in names if name in topology.nodes[s].originates))
        for r in reached:
            table_counts[r]["ipv4"] += pool.ipv4
            table_counts[r]["ipv6"] += pool.ipv6
    for r, counts in table_counts.items():
        for f in FAMILIES:
            rib[r][f] += counts[f]
        if counts["ipv4"] + counts["ipv6"]:
            nodes[r] = replace(nodes[r], table_routes=counts["ipv4"] + counts["ipv6"])
    for eyeball in (n for n in names if nodes[n].networks):
        for net in nodes[eyeball].networks:
            for r in reach[eyeball] | {eyeball}:
                rib[r][family_of(net)] += 1

    return LabPlan(
        lab=lab,
        topology=topology,
        nodes=nodes,
        prefixes=prefixes,
        expected=expected,
        expected_rib=rib,
        tables=tables,
        expected_table={r: c for r, c in table_counts.items() if c["ipv4"] + c["ipv6"]},
    )

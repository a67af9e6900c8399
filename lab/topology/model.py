"""What a lab is: nodes, links, ASNs, timers, prefix pools, as pydantic models. Pure: no I/O.

Validation is strict (``extra="forbid"``); the cross-references the models cannot see are
checked in ``lab.topology.checks``.
"""

from __future__ import annotations

import ipaddress
import re
from enum import Enum
from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, field_validator, model_validator

from lab.errors import UsageError
from lab.routers import DEFAULT as DEFAULT_ROUTER, ROUTERS

NODE_NAME = re.compile(r"^[a-z][a-z0-9-]{0,23}$")
# Lab names end up inside namespace names `bgplab-<lab>-<node>`; node names may
# contain '-', so a lab name may not, or `bgplab-a-b-c` would be ambiguous.
LAB_NAME = re.compile(r"^[a-z0-9][a-z0-9_]{0,19}$")

# Link networks come from here (DESIGN: 198.18.0.0/15, benchmarking space).
LINK_V4 = ipaddress.ip_network("198.18.0.0/16")
LOOPBACK_V4 = ipaddress.ip_network("198.19.0.0/16")
LINK_V6 = ipaddress.ip_network("2001:db8:0::/48")
LOOPBACK_V6 = ipaddress.ip_network("2001:db8:1::/48")
RESERVED = [LINK_V4, LOOPBACK_V4, LINK_V6, LOOPBACK_V6]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Kind(str, Enum):
    router = "router"  # a router: its implementation (lab.routers) says which daemons run it
    exabgp = "exabgp"  # a speaker: originates pool prefixes, driven over its API
    host = "host"  # an end host behind an eyeball router


class Role(str, Enum):
    edge = "edge"  # the origin network's speakers (the incident's edge)
    transit = "transit"  # carries everything to everyone
    peer = "peer"  # receives; exports only what it originates
    eyeball = "eyeball"  # access network with end hosts; exports only its own subnets
    collector = "collector"  # receives and records; exports nothing
    host = "host"


class Relationship(str, Enum):
    """A link's business relationship (Gao-Rexford), read from its first endpoint."""

    c2p = "c2p"  # the first endpoint is a customer of the second
    p2c = "p2c"  # the first endpoint is a provider of the second
    p2p = "p2p"  # settlement-free peers: each carries the other's customers' routes only
    s2s = "s2s"  # siblings: mutual transit, everything both ways (two transits, by role)


class Relation(str, Enum):
    """What the neighbour at the other end of a session is to this end."""

    customer = "customer"
    sibling = "sibling"
    peer = "peer"
    provider = "provider"


# Seen from the link's first endpoint: (what the second is to the first, what the first is to the second).
_RELATIONS = {
    Relationship.c2p: (Relation.provider, Relation.customer),
    Relationship.p2c: (Relation.customer, Relation.provider),
    Relationship.p2p: (Relation.peer, Relation.peer),
    Relationship.s2s: (Relation.sibling, Relation.sibling),
}


class Timers(_Strict):
    """Per-session BGP timers, in seconds. Unset fields inherit from the level above."""

    keepalive: Annotated[int, Field(ge=1, le=21845)] | None = None
    hold: Annotated[int, Field(ge=0, le=65535)] | None = None
    mrai: Annotated[int, Field(ge=0, le=600, description="advertisement-interval")] | None = None
    connect_retry: Annotated[int, Field(ge=1, le=65535)] | None = None

    @model_validator(mode="after")
    def _hold_vs_keepalive(self) -> "Timers":
        if self.hold is not None and self.hold != 0 and self.hold < 3:
            raise ValueError("hold must be 0 or at least 3 seconds (RFC 4271)")
        if self.hold and self.keepalive and self.keepalive * 3 > self.hold:
            raise ValueError(
                f"keepalive {self.keepalive} is more than a third of hold {self.hold}"
            )
        return self

    def over(self, base: "Timers") -> "Timers":
        """These timers with unset fields taken from ``base``."""
        merged = base.model_dump()
        merged.update({k: v for k, v in self.model_dump().items() if v is not None})
        return Timers(**merged)


# What feeds a speaker's synthetic tables (lab.feed).
Feeder = Literal["exabgp", "gobgp"]
# The feeder of a speaker that originates synthetic tables only (lab.feed), where it names none:
# chosen by `make bench-full-table`, which feeds the million-prefix table through each in one run.
TABLE_FEEDER = "exabgp"

DEFAULT_TIMERS = Timers(keepalive=3, hold=9, mrai=0, connect_retry=1)


class Pool(_Strict):
    """A block the speakers originate test prefixes from: the first ``count`` subnets of ``length``."""

    prefix: str
    length: Annotated[int, Field(ge=8, le=128)]
    count: Annotated[int, Field(ge=1, le=200_000)]
    byoip: bool = False

    @field_validator("prefix")
    @classmethod
    def _network(cls, v: str) -> str:
        try:
            return str(ipaddress.ip_network(v, strict=True))
        except ValueError as e:
            raise ValueError(f"not a network in CIDR form ({e})") from None

    @model_validator(mode="after")
    def _fits(self) -> "Pool":
        net = ipaddress.ip_network(self.prefix)
        if self.length < net.prefixlen or self.length > net.max_prefixlen:
            raise ValueError(
                f"length /{self.length} must be between /{net.prefixlen} and /{net.max_prefixlen} for {net}"
            )
        available = 2 ** (self.length - net.prefixlen)
        if self.count > available:
            raise ValueError(f"count {self.count} exceeds the {available} /{self.length}s in {net}")
        return self

    @property
    def network(self) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
        return ipaddress.ip_network(self.prefix)


class TablePool(_Strict):
    """A synthetic Internet routing table (lab/table.py): ``kind: internet``. Deterministic
    per seed; prefix lengths, origins and AS paths shaped like today's table. Announced
    by ``up`` and left alone by the Addressing API, which manages the block pools."""

    kind: Literal["internet"]
    ipv4: Annotated[int, Field(ge=0, le=2_000_000)] = 1_000_000
    ipv6: Annotated[int, Field(ge=0, le=500_000)] = 200_000
    seed: int = 1

    @model_validator(mode="after")
    def _some(self) -> "TablePool":
        if self.ipv4 + self.ipv6 == 0:
            raise ValueError("a table needs ipv4 or ipv6 prefixes")
        return self


def _pool_kind(v: Any) -> str:
    kind = v.get("kind") if isinstance(v, dict) else getattr(v, "kind", None)
    return "internet" if kind == "internet" else "block"


AnyPool = Annotated[Union[Annotated[Pool, Tag("block")], Annotated[TablePool, Tag("internet")]], Discriminator(_pool_kind)]


class Node(_Strict):
    kind: Kind
    # A router's implementation (lab.routers.ROUTERS): frr unless it says otherwise
    implementation: str | None = None
    role: Role | None = None
    asn: Annotated[int, Field(ge=1, le=4_294_967_294)] | None = None
    router_id: ipaddress.IPv4Address | None = None
    timers: Timers = Timers()
    originates: list[str] = []
    # A router installs its best paths into its kernel (default: every router but the
    # collector). Off: bgpd keeps its RIB and installs nothing (bgpd -n), which spares a
    # 2-core machine a second million-route FIB where only the RIB is being watched.
    fib: bool | None = None
    # What feeds a speaker's synthetic Internet tables (lab.feed): exabgp, or gobgp (gobgpd given
    # an MRT dump). Unset: lab.feed.TABLE_FEEDER for a speaker that originates tables only, else exabgp.
    feeder: Feeder | None = None

    @model_validator(mode="before")
    @classmethod
    def _router_alias(cls, v: Any) -> Any:
        """``kind: frr`` (the topologies written before routers had implementations) is
        ``kind: router, implementation: frr``; a router names no implementation: the default."""
        if not isinstance(v, dict):
            return v
        if v.get("kind") == "frr":
            if v.get("implementation") not in (None, "frr"):
                raise ValueError(f"kind 'frr' is a router implemented by frr, not by '{v['implementation']}' "
                                 "(write kind: router, implementation: ...)")
            v = {**v, "kind": "router", "implementation": "frr"}
        elif v.get("kind") == "router" and v.get("implementation") is None:
            v = {**v, "implementation": DEFAULT_ROUTER}
        return v

    @model_validator(mode="after")
    def _kind_rules(self) -> "Node":
        problems = []
        if self.kind is Kind.router and self.implementation not in ROUTERS:
            problems.append(f"no router implementation '{self.implementation}' (implementations: {', '.join(ROUTERS)})")
        if self.kind is not Kind.router and self.implementation is not None:
            problems.append(f"only a router has an implementation (this node is a{'n' if self.kind is Kind.exabgp else ''} "
                            f"{self.kind.value})")
        if self.fib is not None and self.kind is not Kind.router:
            problems.append("only a router has a fib setting")
        if self.feeder is not None and self.kind is not Kind.exabgp:
            problems.append("only a speaker (kind: exabgp) has a feeder")
        if self.kind is Kind.host:
            if self.asn is not None:
                problems.append("a host has no ASN")
            if self.role not in (None, Role.host):
                problems.append(f"a host's role is 'host', not '{self.role.value}'")
        else:
            if self.asn is None:
                problems.append(f"a node of kind '{self.kind.value}' needs an asn")
            if self.role in (None, Role.host):
                valid = ", ".join(r.value for r in Role if r is not Role.host)
                problems.append(f"a node of kind '{self.kind.value}' needs a role (one of {valid})")
        if self.kind is Kind.exabgp and self.role not in (None, Role.edge):
            problems.append("an exabgp speaker's role is 'edge'")
        if self.kind is Kind.router and self.role is Role.edge:
            problems.append("role 'edge' is for exabgp speakers; a router is transit, peer, eyeball or collector")
        if self.originates and self.kind is not Kind.exabgp:
            problems.append("only exabgp speakers originate pools")
        if problems:
            raise ValueError("; ".join(problems))
        return self

    @property
    def effective_role(self) -> Role:
        return self.role or (Role.host if self.kind is Kind.host else Role.edge)


class LongLink(_Strict):
    endpoints: Annotated[list[str], Field(min_length=2, max_length=2)]
    timers: Timers = Timers()
    # RFC 8654: UPDATEs up to 65,535 bytes instead of 4,096. The speaker offers it or not;
    # FRR always offers it, so the choice is the speaker's and applies to its links only.
    extended_message: bool = True
    # The business relationship (c2p, p2c, p2p, s2s). Unset: derived from the two roles
    # (see role_relationship), so a topology written before relationships keeps its meaning.
    relationship: Relationship | None = None


def role_relationship(a: Node, b: Node) -> Relationship | None:
    """The roles' shorthand for a link's relationship, read from ``a``; None where a link
    carries no session (a host's). A collector is its neighbour's customer: fed everything,
    as route collectors' peers feed them (it exports nothing by its role).

    A transit carries everything to everyone: two transits are siblings. The edge, eyeballs
    and the observer (role peer) buy transit from transits and peer with each other.
    """
    ra, rb = a.effective_role, b.effective_role
    if Role.host in (ra, rb):
        return None
    if Role.collector in (ra, rb):
        return Relationship.c2p if ra is Role.collector else Relationship.p2c
    if ra is Role.transit and rb is Role.transit:
        return Relationship.s2s
    if rb is Role.transit:
        return Relationship.c2p
    if ra is Role.transit:
        return Relationship.p2c
    return Relationship.p2p


LinkSpec = Union[Annotated[list[str], Field(min_length=2, max_length=2)], LongLink]


class Topology(_Strict):
    name: str
    description: str = ""
    # The routers' implementation where a node names none, the collector aside (lab.routers.ROUTERS; frr unless said)
    implementation: str | None = None
    timers: Timers = Timers()
    pools: dict[str, AnyPool] = {}
    nodes: dict[str, Node]
    links: list[LinkSpec]

    @model_validator(mode="before")
    @classmethod
    def _default_implementation(cls, v: Any) -> Any:
        """The topology's ``implementation`` for every router that names none, but the collector:
        the lab's measuring instrument stays FRR unless it names another."""
        if not isinstance(v, dict) or v.get("implementation") is None or not isinstance(v.get("nodes"), dict):
            return v
        nodes = {n: ({**spec, "implementation": v["implementation"]}
                     if isinstance(spec, dict) and spec.get("kind") == "router" and spec.get("implementation") is None
                     and spec.get("role") != "collector" else spec) for n, spec in v["nodes"].items()}
        return {**v, "nodes": nodes}

    @model_validator(mode="after")
    def _known_implementation(self) -> "Topology":
        if self.implementation is not None and self.implementation not in ROUTERS:
            raise ValueError(f"implementation: no router implementation '{self.implementation}' "
                             f"(implementations: {', '.join(ROUTERS)})")
        return self

    @field_validator("name")
    @classmethod
    def _lab_name(cls, v: str) -> str:
        check_lab_name(v)
        return v

    def feeder_of(self, name: str) -> str | None:
        """What feeds speaker ``name``'s tables (lab.feed): its own ``feeder``, else TABLE_FEEDER
        where it originates tables only, else ExaBGP; None for a node that is no speaker."""
        node = self.nodes[name]
        if node.kind is not Kind.exabgp:
            return None
        if node.feeder:
            return node.feeder
        only_tables = node.originates and all(isinstance(self.pools.get(p), TablePool) for p in node.originates)
        return TABLE_FEEDER if only_tables else "exabgp"

    def link_endpoints(self, i: int) -> tuple[str, str]:
        spec = self.links[i]
        a, b = spec.endpoints if isinstance(spec, LongLink) else spec
        return a, b

    def link_timers(self, i: int) -> Timers:
        spec = self.links[i]
        return spec.timers if isinstance(spec, LongLink) else Timers()

    def link_extended_message(self, i: int) -> bool:
        spec = self.links[i]
        return spec.extended_message if isinstance(spec, LongLink) else True

    def link_relationship(self, i: int) -> Relationship | None:
        """The link's relationship read from its first endpoint: the file's, or the roles'."""
        spec = self.links[i]
        if isinstance(spec, LongLink) and spec.relationship is not None:
            return spec.relationship
        a, b = self.link_endpoints(i)
        return role_relationship(self.nodes[a], self.nodes[b])

    def link_relations(self, i: int) -> tuple[Relation, Relation] | None:
        """(what the second endpoint is to the first, what the first is to the second)."""
        rel = self.link_relationship(i)
        return _RELATIONS[rel] if rel is not None else None


def check_lab_name(name: str) -> str:
    if not LAB_NAME.match(name):
        raise UsageError(
            f"lab name {name!r} must be 1-20 characters of a-z, 0-9 and '_', starting with a letter "
            "or digit ('-' is not allowed: it separates lab from node in namespace names)"
        )
    return name


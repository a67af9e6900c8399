"""What a lab is: nodes, links, ASNs, timers, prefix pools. Pure models, no I/O but reading the file.

Validation is strict (``extra="forbid"``) and reports every problem at once, each
with its path (``nodes.t3.asn: ...``), before anything touches the kernel.
"""

from __future__ import annotations

import ipaddress
import re
from enum import Enum
from pathlib import Path
from typing import Annotated, Any, Literal, Union

import yaml
from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, ValidationError, field_validator, model_validator

from lab.errors import TopologyError, UsageError
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
    timers: Timers = Timers()
    pools: dict[str, AnyPool] = {}
    nodes: dict[str, Node]
    links: list[LinkSpec]

    @field_validator("name")
    @classmethod
    def _lab_name(cls, v: str) -> str:
        check_lab_name(v)
        return v

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


def _loc(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out or "(top level)"


def _pydantic_problems(err: ValidationError) -> list[str]:
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


def _semantic_problems(t: Topology) -> list[str]:
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


def parse_topology(data: Any, source: str = "<topology>") -> Topology:
    """Validate already-loaded data. Raises TopologyError with every problem found."""
    if not isinstance(data, dict):
        raise TopologyError(source, [f"(top level): expected a mapping, got {type(data).__name__}"])
    try:
        topo = Topology.model_validate(data)
    except ValidationError as e:
        raise TopologyError(source, _pydantic_problems(e)) from None
    problems = _semantic_problems(topo)
    if problems:
        raise TopologyError(source, problems)
    return topo


def load_topology(path: str | Path) -> Topology:
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as e:
        raise TopologyError(str(path), [f"cannot read the file: {e.strerror}"]) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "somewhere"
        raise TopologyError(str(path), [f"{where}: not valid YAML ({getattr(e, 'problem', e)})"]) from None
    return parse_topology(data, str(path))

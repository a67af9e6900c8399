"""Which daemons run a node: a router's implementation's (lab.routers), a speaker's ExaBGP (or
GoBGP where it feeds a table: lab.feed), a host none (its processes are the controller's data plane)."""

from __future__ import annotations

from lab.daemons import exabgp
from lab.daemons.base import Daemon
from lab.errors import BgplabError
from lab.feed import GOBGP_FEEDER
from lab.plan import LabPlan, NodePlan
from lab.routers import get_router
from lab.routers.base import Router
from lab.topology import Kind

SPEAKER_DAEMONS: tuple[Daemon, ...] = (exabgp.EXABGP,)
FEEDER_DAEMONS: dict[str, tuple[Daemon, ...]] = {"exabgp": SPEAKER_DAEMONS, "gobgp": (GOBGP_FEEDER,)}


def router_of(node: NodePlan) -> Router:
    """The implementation that runs router ``node``."""
    if node.kind is not Kind.router:
        raise BgplabError(f"node {node.name} is a{'n' if node.kind is Kind.exabgp else ''} {node.kind.value}, not a router")
    return get_router(node.implementation)


def daemons_of(node: NodePlan) -> tuple[Daemon, ...]:
    if node.kind is Kind.router:
        return router_of(node).daemons
    return FEEDER_DAEMONS[node.feeder or "exabgp"] if node.kind is Kind.exabgp else ()


def start_order(plan: LabPlan) -> list[Daemon]:
    """Every daemon the lab runs, once, each after the daemons of its node it depends on: each
    router implementation's in its own order, then the speakers' (they need a router's session)."""
    out: list[Daemon] = []
    for node in sorted(plan.nodes.values(), key=lambda n: n.kind is not Kind.router):
        for d in daemons_of(node):
            if d not in out:
                assert all(a in {x.name for x in out} for a in d.after), f"{d.name} is listed before what it needs"
                out.append(d)
    return out


def daemon_for(node: NodePlan, name: str) -> Daemon:
    for d in daemons_of(node):
        if d.name == name:
            return d
    names = ", ".join(d.name for d in daemons_of(node)) or "none"
    raise BgplabError(f"node {node.name} ({node.kind.value}) runs no '{name}' (its daemons: {names})")

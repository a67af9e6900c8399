"""Daemons of a lab node: build plain data, render, write, dry-run, start, wait until ready.

Each kind of node has its daemons (``DAEMONS``); what they share is in lab.daemons.base."""

from __future__ import annotations

from lab.daemons import exabgp, frr
from lab.daemons.base import Daemon, Toolset, templates
from lab.errors import BgplabError
from lab.plan import NodePlan
from lab.topology import Kind

__all__ = ["DAEMONS", "Daemon", "Toolset", "daemon_for", "exabgp", "frr", "start_order", "templates"]


# Per node kind, its daemons in start order (each after those it names in ``after``).
DAEMONS: dict[Kind, tuple[Daemon, ...]] = {
    Kind.frr: (frr.ZEBRA, frr.BGPD),
    Kind.exabgp: (exabgp.EXABGP,),
}


def start_order() -> list[Daemon]:
    """Every daemon once, each after the daemons it depends on."""
    out: list[Daemon] = []
    for daemons in DAEMONS.values():
        for d in daemons:
            assert all(a in {x.name for x in out} for a in d.after), f"{d.name} is listed before what it needs"
            out.append(d)
    return out


def daemon_for(node: NodePlan, name: str) -> Daemon:
    for d in DAEMONS.get(node.kind, ()):
        if d.name == name:
            return d
    names = ", ".join(d.name for d in DAEMONS.get(node.kind, ())) or "none"
    raise BgplabError(f"node {node.name} ({node.kind.value}) runs no '{name}' (its daemons: {names})")

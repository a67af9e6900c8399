"""Daemons of a lab node: build plain data, render, write, dry-run, start, wait until ready."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import jinja2

from lab.errors import BgplabError
from lab.plan import NodePlan
from lab.topology import Kind

if TYPE_CHECKING:
    from lab.runtime import Toolset


@lru_cache(maxsize=1)
def templates() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.PackageLoader("lab.daemons", "templates"),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        autoescape=False,
    )


class Daemon(Protocol):
    """One daemon of a node kind (IPMininet's contract): render and write its config, dry-run
    it, the argv that starts it, the condition that says it is ready, what must be ready
    before it. Another routing daemon is one more class and one more entry in DAEMONS."""

    name: str
    kind: Kind
    after: tuple[str, ...]  # daemons of the same node that must be ready before this one starts
    check_timeout: float

    def write(self, lab: str, node: NodePlan, node_dir: Path, tools: "Toolset") -> None: ...
    def check_argv(self, node: NodePlan, node_dir: Path, tools: "Toolset") -> list[str]: ...
    def check_result(self, node: NodePlan, node_dir: Path, rc: int | None, out: str, err: str) -> None: ...
    def argv(self, node: NodePlan, node_dir: Path, tools: "Toolset") -> list[str]: ...
    def environment(self) -> dict[str, str] | None: ...
    def ready(self, node_dir: Path) -> bool: ...


from lab.daemons import exabgp, frr  # noqa: E402  (they import templates from here)

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

"""What every daemon shares: the Daemon protocol, the Toolset a runtime gives it, and the
config templates."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Protocol

import jinja2

from lab.plan import NodePlan
from lab.topology import Kind


@dataclass(frozen=True)
class Toolset:
    """Where a node finds its daemons, and whom FRR runs as: the host's for namespaces, the
    image's for containers (each runtime says which: Runtime.tools)."""

    frr_dir: Path
    exabgp: str  # the command line that starts ExaBGP (the launcher, lab/daemons/exabgp_launch.py)
    bridge: str  # the command that runs lab/daemons/exabgp_bridge.py (its socket path follows)
    frr_owner: tuple[int, int]  # uid, gid of FRR's user


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

    def write(self, lab: str, node: NodePlan, node_dir: Path, tools: Toolset) -> None: ...
    def check_argv(self, node: NodePlan, node_dir: Path, tools: Toolset) -> list[str]: ...
    def check_result(self, node: NodePlan, node_dir: Path, rc: int | None, out: str, err: str) -> None: ...
    def argv(self, node: NodePlan, node_dir: Path, tools: Toolset) -> list[str]: ...
    def environment(self) -> dict[str, str] | None: ...
    def ready(self, node_dir: Path) -> bool: ...

"""What every daemon shares: the Daemon protocol, the Toolset a runtime gives it, and the
config templates."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Protocol

import jinja2

from lab.plan import NodePlan


@dataclass(frozen=True)
class Toolset:
    """Where a node finds its daemons, and whom each router implementation runs as: the host's
    for namespaces, the image's for containers (each runtime says which: Runtime.tools)."""

    router_dirs: dict[str, Path]  # per router implementation (lab.routers): where its daemons are
    exabgp: str  # the command line that starts ExaBGP (the launcher, lab/daemons/exabgp_launch.py)
    bridge: str  # the command that runs lab/daemons/exabgp_bridge.py (its socket path follows)
    router_owners: dict[str, tuple[int, int]]  # per implementation: uid, gid its daemons run as


@lru_cache(maxsize=None)
def templates(package: str = "lab.daemons") -> jinja2.Environment:
    """The Jinja templates of ``package`` (its ``templates`` folder): the speakers' here, each
    router implementation's in its own package."""
    return jinja2.Environment(
        loader=jinja2.PackageLoader(package, "templates"),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        autoescape=False,
    )


class Daemon(Protocol):
    """One daemon of a node kind (IPMininet's contract): render and write its config, dry-run
    it, the argv that starts it, the condition that says it is ready, what must be ready
    before it. A router implementation lists its daemons (lab.routers); a speaker's are in
    lab.kinds."""

    name: str
    after: tuple[str, ...]  # daemons of the same node that must be ready before this one starts
    check_timeout: float

    def write(self, lab: str, node: NodePlan, node_dir: Path, tools: Toolset) -> None: ...
    def check_argv(self, node: NodePlan, node_dir: Path, tools: Toolset) -> list[str]: ...
    def check_result(self, node: NodePlan, node_dir: Path, rc: int | None, out: str, err: str) -> None: ...
    def argv(self, node: NodePlan, node_dir: Path, tools: Toolset) -> list[str]: ...
    def environment(self) -> dict[str, str] | None: ...
    def ready(self, node_dir: Path) -> bool: ...

"""The Runtime protocol: how nodes exist (namespaces or containers), chosen by name.

Kept small on purpose (containerlab's ContainerRuntime is the model): create a node,
link two nodes, start a process in a node, run a command in a node, list and remove
what a lab made. Everything above it (daemons, lifecycle) works through this only.

Both runtimes expose every node's network namespace as ``/run/netns/bgplab-<lab>-<node>``
(a container's as a link to its namespace, as containerlab does), so what reads or
changes a node's network from outside (kernel tables, links, qdiscs) and the host
programs that run in a node's network only (tcpdump, the controller's responders and
probes) are the same for both: they are ``lab.runtime.netns``'s functions (``add_link``,
``add_routes``, ``spawn_net``, ``net_argv``), not members of the protocol. Daemons run
*in* the node (``spawn``): on the host for namespaces, inside the container for Docker,
with the ``Toolset`` the runtime names. The protocol has nine members, and knows no router implementation by name.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Protocol

from lab.daemons import Toolset
from lab.errors import ExecError
from lab.plan import NodePlan


@dataclass(frozen=True)
class ExecResult:
    argv: list[str]
    rc: int | None  # None: timed out
    out: str
    err: str

    @property
    def ok(self) -> bool:
        return self.rc == 0


class Runtime(Protocol):
    name: str

    def prepare(self, progress: Callable[[str], None]) -> None:
        """What must exist before any node (an image); fails with what to do when it cannot."""

    def tools(self, implementations: tuple[str, ...]) -> Toolset:
        """The programs daemons are started from inside a node, for the router implementations
        named (lab.routers); fails naming what to install when one is missing."""

    def create_nodes(self, lab: str, nodes: list[NodePlan]) -> None:
        """Make the nodes exist: namespace or container, loopback addresses, forwarding."""

    def spawn(self, lab: str, node: NodePlan, argv: list[str], *, log: Path, env: dict[str, str] | None = None) -> int:
        """Start a long-running process inside the node, marked with the lab; return its PID."""

    def exec(self, lab: str, node: NodePlan, argv: list[str], *, timeout: float = 30.0,
             env: dict[str, str] | None = None) -> ExecResult:
        """Run a command inside the node and wait for it; never raises on a non-zero exit."""

    def exec_argv(self, lab: str, node: str, argv: list[str], *, tty: bool = False) -> list[str]:
        """The argv that runs ``argv`` inside the node (for `bgplab exec` to exec into)."""

    def nodes_of(self, lab: str) -> list[str]:
        """Names of what exists for this lab in the runtime (namespaces, containers)."""

    def remove(self, lab: str, names: list[str]) -> list[str]:
        """Remove what ``nodes_of`` listed; return the problems, never stop at the first."""


def cmd_raises(result: ExecResult, where: str = "") -> ExecResult:
    """Turn a failed ExecResult into an ExecError that carries argv, stdout and stderr."""
    if not result.ok:
        raise ExecError(result.argv, result.rc, result.out, result.err, where)
    return result

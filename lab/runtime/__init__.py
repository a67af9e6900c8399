"""The Runtime protocol: how nodes exist (namespaces, later containers), chosen by name.

Kept small on purpose (containerlab's ContainerRuntime is the model): create a node,
link two nodes, start a process in a node, run a command in a node, list and remove
what a lab made. Everything above it (daemons, lifecycle) works through this only.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from lab.errors import ExecError, UsageError
from lab.plan import Interface, NodePlan


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

    def create_node(self, lab: str, node: NodePlan) -> None:
        """Make the node exist: its namespace, loopback addresses and forwarding."""

    def add_link(self, lab: str, a: NodePlan, ifa: Interface, b: NodePlan, ifb: Interface) -> None:
        """A veth pair between two nodes, addressed and up at both ends."""

    def add_routes(self, lab: str, node: NodePlan) -> None:
        """Static routes a node needs before its daemons run: default routes, a speaker's local pools."""

    def spawn(self, lab: str, node: NodePlan, argv: list[str], *, log: Path, env: dict[str, str] | None = None) -> int:
        """Start a long-running process inside the node, marked with the lab; return its PID."""

    def exec(self, lab: str, node: NodePlan, argv: list[str], *, timeout: float = 30.0) -> ExecResult:
        """Run a command inside the node and wait for it; never raises on a non-zero exit."""

    def exec_argv(self, lab: str, node: str, argv: list[str]) -> list[str]:
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


RUNTIMES = ("netns",)


def get_runtime(name: str) -> Runtime:
    # An explicit registry: no module names assembled from strings.
    if name == "netns":
        from lab.runtime.netns import NetnsRuntime

        return NetnsRuntime()
    raise UsageError(f"unknown runtime '{name}' (valid: {', '.join(RUNTIMES)})")

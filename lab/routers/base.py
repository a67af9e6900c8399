"""What the lab and the controller need from a router, whatever runs it (FRR today).

Everything that asks a router something goes through this protocol: the lifecycle (render,
dry-run, start, ready, sessions, tables), the controller's sampler, reconciler and dashboard
(sessions, received counts), the faults (clear a session), the drills' records (version,
negotiated message sizes), the collector's feed and the export to containerlab. Nothing else
names a router's daemons or its command line.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Protocol

from lab.daemons.base import Daemon, Toolset
from lab.plan import NodePlan

# A command run inside the node (its namespace or container): argv -> its standard output.
Run = Callable[[list[str]], str]

STANDARD_MESSAGE, EXTENDED_MESSAGE = 4096, 65535  # RFC 4271, RFC 8654


@dataclass(frozen=True)
class Install:
    """What an implementation needs installed, on the host (``scripts/bootstrap``: the netns
    runtime) and in the node image (lab/images: the docker runtime), read from here by both."""

    packages: tuple[str, ...]  # Debian's packages of it
    tools_dir: Path  # where its daemons are, on the host and in the image (Debian's layout)
    # The image's user its daemons run as and the group that reaches a lab's directories (FRR's,
    # lab.state.close_lab_dir): fixed IDs, so the host can hand a node's directory over without
    # looking inside the image. (user, uid, gid); None where its daemons start as root and
    # separate their own privileges.
    image_user: tuple[str, int, int] | None
    capabilities: tuple[str, ...] = ()  # a container's capabilities it needs beyond the node's base set
    services: tuple[str, ...] = ()  # services its package enables: stopped and disabled on the host


class Router(Protocol):
    name: str  # the implementation's name in topologies (``implementation: frr``)
    label: str  # how reports name it ("FRR")
    daemons: tuple[Daemon, ...]  # in start order on one node
    log_files: tuple[str, ...]  # the files in a node's directory worth reading when it fails
    # The protocol number its routes carry in the kernel (rtm_protocol: zebra's 186, BIRD's 12),
    # or None where it installs none (a RIB-only implementation: GoBGP, OpenBGPD on Linux)
    kernel_proto: int | None
    install: Install
    mrai: bool  # whether it has a minimum route advertisement interval at all (the topology's mrai)
    records_updates: bool  # whether it can be the collector: ``feed`` gives every UPDATE it receives
    # How often a sampler may ask it (seconds): what one question costs the machine decides. FRR and
    # BIRD answer over a kept-open socket in well under a millisecond; GoBGP through a process.
    poll_interval: float

    # -- install and run -----------------------------------------------------------------
    def host_tools(self) -> tuple[Path, tuple[int, int]]:
        """The host's install (the netns runtime): where the daemons are, and the uid, gid they
        run as. Raises DaemonError naming what to install when it is missing."""
    def version(self, run: Run, tools: Toolset) -> str:
        """The running version, asked inside the node (``run``): the binary the node really runs."""
    def render(self, lab: str, node: NodePlan, node_dir: Path) -> dict[str, str]:
        """The node's configuration files by name. Pure: the same node and paths give the same text."""
    def start_script(self, node: NodePlan, node_dir: Path, tools_dir: Path, owner: str) -> list[str]:
        """Shell lines that start the daemons detached inside a container of their image (the
        containerlab export), from configs in ``node_dir`` written by ``render``."""

    # -- ask it ------------------------------------------------------------------------------
    def sessions(self, node_dir: Path) -> dict[str, dict[str, Any]]:
        """Per neighbour address: ``state`` ("Established" when up), ``received`` and ``sent``
        prefixes per family, ``description``."""
    def received(self, node_dir: Path) -> dict[str, int]:
        """Prefixes in the BGP table per family (ipv4, ipv6)."""
    def rib(self, node_dir: Path, family: str = "ipv4") -> dict[str, list[dict[str, Any]]]:
        """The BGP table of one family: per prefix, its paths (``as_path`` list of ASNs, ``best``)."""
    def updates_sent(self, node_dir: Path) -> int:
        """UPDATE messages sent on every session since each came up."""
    def message_sizes(self, node_dir: Path) -> dict[str, int]:
        """Per neighbour address: the largest UPDATE the session allows, as negotiated."""
    def clear_session(self, node_dir: Path, address: str) -> None:
        """Reset the session to ``address`` (a hard clear: the peer sees it go down)."""
    def feed(self, node_dir: Path) -> Path | None:
        """The MRT file a collector writes its UPDATEs to (None where it has none)."""
    def shell(self, node_dir: Path, commands: list[str]) -> list[str]:
        """The argv of the implementation's own shell on the node (interactive when no commands)."""

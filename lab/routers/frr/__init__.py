"""FRR as a lab router (lab.routers.base.Router): zebra and bgpd per node, asked over bgpd's
vty socket (kept open: lab.routers.frr.daemons.Vty), configured from Jinja templates here.

The only module of the project that knows FRR's daemons, its command line and its JSON.
"""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

from lab.daemons.base import Toolset
from lab.plan import NodePlan
from lab.routers.base import Install, Run
from lab.routers.frr import daemons as d


class FrrRouter:
    name = "frr"
    label = "FRR"
    daemons = (d.ZEBRA, d.BGPD)
    log_files = ("zebra.out", "bgpd.out", "zebra.log", "bgpd.log")
    kernel_proto = 186  # RTPROT_BGP: zebra marks bgpd's routes with it
    # FRR's privilege code asks for NET_ADMIN, NET_RAW and SYS_ADMIN (zebra) and
    # NET_BIND_SERVICE (bgpd, port 179), SETUID/SETGID to drop to its user: the node's base set.
    mrai = True  # per peer, `advertisement-interval` (0 by default in FRR 8.4, for eBGP too)
    records_updates = True  # `dump bgp updates-et`
    poll_interval = 0.1  # a vty question: ~0.2 ms (lab.routers.frr.daemons.Vty)
    install = Install(("frr",), Path("/usr/lib/frr"), ("frr", 179, 179), services=("frr",))

    def host_tools(self) -> tuple[Path, tuple[int, int]]:
        for daemon in self.daemons:
            d.daemon_binary(daemon.name)
        return d.FRR_LIBEXEC, d.host_owner()

    def version(self, run: Run, tools: Toolset) -> str:
        return d.parse_version(run([str(tools.router_dirs[self.name] / "bgpd"), "--version"]))

    def render(self, lab: str, node: NodePlan, node_dir: Path) -> dict[str, str]:
        return d.render(lab, node, d.FrrPaths(node_dir))

    def start_script(self, node: NodePlan, node_dir: Path, tools_dir: Path, owner: str) -> list[str]:
        paths, q = d.FrrPaths(node_dir), shlex.quote
        return [f"chown -R {owner} .",
                " ".join(map(q, [*d.argv("zebra", node, paths, tools_dir), "-d"])),
                # bgpd needs zebra's socket to be there when it starts
                f"for _ in $(seq 100); do [ -S {q(str(paths.zserv))} ] && break; sleep 0.1; done",
                " ".join(map(q, [*d.argv("bgpd", node, paths, tools_dir), "-d"]))]

    def sessions(self, node_dir: Path) -> dict[str, dict[str, Any]]:
        return d.sessions(d.FrrPaths(node_dir))

    def received(self, node_dir: Path) -> dict[str, int]:
        return d.rib_counts(d.FrrPaths(node_dir))

    def rib(self, node_dir: Path, family: str = "ipv4") -> dict[str, list[dict[str, Any]]]:
        routes = d.vtysh_json(d.FrrPaths(node_dir), f"show bgp {family} unicast").get("routes", {})
        return {prefix: [{"as_path": [int(a) for a in p.get("path", "").split() if a.isdigit()],
                          "best": bool(p.get("bestpath"))} for p in paths]
                for prefix, paths in routes.items()}

    def updates_sent(self, node_dir: Path) -> int:
        return sum(int(n.get("messageStats", {}).get("updatesSent", 0))
                   for n in d.vtysh_json(d.FrrPaths(node_dir), "show bgp neighbors").values() if isinstance(n, dict))

    def message_sizes(self, node_dir: Path) -> dict[str, int]:
        return d.message_sizes(d.FrrPaths(node_dir))

    def clear_session(self, node_dir: Path, address: str) -> None:
        d.vtysh(d.FrrPaths(node_dir), f"clear bgp {address}")

    def feed(self, node_dir: Path) -> Path | None:
        return d.FrrPaths(node_dir).mrt

    def shell(self, node_dir: Path, commands: list[str]) -> list[str]:
        return ["vtysh", "--vty_socket", str(node_dir), *[a for c in commands for a in ("-c", c)]]

"""OpenBGPD as a lab router (lab.routers.base.Router): one ``bgpd`` per node, configured from
one rendered bgpd.conf, asked through ``bgpctl -j`` on the node's control socket.

RIB-only: Debian's openbgpd 7.7 is built without libmnl, and without it openbgpd-portable
compiles kroute-disabled.c (src/bgpd/Makefile.am), so ``fib-update`` has nothing to update.
Its privilege separation is its own: the parent stays root, the session engine and the RDE
chroot into its user's home (/run/openbgpd, made here if missing) and run as _openbgpd.

Its semantics where drills are sensitive (bgpd.conf(5) and openbgpd-portable's source): no
MRAI; ``connect-retry`` 120 s by default (set here to the topology's); no RFC 8654 extended
messages not in 7.7 (its parser has no ``announce extended message``): 4,096-byte UPDATEs.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lab.daemons.base import Toolset, templates
from lab.errors import ConfigError, DaemonError
from lab.routers.ask import command_json
from lab.plan import NodePlan
from lab.routers.base import EXTENDED_MESSAGE, STANDARD_MESSAGE, Install, Run
from lab.routers.policy import EXPORTED_UP, export_kind, policy

OPENBGPD_DIR = Path("/usr/sbin")
CHROOT = "/run/openbgpd"  # the _openbgpd user's home: its children chroot there


@dataclass(frozen=True)
class Paths:
    dir: Path

    @property
    def conf(self) -> Path:
        return self.dir / "bgpd.conf"

    @property
    def socket(self) -> Path:
        return self.dir / "bgpd.sock"


def render(lab: str, node: NodePlan, paths: Paths) -> str:
    pol = policy(node)
    by_export: dict[str, list[str]] = {"none": [], "up": [], "all": []}
    for s in node.sessions:
        by_export[export_kind(node, s)].append(str(s.peer_v4))
    from_relation: dict[str, list[str]] = {}
    for s in node.sessions:
        from_relation.setdefault(s.relation.value, []).append(str(s.peer_v4))
    return templates("lab.routers.openbgpd").get_template("bgpd.conf.j2").render(
        lab=lab, node=node, policy=pol, socket=paths.socket, from_relation=from_relation,
        to_none=by_export["none"], to_up=by_export["up"], exported_up=EXPORTED_UP,
        connect_retry=max([s.timers.connect_retry for s in node.sessions] or [1]),
        mrai=", ".join(map(str, sorted({s.timers.mrai for s in node.sessions}))) or "0")


def bgpctl(paths: Paths, *args: str, timeout: float = 15.0, json_: bool = True) -> Any:
    """``bgpctl -j`` on the node's control socket: its JSON answer (its text without -j)."""
    argv = [str(OPENBGPD_DIR / "bgpctl"), *(["-j"] if json_ else []), "-s", str(paths.socket), *args]
    return command_json(argv, f"{paths.socket}: bgpctl {' '.join(args)}", timeout=timeout, as_json=json_)


def _neighbors(paths: Paths) -> list[dict[str, Any]]:
    return bgpctl(paths, "show", "neighbor").get("neighbors", [])


def _count(stats: dict[str, Any], *keys: str) -> int:
    for k in keys:
        stats = stats.get(k, {}) if isinstance(stats, dict) else {}
    return int(stats) if isinstance(stats, (int, float)) else 0


class _Bgpd:
    name = "openbgpd"
    after: tuple[str, ...] = ()
    check_timeout = 30.0

    def write(self, lab: str, node: NodePlan, node_dir: Path, tools: Toolset) -> None:
        paths = Paths(node_dir)
        node_dir.mkdir(parents=True, exist_ok=True)
        paths.conf.write_text(render(lab, node, paths))
        paths.conf.chmod(0o600)  # bgpd refuses a config others may read

    def check_argv(self, node: NodePlan, node_dir: Path, tools: Toolset) -> list[str]:
        return [str(tools.router_dirs["openbgpd"] / "bgpd"), "-n", "-f", str(Paths(node_dir).conf)]

    def check_result(self, node: NodePlan, node_dir: Path, rc: int | None, out: str, err: str) -> None:
        if rc != 0:
            detail = (err.strip() or out.strip())[-1000:] or f"exit status {rc}"
            raise ConfigError(f"node {node.name}: bgpd rejected {Paths(node_dir).conf}: {detail}")

    def argv(self, node: NodePlan, node_dir: Path, tools: Toolset) -> list[str]:
        bgpd = shlex.quote(str(tools.router_dirs["openbgpd"] / "bgpd"))
        conf = shlex.quote(str(Paths(node_dir).conf))
        # exec: the PID the lab keeps is bgpd's own
        return ["sh", "-c", f"mkdir -p {CHROOT} && exec {bgpd} -d -f {conf}"]

    def environment(self) -> dict[str, str] | None:
        return None

    def ready(self, node_dir: Path) -> bool:
        return Paths(node_dir).socket.exists()


BGPD = _Bgpd()


class OpenbgpdRouter:
    name = "openbgpd"
    label = "OpenBGPD"
    daemons = (BGPD,)
    log_files = ("openbgpd.out",)
    kernel_proto = None  # RIB-only: see the module's docstring
    mrai = False
    records_updates = False  # its MRT dumps are not read here (the collector stays FRR)
    poll_interval = 0.5  # bgpctl processes, and a line per prefix a session received
    install = Install(("openbgpd",), OPENBGPD_DIR, None, capabilities=("SYS_CHROOT",), services=("openbgpd",))

    def host_tools(self) -> tuple[Path, tuple[int, int]]:
        if not (OPENBGPD_DIR / "bgpd").exists():
            raise DaemonError(f"OpenBGPD is not at {OPENBGPD_DIR / 'bgpd'}; run `make lab-up` to install it (openbgpd)")
        return OPENBGPD_DIR, (0, 0)

    def version(self, run: Run, tools: Toolset) -> str:
        out = run(["sh", "-c", f"{shlex.quote(str(tools.router_dirs[self.name] / 'bgpd'))} -V 2>&1"])
        m = re.search(r"OpenBGPD\s+(\S+)", out)
        return m.group(1) if m else "unknown"

    def render(self, lab: str, node: NodePlan, node_dir: Path) -> dict[str, str]:
        return {"bgpd.conf": render(lab, node, Paths(node_dir))}

    def start_script(self, node: NodePlan, node_dir: Path, tools_dir: Path, owner: str) -> list[str]:
        p, q = Paths(node_dir), shlex.quote
        return [f"chmod 600 {q(str(p.conf))}", f"mkdir -p {CHROOT}", f"{q(str(tools_dir / 'bgpd'))} -f {q(str(p.conf))}"]

    def sessions(self, node_dir: Path) -> dict[str, dict[str, Any]]:
        out = {}
        paths = Paths(node_dir)
        for n in _neighbors(paths):
            stats = n.get("stats", {})
            state, addr = n.get("state", "?"), n.get("remote_addr", "?")
            out[addr] = {"state": "Established" if str(state).lower() == "established" else str(state),
                         "received": _adj(paths, "in", addr) if _count(stats, "prefixes", "received") else _none(),
                         "sent": _adj(paths, "out", addr) if _count(stats, "prefixes", "sent") else _none(),
                         "description": n.get("description", "")}
        return out

    def received(self, node_dir: Path) -> dict[str, int]:
        # the RDE's prefixes per family (`show rib memory`): every prefix some RIB holds; with
        # every route accepted on import (the lab's policies), the BGP table's prefixes
        mem = bgpctl(Paths(node_dir), "show", "rib", "memory").get("memory", {})
        return {"ipv4": int(mem.get("IPv4 unicast", {}).get("count", 0)),
                "ipv6": int(mem.get("IPv6 unicast", {}).get("count", 0))}

    def rib(self, node_dir: Path, family: str = "ipv4") -> dict[str, list[dict[str, Any]]]:
        rib = bgpctl(Paths(node_dir), "show", "rib", "inet" if family == "ipv4" else "inet6").get("rib", [])
        out: dict[str, list[dict[str, Any]]] = {}
        for r in rib:
            path = [int(a) for a in str(r.get("aspath", "")).split() if a.isdigit()]
            out.setdefault(r["prefix"], []).append({"as_path": path, "best": bool(r.get("best"))})
        return out

    def updates_sent(self, node_dir: Path) -> int:
        return sum(_count(n.get("stats", {}), "message", "sent", "updates") for n in _neighbors(Paths(node_dir)))

    def message_sizes(self, node_dir: Path) -> dict[str, int]:
        out = {}
        for n in _neighbors(Paths(node_dir)):
            caps = n.get("capabilities", {})
            ext = caps.get("extended_message") if isinstance(caps, dict) else None
            neg = n.get("capabilities", {}).get("negotiated", {}) if isinstance(caps, dict) else {}
            both = neg.get("extended_message") if isinstance(neg, dict) and neg else ext
            out[n.get("remote_addr", "?")] = EXTENDED_MESSAGE if both else STANDARD_MESSAGE
        return out

    def clear_session(self, node_dir: Path, address: str) -> None:
        bgpctl(Paths(node_dir), "neighbor", address, "clear")

    def feed(self, node_dir: Path) -> Path | None:
        return None

    def shell(self, node_dir: Path, commands: list[str]) -> list[str]:
        return ["bgpctl", "-s", str(Paths(node_dir).socket), *[w for c in commands for w in shlex.split(c)]]


def _none() -> dict[str, int]:
    return {"ipv4": 0, "ipv6": 0}


def _adj(paths: Paths, direction: str, address: str) -> dict[str, int]:
    """Prefixes received from (``in``) or sent to (``out``) one neighbour, per family: bgpctl
    counts them per session only, so they are counted in its Adj-RIB-In or -Out (its text: a
    line per prefix, cheaper to read than its JSON). Asked only of sessions that have some."""
    out = _none()
    for line in bgpctl(paths, "show", "rib", direction, "neighbor", address, json_=False).splitlines():
        for word in line.split()[:3]:
            if "/" in word:
                out["ipv6" if ":" in word else "ipv4"] += 1
                break
    return out

"""FRR's daemons on a router node: zebra + bgpd with per-node config, pid, log and vty socket paths.

Several FRR instances run side by side, one per namespace, each with its own ``-f``,
``-i``, ``--vty_socket`` and ``-z`` under ``/run/bgplab/<lab>/nodes/<node>/``.
"""

from __future__ import annotations

import grp
import json
import os
import pwd
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lab.daemons.base import Toolset, templates
from lab.routers.base import EXTENDED_MESSAGE, STANDARD_MESSAGE
from lab.routers.policy import policy
from lab.errors import ConfigError, DaemonError, ExecError
from lab.routers.ask import KeptSocket, kept
from lab.plan import NodePlan
from lab.topology import Role

FRR_LIBEXEC = Path(os.environ.get("BGPLAB_FRR_DIR", "/usr/lib/frr"))
# FRR's daemons drop privileges to this user (zebra has no way to stay root); the
# node directory is handed to it so they can write pid files, logs and MRT dumps.
# Its IDs come from the runtime: the host's user for namespaces, the image's for containers.
FRR_USER = "frr"

# bgpd -C exits 0 even when a line is rejected; the rejection is only in its output.
CONFIG_REJECTED = re.compile(r"(No such command|Unknown command|Command incomplete|Ambiguous command)[^\n]*line \d+[^\n]*")


@dataclass(frozen=True)
class FrrPaths:
    dir: Path

    @property
    def zebra_conf(self) -> Path:
        return self.dir / "zebra.conf"

    @property
    def bgpd_conf(self) -> Path:
        return self.dir / "bgpd.conf"

    @property
    def zserv(self) -> Path:
        return self.dir / "zserv.api"

    @property
    def mrt(self) -> Path:
        return self.dir / "updates.mrt"

    def pid(self, daemon: str) -> Path:
        return self.dir / f"{daemon}.pid"

    def log(self, daemon: str) -> Path:
        return self.dir / f"{daemon}.log"

    def vty(self, daemon: str) -> Path:
        return self.dir / f"{daemon}.vty"


def render(lab: str, node: NodePlan, paths: FrrPaths) -> dict[str, str]:
    """The node's config files by name. Pure: the same node and paths give the same text."""
    env = templates("lab.routers.frr")
    ctx = {
        "lab": lab,
        "node": node,
        "policy": policy(node),
        "mrt_path": paths.mrt if node.role is Role.collector else None,
    }
    return {
        "zebra.conf": env.get_template("zebra.conf.j2").render(ctx),
        "bgpd.conf": env.get_template("bgpd.conf.j2").render(ctx),
    }


def daemon_binary(daemon: str) -> Path:
    """The host's FRR daemon (the netns runtime's); containers use their image's."""
    path = FRR_LIBEXEC / daemon
    if not path.exists():
        raise DaemonError(f"FRR's {daemon} is not at {path}; run `make lab-up` to install FRR")
    return path


def host_owner() -> tuple[int, int]:
    try:
        return pwd.getpwnam(FRR_USER).pw_uid, grp.getgrnam(FRR_USER).gr_gid
    except KeyError:
        raise DaemonError(f"there is no '{FRR_USER}' user on this host; run `make lab-up` to install FRR") from None


def parse_version(out: str) -> str:
    m = re.search(r"version\s+(\S+)", out)
    return m.group(1) if m else "unknown"


def frr_version() -> str:
    """The host's FRR version."""
    try:
        out = subprocess.run([str(daemon_binary("bgpd")), "--version"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.TimeoutExpired, DaemonError):
        return "unknown"
    return parse_version(out)


def write(lab: str, node: NodePlan, paths: FrrPaths, owner: tuple[int, int]) -> None:
    """The node's configs, in a directory handed to FRR's user (``owner``: uid, gid)."""
    paths.dir.mkdir(parents=True, exist_ok=True)
    for name, text in render(lab, node, paths).items():
        (paths.dir / name).write_text(text)
    os.chown(paths.dir, *owner)
    for f in paths.dir.iterdir():
        os.chown(f, *owner)


def check_argvs(paths: FrrPaths, frr_dir: Path) -> list[tuple[str, Path, list[str]]]:
    """The dry runs (``-C``) of each daemon on its config: (daemon, config, argv)."""
    out = []
    for daemon, conf in (("zebra", paths.zebra_conf), ("bgpd", paths.bgpd_conf)):
        argv_ = [str(frr_dir / daemon), "-C", "-f", str(conf), "-u", FRR_USER, "-g", FRR_USER]
        if daemon == "bgpd":
            # A dry run must not open the MRT file, listen, or talk to a zebra.
            argv_ += ["-Z", "-p", "0"]
        out.append((daemon, conf, argv_))
    return out


def check_result(node: NodePlan, daemon: str, conf: Path, rc: int | None, out: str, err: str) -> None:
    """Fail on a dry run that exited non-zero or rejected any line (bgpd -C exits 0 even then)."""
    lines = [m.group(0) for m in CONFIG_REJECTED.finditer(out + err)]
    if rc != 0 or lines:
        detail = "; ".join(lines) or (err.strip() or out.strip())[-1000:] or f"exit status {rc}"
        raise ConfigError(f"node {node.name}: {daemon} rejected {conf}: {detail}")


# zebra's netlink receive buffer on a router that holds a synthetic Internet table (bytes).
TABLE_NETLINK_BUFFER = 128 * 1024 * 1024


def argv(daemon: str, node: NodePlan, paths: FrrPaths, frr_dir: Path) -> list[str]:
    conf = paths.zebra_conf if daemon == "zebra" else paths.bgpd_conf
    args = [
        str(frr_dir / daemon),
        "-f", str(conf),
        "-i", str(paths.pid(daemon)),
        "-z", str(paths.zserv),
        "--vty_socket", str(paths.dir),
        "--log", f"file:{paths.log(daemon)}",
        "-P", "0",  # no TCP vty: vtysh uses the socket
        "-u", FRR_USER,
        "-g", FRR_USER,
    ]
    if daemon == "bgpd" and not node.installs_routes:
        args.append("-n")  # the collector records; it installs nothing
    if daemon == "zebra" and node.table_routes and node.installs_routes:
        # A router taking a full table: zebra reads the kernel's echo of every route it
        # installs through its netlink socket; with the default buffer a million routes
        # overran it and zebra fell back to re-reading the whole table.
        args += ["-s", str(TABLE_NETLINK_BUFFER)]
    return args


def vtysh(paths: FrrPaths, command: str, *, timeout: float = 15.0) -> str:
    argv_ = ["vtysh", "--vty_socket", str(paths.dir), "-c", command]
    try:
        p = subprocess.run(argv_, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired as e:
        raise ExecError(argv_, None, e.stdout or "", e.stderr or "") from None
    if p.returncode != 0:
        raise ExecError(argv_, p.returncode, p.stdout, p.stderr)
    return p.stdout


class Vty(KeptSocket):
    """A kept-open connection to one daemon's vty socket, spoken to as vtysh does: a command
    ends with NUL; the answer ends with three NULs and a status byte (0: success).

    A `vtysh -c` costs ~30 ms of CPU (a process that connects to every daemon); a query
    here ~0.2 ms. The sampler asks the observer 10 times a second, the verifier and `up`
    poll routers while they converge: through vtysh that was a third of a core taken from
    the routers being measured.
    """

    def query(self, command: str, timeout: float = 15.0) -> str:
        def exchange(sock) -> bytearray:
            sock.sendall(command.encode() + b"\0")
            buf = bytearray()
            while len(buf) < 4 or buf[-4:-1] != b"\0\0\0":
                chunk = sock.recv(1 << 20)
                if not chunk:
                    raise ConnectionResetError("the daemon closed its vty")
                buf += chunk
            return buf

        buf = self.ask(command, exchange, timeout)
        status, out = buf[-1], buf[:-4].decode(errors="replace")
        if status != 0:
            raise DaemonError(f"{self.path}: '{command}' failed (status {status}): {out.strip()[:300]}")
        return out


def bgpd_vty(paths: FrrPaths) -> Vty:
    return kept(paths.vty("bgpd"), Vty)


def vtysh_json(paths: FrrPaths, command: str, *, timeout: float = 15.0) -> Any:
    """A bgpd ``show`` command's JSON, over a kept-open vty connection (see Vty)."""
    out = bgpd_vty(paths).query(command + " json", timeout=timeout)
    try:
        return json.loads(out)
    except ValueError:
        raise ExecError(["bgpd vty", command + " json"], 0, out[-500:], "output is not JSON") from None


def sessions(paths: FrrPaths) -> dict[str, dict[str, Any]]:
    """Per neighbour address: state, and prefixes received per family (``show bgp summary``)."""
    summary = vtysh_json(paths, "show bgp summary")
    out: dict[str, dict[str, Any]] = {}
    for key, family in (("ipv4Unicast", "ipv4"), ("ipv6Unicast", "ipv6")):
        for addr, peer in summary.get(key, {}).get("peers", {}).items():
            entry = out.setdefault(addr, {"state": peer.get("state", "?"), "received": {}, "sent": {}})
            entry["received"][family] = peer.get("pfxRcd", 0)
            entry["sent"][family] = peer.get("pfxSnt", 0)
            entry["description"] = peer.get("desc", "")
    return out


def message_sizes(paths: FrrPaths) -> dict[str, int]:
    """Per neighbour address: the largest UPDATE the session allows, as negotiated (RFC 8654
    needs both ends to offer it; ``show bgp neighbors`` says who did)."""
    out = {}
    for addr, n in vtysh_json(paths, "show bgp neighbors").items():
        if not isinstance(n, dict) or "bgpState" not in n:
            continue
        ext = n.get("neighborCapabilities", {}).get("extendedMessage", "")
        out[addr] = EXTENDED_MESSAGE if ext == "advertisedAndReceived" else STANDARD_MESSAGE
    return out


def rib_counts(paths: FrrPaths) -> dict[str, int]:
    """Prefixes in the BGP table per family. (The summary's ribCount counts tree nodes, not prefixes.)"""
    stats = vtysh_json(paths, "show bgp statistics-all")

    def total(key: str) -> int:
        entries = stats.get(key) or [{}]
        return int(entries[0].get("totalPrefixes", 0))

    return {"ipv4": total("ipv4Unicast"), "ipv6": total("ipv6Unicast")}


# -- the daemon contract (lab.daemons.base.Daemon): zebra, then bgpd ----------------------------


class _FrrDaemon:
    check_timeout = 30.0

    def __init__(self, name: str, after: tuple[str, ...]):
        self.name, self.after = name, after

    def write(self, lab: str, node: NodePlan, node_dir: Path, tools: Toolset) -> None:
        # zebra and bgpd share one directory handed to FRR's user; writing it twice is harmless
        if self.name == "zebra":
            write(lab, node, FrrPaths(node_dir), tools.router_owners["frr"])

    def check_argv(self, node: NodePlan, node_dir: Path, tools: Toolset) -> list[str]:
        return next(a for d, _, a in check_argvs(FrrPaths(node_dir), tools.router_dirs["frr"]) if d == self.name)

    def check_result(self, node: NodePlan, node_dir: Path, rc: int | None, out: str, err: str) -> None:
        p = FrrPaths(node_dir)
        check_result(node, self.name, p.zebra_conf if self.name == "zebra" else p.bgpd_conf, rc, out, err)

    def argv(self, node: NodePlan, node_dir: Path, tools: Toolset) -> list[str]:
        return argv(self.name, node, FrrPaths(node_dir), tools.router_dirs["frr"])

    def environment(self) -> dict[str, str] | None:
        return None

    def ready(self, node_dir: Path) -> bool:
        # zebra's zserv socket (bgpd needs it to be there when it starts); bgpd's vty socket
        p = FrrPaths(node_dir)
        return (p.zserv if self.name == "zebra" else p.vty(self.name)).exists()


ZEBRA = _FrrDaemon("zebra", after=())
BGPD = _FrrDaemon("bgpd", after=("zebra",))

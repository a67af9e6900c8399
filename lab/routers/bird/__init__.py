"""BIRD 2 as a lab router (lab.routers.base.Router): one ``bird`` per node, configured from
one rendered file, asked over its control socket (kept open: Control).

BIRD's semantics where drills are sensitive (read in BIRD's documentation and source, and
measured by ``bgplab experiment clique --implementation bird``): no MRAI at all, so an UPDATE
leaves as soon as a route changes; routes go to the kernel through its kernel protocol,
marked proto ``bird`` (12), not ``bgp`` (186) as zebra marks them.
"""

from __future__ import annotations

import grp
import os
import pwd
import re
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lab.daemons.base import Toolset, templates
from lab.errors import ConfigError, DaemonError
from lab.routers.ask import KeptSocket, kept
from lab.plan import NodePlan
from lab.routers.base import EXTENDED_MESSAGE, STANDARD_MESSAGE, Install, Run
from lab.routers.policy import EXPORTED_UP, export_kind, policy

BIRD_DIR = Path("/usr/sbin")
# bird drops to this user after start-up (keeping the capabilities BGP and the kernel
# protocol need), and reaches its node's directory through the lab's router group (FRR's:
# lab.state.close_lab_dir), as every router of a lab does.
BIRD_USER = "bird"
RTPROT_BIRD = 12


@dataclass(frozen=True)
class BirdPaths:
    dir: Path

    @property
    def conf(self) -> Path:
        return self.dir / "bird.conf"

    @property
    def ctl(self) -> Path:
        return self.dir / "bird.ctl"

    @property
    def pid(self) -> Path:
        return self.dir / "bird.pid"

    @property
    def log(self) -> Path:
        return self.dir / "bird.log"


@dataclass(frozen=True)
class _Session:
    name: str  # the BGP protocol's name in BIRD
    session: Any
    passive: bool
    imports: str
    exports: str


def protocol_name(index: int, peer: str) -> str:
    return f"s{index}_" + re.sub(r"[^A-Za-z0-9_]", "_", peer)


def render(lab: str, node: NodePlan, paths: BirdPaths) -> str:
    pol = policy(node)
    sessions = []
    for i, s in enumerate(node.sessions):
        imports = f"filter bgplab_from_{s.relation.value}" if pol else "all"
        exports = {"none": "none", "up": "filter bgplab_to_up", "all": "all"}[export_kind(node, s)]
        sessions.append(_Session(protocol_name(i, s.peer), s, s.peer_connects, imports, exports))
    mrai = {s.timers.mrai for s in node.sessions}
    return templates("lab.routers.bird").get_template("bird.conf.j2").render(
        lab=lab, node=node, policy=pol, exported_up=EXPORTED_UP, sessions=sessions, fib=node.installs_routes,
        networks=node.networks, log_path=paths.log, mrai=", ".join(map(str, sorted(mrai))) or "0")


class Control(KeptSocket):
    """A kept-open connection to bird's control socket, spoken to as birdc does: a command is
    a line; each answer line starts with a four-digit code, ``-`` when more follow and a space
    on the last (0xxx done, 8xxx and 9xxx errors), or a space when it continues the line before.
    A birdc process would cost ~5 ms a question; a question here well under one."""

    def greet(self, sock) -> None:
        self.buf = b""
        _reply(self, sock)  # 0001 BIRD x.y.z ready.

    def query(self, command: str, timeout: float = 15.0) -> list[tuple[str, str]]:
        def exchange(sock) -> list[tuple[str, str]]:
            sock.sendall(command.encode() + b"\n")
            return _reply(self, sock)

        lines = self.ask(command, exchange, timeout)
        if lines and lines[-1][0][0] in "89":
            raise DaemonError(f"{self.path}: '{command}' failed: {lines[-1][1].strip()[:300]}")
        return lines


def _line(c: Control, sock) -> str:
    while b"\n" not in c.buf:
        chunk = sock.recv(1 << 20)
        if not chunk:
            raise ConnectionResetError("bird closed its control socket")
        c.buf += chunk
    line, _, c.buf = c.buf.partition(b"\n")
    return line.decode(errors="replace")


def _reply(c: Control, sock) -> list[tuple[str, str]]:
    """(code, text) per line of one answer; a continuation line keeps its line's code."""
    out, code = [], ""
    while True:
        line = _line(c, sock)
        if line[:4].isdigit() and len(line) >= 5 and line[4] in "- ":
            code = line[:4]
            out.append((code, line[5:]))
            if line[4] == " ":
                return out
        else:
            out.append((code, line[1:] if line.startswith(" ") else line))


def control(paths: BirdPaths) -> Control:
    return kept(paths.ctl, Control)


def ask(paths: BirdPaths, command: str) -> list[str]:
    return [text for _, text in control(paths).query(command)]


_PROTO = re.compile(r"^(\S+)\s+BGP\s+")
_ROUTES = re.compile(r"Routes:\s+(\d+) imported,(?: (\d+) filtered,)? (\d+) exported")
_STATS = re.compile(r"(Export updates|Export withdraws):\s+(\d+)\s+\S+\s+\S+\s+\S+\s+(\d+)")


def protocols(paths: BirdPaths) -> dict[str, dict[str, Any]]:
    """Per BGP protocol: state, neighbour, description, whether both ends offered extended
    messages, per channel the routes imported and exported, and the routes exported and
    withdrawn since the session came up (``show protocols all``: a row per protocol, then its
    details indented under it)."""
    out: dict[str, dict[str, Any]] = {}
    cur: dict[str, Any] | None = None
    channel = caps = None
    for line in ask(paths, "show protocols all"):
        if not line[:1].isspace():  # a protocol's row (or the header): BGP ones are read
            m = _PROTO.match(line)
            cur = None
            if m:
                cur = out[m.group(1)] = {"state": "?", "neighbor": None, "description": "", "channels": {},
                                         "updates": 0, "extended": set()}
            channel = caps = None
            continue
        if cur is None:
            continue
        text = line.strip()
        key, _, value = text.partition(":")
        if key == "Description":
            cur["description"] = value.strip()
        elif key == "BGP state":
            cur["state"] = value.strip()
        elif key == "Neighbor address":
            cur["neighbor"] = value.strip()
        elif text in ("Local capabilities", "Neighbor capabilities"):
            caps = text.split()[0]
        elif text.startswith("Channel "):
            channel, caps = text.split()[1], None
            cur["channels"][channel] = {"imported": 0, "exported": 0}
        elif text == "Extended message" and caps:
            cur["extended"].add(caps)
        elif channel and (m := _ROUTES.search(text)):
            cur["channels"][channel] = {"imported": int(m.group(1)), "exported": int(m.group(3))}
        elif channel and (m := _STATS.search(text)):
            cur["updates"] += int(m.group(3))
        elif key in ("Session", "Source address"):
            caps = None
    return out


def host_owner_bird() -> tuple[int, int]:
    try:
        return pwd.getpwnam(BIRD_USER).pw_uid, grp.getgrnam("frr").gr_gid
    except KeyError:
        raise DaemonError(f"there is no '{BIRD_USER}' user (or 'frr' group) on this host; run `make lab-up` to install BIRD") from None


class _BirdDaemon:
    name = "bird"
    after: tuple[str, ...] = ()
    check_timeout = 30.0

    def write(self, lab: str, node: NodePlan, node_dir: Path, tools: Toolset) -> None:
        paths = BirdPaths(node_dir)
        node_dir.mkdir(parents=True, exist_ok=True)
        paths.conf.write_text(render(lab, node, paths))
        paths.log.touch()
        owner = tools.router_owners["bird"]
        for f in (node_dir, paths.conf, paths.log):
            os.chown(f, *owner)

    def check_argv(self, node: NodePlan, node_dir: Path, tools: Toolset) -> list[str]:
        return [str(tools.router_dirs["bird"] / "bird"), "-p", "-c", str(BirdPaths(node_dir).conf)]

    def check_result(self, node: NodePlan, node_dir: Path, rc: int | None, out: str, err: str) -> None:
        if rc != 0:
            detail = (err.strip() or out.strip())[-1000:] or f"exit status {rc}"
            raise ConfigError(f"node {node.name}: bird rejected {BirdPaths(node_dir).conf}: {detail}")

    def argv(self, node: NodePlan, node_dir: Path, tools: Toolset) -> list[str]:
        p = BirdPaths(node_dir)
        uid, gid = tools.router_owners["bird"]
        return [str(tools.router_dirs["bird"] / "bird"), "-f", "-c", str(p.conf), "-s", str(p.ctl),
                "-P", str(p.pid), "-u", str(uid), "-g", str(gid)]

    def environment(self) -> dict[str, str] | None:
        return None

    def ready(self, node_dir: Path) -> bool:
        return BirdPaths(node_dir).ctl.exists()


BIRD = _BirdDaemon()


class BirdRouter:
    name = "bird"
    label = "BIRD"
    daemons = (BIRD,)
    log_files = ("bird.out", "bird.log")
    kernel_proto = RTPROT_BIRD
    # bird as its own user, in FRR's group (the lab's router group)
    mrai = False
    records_updates = False  # its MRT protocol dumps tables, not the UPDATEs as they come
    poll_interval = 0.1  # a control-socket question: well under a millisecond (Control)
    # In a container, each found necessary by leaving it out: CHOWN and FOWNER (bird hands its
    # control socket to its user: "chown/chmod: Operation not permitted"), NET_BROADCAST (it
    # keeps it with the others when it drops to its user: sysdep/linux/syspriv.h; "capset").
    install = Install(("bird2",), BIRD_DIR, ("bird", 176, 179), capabilities=("CHOWN", "FOWNER", "NET_BROADCAST"),
                      services=("bird",))

    def host_tools(self) -> tuple[Path, tuple[int, int]]:
        if not (BIRD_DIR / "bird").exists():
            raise DaemonError(f"BIRD is not at {BIRD_DIR / 'bird'}; run `make lab-up` to install it (bird2)")
        return BIRD_DIR, host_owner_bird()

    def version(self, run: Run, tools: Toolset) -> str:
        out = run(["sh", "-c", f"{shlex.quote(str(tools.router_dirs[self.name] / 'bird'))} --version 2>&1"])
        m = re.search(r"version\s+(\S+)", out)
        return m.group(1) if m else "unknown"

    def render(self, lab: str, node: NodePlan, node_dir: Path) -> dict[str, str]:
        return {"bird.conf": render(lab, node, BirdPaths(node_dir))}

    def start_script(self, node: NodePlan, node_dir: Path, tools_dir: Path, owner: str) -> list[str]:
        p, q = BirdPaths(node_dir), shlex.quote
        user, group = owner.split(":")
        return [f"chown -R {owner} .",
                " ".join(map(q, [str(tools_dir / "bird"), "-c", str(p.conf), "-s", str(p.ctl), "-P", str(p.pid),
                                 "-u", user, "-g", group]))]

    def sessions(self, node_dir: Path) -> dict[str, dict[str, Any]]:
        out = {}
        for proto in protocols(BirdPaths(node_dir)).values():
            if proto["neighbor"] is None:
                continue
            ch = proto["channels"]
            out[proto["neighbor"]] = {
                "state": proto["state"],
                "received": {f: ch.get(f, {}).get("imported", 0) for f in ("ipv4", "ipv6")},
                "sent": {f: ch.get(f, {}).get("exported", 0) for f in ("ipv4", "ipv6")},
                "description": proto["description"],
            }
        return out

    def received(self, node_dir: Path) -> dict[str, int]:
        out = {}
        for family, table in (("ipv4", "master4"), ("ipv6", "master6")):
            lines = ask(BirdPaths(node_dir), f"show route count table {table}")
            m = next((re.search(r"for (\d+) networks", x) for x in lines if "networks" in x), None)
            out[family] = int(m.group(1)) if m else 0
        return out

    def rib(self, node_dir: Path, family: str = "ipv4") -> dict[str, list[dict[str, Any]]]:
        table = "master4" if family == "ipv4" else "master6"
        out: dict[str, list[dict[str, Any]]] = {}
        prefix = None
        path: dict[str, Any] | None = None
        for line in ask(BirdPaths(node_dir), f"show route all table {table}"):
            m = re.match(r"^(\S+/\d+)\s+\S+\s+\[", line)
            if m or re.match(r"^\s+\S+\s+\[\S+ ", line):
                if m:
                    prefix = m.group(1)
                path = {"as_path": [], "best": " * " in line or line.rstrip().endswith("*")}
                out.setdefault(prefix, []).append(path)
                continue
            text = line.strip()
            if path is not None and text.startswith("BGP.as_path:"):
                path["as_path"] = [int(a) for a in text.split(":", 1)[1].split() if a.isdigit()]
        return {p: paths for p, paths in out.items() if p is not None}

    def updates_sent(self, node_dir: Path) -> int:
        # BIRD counts routes, not messages: export updates and withdraws accepted, every session
        return sum(p["updates"] for p in protocols(BirdPaths(node_dir)).values())

    def message_sizes(self, node_dir: Path) -> dict[str, int]:
        out = {}
        for proto in protocols(BirdPaths(node_dir)).values():
            if proto["neighbor"] is not None:
                both = proto["extended"] == {"Local", "Neighbor"}  # RFC 8654: both ends offered it
                out[proto["neighbor"]] = EXTENDED_MESSAGE if both else STANDARD_MESSAGE
        return out

    def clear_session(self, node_dir: Path, address: str) -> None:
        for name, proto in protocols(BirdPaths(node_dir)).items():
            if proto["neighbor"] == address:
                ask(BirdPaths(node_dir), f"restart {name}")
                return
        raise DaemonError(f"{node_dir}: bird has no session to {address}")

    def feed(self, node_dir: Path) -> Path | None:
        return None

    def shell(self, node_dir: Path, commands: list[str]) -> list[str]:
        return ["birdc", "-s", str(BirdPaths(node_dir).ctl), *commands]

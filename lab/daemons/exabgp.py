"""ExaBGP on a speaker node, and the typed, acknowledged channel that drives it.

ExaBGP runs ``lab.daemons.exabgp_bridge`` as its API process; the bridge listens on
``<node dir>/exabgp.sock``. ``SpeakerChannel`` talks to that socket: every command
names its neighbour, every command gets exactly one ``done`` or ``error`` back, and a
missing answer is an error that names the speaker and the command.
"""

from __future__ import annotations

import ipaddress
import select
import shlex
import socket
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

from lab.daemons.base import Toolset, templates
from lab.errors import ConfigError, DaemonError, SpeakerError
from lab.plan import IPNetwork, NodePlan, Session

# Prefixes per `announce attributes ... nlri P1 P2 ...` line. The launcher makes ExaBGP
# apply a line whole within one reactor turn, so one line leaves as UPDATEs packed to the
# message size: 16,000 IPv4 /24s fill one 65,535-byte extended message. A line of 16,000
# IPv6 /48s is ~400 KB, under ExaBGP's limit of 1 MiB per command (MAX_LINE).
BATCH = 16000
MAX_LINE = 1024 * 1024  # ExaBGP 5.0's Processes.MAX_COMMAND_SIZE: a longer line kills the API process


@dataclass(frozen=True)
class ExabgpPaths:
    dir: Path

    @property
    def conf(self) -> Path:
        return self.dir / "exabgp.conf"

    @property
    def socket(self) -> Path:
        return self.dir / "exabgp.sock"

    @property
    def log(self) -> Path:
        return self.dir / "exabgp.log"


def exabgp_binary() -> Path:
    # The ExaBGP pinned in pyproject, from the same environment as bgplab itself.
    path = Path(sys.executable).parent / "exabgp"
    if not path.exists():
        raise DaemonError(f"ExaBGP is not installed beside {sys.executable}; run `make lab-up`")
    return path


def host_launcher() -> str:
    """How the host starts ExaBGP (the netns runtime): through the launcher that paces its
    API for packed UPDATEs (lab/daemons/exabgp_launch.py); an image has its own copy."""
    exabgp_binary()
    return f"{sys.executable} -m lab.daemons.exabgp_launch"


def host_bridge() -> str:
    """How the host runs the API bridge (the netns runtime); an image has its own copy."""
    return f"{sys.executable} -m lab.daemons.exabgp_bridge"


def environment() -> dict[str, str]:
    """ExaBGP settings, as its environment variables (only these: a runtime adds its own)."""
    return {
        "exabgp_api_ack": "true",  # the channel depends on it; explicit, not a default
        "exabgp_api_cli": "false",  # no named pipes in the host's /run
        "exabgp_api_respawn": "true",  # a dead bridge is restarted by ExaBGP
        "exabgp_daemon_user": "root",
        "exabgp_daemon_drop": "false",
        "exabgp_daemon_daemonize": "false",
        "exabgp_log_destination": "stdout",
        "exabgp_log_level": "WARNING",
        "exabgp_tcp_bind": "",  # it connects out; FRR's side is passive
    }


def render(lab: str, node: NodePlan, paths: ExabgpPaths, bridge: str) -> dict[str, str]:
    """``bridge``: the command that runs the API bridge (its socket path is appended)."""
    text = templates().get_template("exabgp.conf.j2").render(
        lab=lab, node=node, socket=paths.socket, bridge_argv=f"{bridge} {paths.socket}"
    )
    return {"exabgp.conf": text}


def write(lab: str, node: NodePlan, paths: ExabgpPaths, bridge: str) -> None:
    paths.dir.mkdir(parents=True, exist_ok=True)
    for name, text in render(lab, node, paths, bridge).items():
        (paths.dir / name).write_text(text)


def check_argv(paths: ExabgpPaths, exabgp: str) -> list[str]:
    """``exabgp``: the command line that starts ExaBGP (the launcher, with its interpreter)."""
    return [*shlex.split(exabgp), "validate", "-n", str(paths.conf)]


def check_result(node: NodePlan, paths: ExabgpPaths, rc: int | None, out: str, err: str) -> None:
    if rc != 0:
        detail = (err.strip() or out.strip())[-1500:] or f"exit status {rc}"
        raise ConfigError(f"node {node.name}: exabgp rejected {paths.conf}: {detail}")


def argv(paths: ExabgpPaths, exabgp: str) -> list[str]:
    return [*shlex.split(exabgp), "server", str(paths.conf)]


# -- typed commands -------------------------------------------------------------------


Address = ipaddress.IPv4Address | ipaddress.IPv6Address


def _selector(neighbors: tuple[Address, ...]) -> str:
    if not neighbors:
        raise ValueError("a command must name at least one neighbor")
    # ExaBGP's selector list: `neighbor A , neighbor B <command>`; parsed once, applied to each.
    return " , ".join(f"neighbor {n}" for n in neighbors)


@dataclass(frozen=True)
class Announce:
    """Announce prefixes of one family to some neighbours with one attribute set.

    ``next_hop`` None means ``next-hop self``: each neighbour gets the speaker's own
    address on that session. That is right for IPv4 over IPv4 sessions only; IPv6
    prefixes name their IPv6 next hop per neighbour.
    """

    neighbors: tuple[Address, ...]
    next_hop: Address | None
    prefixes: tuple[IPNetwork | str, ...]
    origin: str = "igp"
    # ASes after the speaker's own (ExaBGP puts its own AS first on an eBGP session)
    as_path: tuple[int, ...] = ()

    def render(self) -> str:
        if not self.prefixes:
            raise ValueError("an announcement needs at least one prefix")
        nh = "self" if self.next_hop is None else str(self.next_hop)
        nlri = " ".join(str(p) for p in self.prefixes)
        path = f" as-path [ {' '.join(map(str, self.as_path))} ]" if self.as_path else ""
        return f"{_selector(self.neighbors)} announce attributes next-hop {nh} origin {self.origin}{path} nlri {nlri}"


@dataclass(frozen=True)
class Withdraw:
    neighbors: tuple[Address, ...]
    prefixes: tuple[IPNetwork, ...]

    def render(self) -> str:
        if not self.prefixes:
            raise ValueError("a withdrawal needs at least one prefix")
        nlri = " ".join(str(p) for p in self.prefixes)
        return f"{_selector(self.neighbors)} withdraw attributes nlri {nlri}"


Command = Announce | Withdraw


def announcements(sessions: Sequence[Session], prefixes: Iterable[IPNetwork], batch: int = BATCH) -> list[Announce]:
    """Commands announcing ``prefixes`` on ``sessions``, ``batch`` prefixes per line."""
    nets = list(prefixes)
    return _announce(sessions, [p for p in nets if p.version == 4], [p for p in nets if p.version == 6], batch)


def table_announcements(sessions: Sequence[Session], table, batch: int = BATCH) -> list[Announce]:
    """Commands announcing a synthetic Internet table (lab.table.Table): one per AS path
    (an attribute set) and family."""
    out = []
    for family, route in table.routes():
        v4, v6 = (route.prefixes, ()) if family == "ipv4" else ((), route.prefixes)
        out += _announce(sessions, v4, v6, batch, route.as_path)
    return out


def _announce(sessions: Sequence[Session], v4: Sequence[IPNetwork | str], v6: Sequence[IPNetwork | str],
              batch: int, as_path: tuple[int, ...] = ()) -> list[Announce]:
    """ExaBGP spends tens of microseconds parsing each prefix, so IPv4 goes to every session
    in one command (``next-hop self``) and is parsed once; IPv6 needs each session's own IPv6
    next hop, so it goes per session."""
    everyone = tuple(s.peer_v4 for s in sessions)
    out = [Announce(everyone, None, tuple(v4[i : i + batch]), as_path=as_path) for i in range(0, len(v4), batch)]
    for s in sessions:
        out += [Announce((s.peer_v4,), s.local_v6, tuple(v6[i : i + batch]), as_path=as_path)
                for i in range(0, len(v6), batch)]
    return out


def withdrawals(sessions: Sequence[Session], prefixes: Iterable[IPNetwork], batch: int = BATCH) -> list[Withdraw]:
    """Commands withdrawing ``prefixes`` from every one of ``sessions``, one family per line.

    (ExaBGP 5.0 drops the IPv4 half of a `withdraw attributes` line that mixes families.)
    """
    everyone = tuple(s.peer_v4 for s in sessions)
    nets = list(prefixes)
    out = []
    for version in (4, 6):
        fam = [p for p in nets if p.version == version]
        for i in range(0, len(fam), batch):
            out.append(Withdraw(everyone, tuple(fam[i : i + batch])))
    return out


@dataclass(frozen=True)
class Ack:
    command: str
    ok: bool
    output: tuple[str, ...]
    seconds: float


class SpeakerChannel:
    """A connection to one speaker's bridge. Send commands, get exactly one answer each."""

    def __init__(self, speaker: str, path: Path, *, timeout: float = 30.0):
        self.speaker = speaker
        self.path = path
        self.timeout = timeout
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            self.sock.connect(str(path))
        except OSError as e:
            self.sock.close()
            raise SpeakerError(f"speaker {speaker}: cannot reach its API channel at {path}: {e.strerror}") from None
        self.buf = b""

    def __enter__(self) -> "SpeakerChannel":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.sock.close()

    def closed(self) -> bool:
        """True once the bridge has gone (the speaker stopped or restarted). Never blocks."""
        try:
            readable, _, _ = select.select([self.sock], [], [], 0)
            if not readable:
                return False
            return self.sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b""
        except (OSError, ValueError):
            return True

    def _readline(self, deadline: float, command: str) -> str:
        while b"\n" not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise SpeakerError(
                    f"speaker {self.speaker}: no acknowledgement within {self.timeout:g} s for: {_short(command)}"
                )
            self.sock.settimeout(left)
            try:
                chunk = self.sock.recv(65536)
            except TimeoutError:
                continue
            if not chunk:
                raise SpeakerError(f"speaker {self.speaker}: channel closed while waiting for: {_short(command)}")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return line.decode(errors="replace").strip()

    def send_many(self, commands: Sequence[Command | str], *, window: int = 64) -> list[Ack]:
        """Send commands with up to ``window`` in flight; raise on the first ``error``.

        Answers come back in order (the bridge serialises them), so the n-th ``done`` or
        ``error`` is the n-th command's.
        """
        lines = [c if isinstance(c, str) else c.render() for c in commands]
        for line in lines:
            if not line.startswith("neighbor "):
                raise SpeakerError(f"speaker {self.speaker}: refusing a command that names no neighbor: {_short(line)}")
            if "\n" in line:
                raise SpeakerError(f"speaker {self.speaker}: a command is one line: {_short(line)}")
            if len(line) >= MAX_LINE:
                raise SpeakerError(f"speaker {self.speaker}: a command of {len(line):,} characters is over ExaBGP's "
                                   f"limit of {MAX_LINE:,}; send fewer prefixes per command: {_short(line)}")
        acks: list[Ack] = []
        sent_at: list[float] = []
        nxt = 0
        while len(acks) < len(lines):
            while nxt < len(lines) and nxt - len(acks) < window:
                self.sock.sendall(lines[nxt].encode() + b"\n")
                sent_at.append(time.monotonic())
                nxt += 1
            i = len(acks)
            deadline = sent_at[i] + self.timeout
            output = []
            while True:
                line = self._readline(deadline, lines[i])
                if line in ("done", "error"):
                    break
                output.append(line)
            ack = Ack(lines[i], line == "done", tuple(output), time.monotonic() - sent_at[i])
            if not ack.ok:
                # Drain the answers of what is still in flight so the channel stays usable.
                for j in range(i + 1, nxt):
                    while self._readline(sent_at[j] + self.timeout, lines[j]) not in ("done", "error"):
                        pass
                detail = "; ".join(output) or "ExaBGP answered 'error' (see its log)"
                raise SpeakerError(f"speaker {self.speaker}: command failed: {_short(lines[i])}: {detail}")
            acks.append(ack)
        return acks

    def send(self, command: Command | str) -> Ack:
        return self.send_many([command])[0]


def _short(line: str, n: int = 160) -> str:
    return line if len(line) <= n else f"{line[:n]}... ({len(line)} chars)"


# -- the daemon contract (lab.daemons.Daemon) ------------------------------------------------


class _Exabgp:
    name = "exabgp"
    after: tuple[str, ...] = ()
    check_timeout = 60.0

    def write(self, lab: str, node: NodePlan, node_dir: Path, tools: Toolset) -> None:
        write(lab, node, ExabgpPaths(node_dir), tools.bridge)

    def check_argv(self, node: NodePlan, node_dir: Path, tools: Toolset) -> list[str]:
        return check_argv(ExabgpPaths(node_dir), tools.exabgp)

    def check_result(self, node: NodePlan, node_dir: Path, rc: int | None, out: str, err: str) -> None:
        check_result(node, ExabgpPaths(node_dir), rc, out, err)

    def argv(self, node: NodePlan, node_dir: Path, tools: Toolset) -> list[str]:
        return argv(ExabgpPaths(node_dir), tools.exabgp)

    def environment(self) -> dict[str, str] | None:
        return environment()

    def ready(self, node_dir: Path) -> bool:
        # the API bridge accepts connections: the channel can be used
        sock = ExabgpPaths(node_dir).socket
        if not sock.exists():
            return False
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            s.connect(str(sock))
            return True
        except OSError:
            return False
        finally:
            s.close()


EXABGP = _Exabgp()

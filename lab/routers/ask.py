"""How the lab asks a router, whatever runs it: a control socket kept open (FRR's vty, BIRD's
control socket), or the implementation's own command with JSON output (GoBGP's gobgp,
OpenBGPD's bgpctl). One place for what they share: reconnecting to a daemon that restarted,
a daemon too busy to answer in time (DaemonBusy: ask again) told from one that is gone
(DaemonError), and a process's output that is not what it should be (ExecError)."""

from __future__ import annotations

import json
import socket
import subprocess
import threading
from pathlib import Path
from typing import Any, Callable, TypeVar

from lab.errors import DaemonBusy, DaemonError, ExecError

T = TypeVar("T")


class KeptSocket:
    """A unix socket to one daemon, kept open between questions (a process per question costs
    ~5-30 ms of CPU, a question here well under one: the sampler and `up` ask many times a
    second while the routers converge). ``exchange`` speaks the daemon's protocol on the open
    socket; ``greet`` reads what it says on connecting."""

    def __init__(self, path: Path):
        self.path = path
        self.sock: socket.socket | None = None
        self.lock = threading.Lock()

    def greet(self, sock: socket.socket) -> None:
        """What the daemon says first (nothing by default)."""

    def ask(self, command: str, exchange: Callable[[socket.socket], T], timeout: float = 15.0) -> T:
        with self.lock:
            for attempt in (1, 2):  # a kept connection may have died with a restarted daemon
                try:
                    if self.sock is None:
                        self.sock = self._connect(timeout)
                    self.sock.settimeout(timeout)
                    return exchange(self.sock)
                except OSError as e:
                    if self.sock is not None:
                        self.sock.close()
                    self.sock = None
                    if isinstance(e, TimeoutError):
                        raise DaemonBusy(f"{self.path}: '{command}' got no answer in {timeout:g} s") from None
                    if attempt == 2:
                        raise DaemonError(f"{self.path}: '{command}' got no answer: {e}") from None
        raise AssertionError("unreachable")

    def _connect(self, timeout: float) -> socket.socket:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(timeout)
        try:
            sock.connect(str(self.path))
        except OSError as e:
            sock.close()
            raise DaemonError(f"cannot reach {self.path}: {e.strerror or e}") from None
        self.greet(sock)
        return sock


_kept: dict[Path, KeptSocket] = {}
_kept_lock = threading.Lock()


def kept(path: Path, kind: type[KeptSocket]) -> Any:
    """The one kept socket to ``path`` (made on first use)."""
    with _kept_lock:
        k = _kept.get(path)
        if k is None:
            k = _kept[path] = kind(path)
        return k


def command_json(argv: list[str], what: str, *, timeout: float = 15.0, as_json: bool = True) -> Any:
    """The implementation's own command, run once: its JSON answer (its text with as_json off).
    A failure names ``what`` was asked and what the command said."""
    try:
        p = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        raise DaemonBusy(f"{what}: no answer in {timeout:g} s") from None
    if p.returncode != 0:
        raise DaemonError(f"{what} failed: {(p.stderr or p.stdout).strip()[:300]}")
    if not as_json:
        return p.stdout
    try:
        return json.loads(p.stdout) if p.stdout.strip() else None
    except ValueError:
        raise ExecError(argv, 0, p.stdout[-500:], "output is not JSON") from None

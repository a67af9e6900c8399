"""Processes a lab started, found by PID and by the lab's own mark; ended only those.

Every process a lab starts carries ``BGPLAB_LAB=<lab>`` in its environment (and its
children inherit it), so a lab torn down after a crash finds even the processes whose
PIDs never reached the state file. Nothing is ever matched by command name.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Iterable

MARK = "BGPLAB_LAB"


def mark_env(lab: str, extra: dict[str, str] | None = None) -> dict[str, str]:
    """This process's environment with ``extra`` on top, marked with the lab."""
    return {**os.environ, **(extra or {}), MARK: lab}


def lab_of(pid: int) -> str | None:
    """The lab a process belongs to, read from its environment; None if unmarked or gone."""
    try:
        raw = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return None
    needle = f"{MARK}=".encode()
    for entry in raw.split(b"\0"):
        if entry.startswith(needle):
            return entry[len(needle):].decode(errors="replace")
    return None


def marked_pids(lab: str) -> list[int]:
    me = os.getpid()
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit() and int(entry) != me and lab_of(int(entry)) == lab:
            out.append(int(entry))
    return sorted(out)


def all_marked_labs() -> set[str]:
    labs = set()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            lab = lab_of(int(entry))
            if lab:
                labs.add(lab)
    return labs


def alive(pid: int) -> bool:
    """True for a running process; a zombie is not alive."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def rss_kib(pid: int) -> int | None:
    """A process's resident memory in KiB; None where nothing was read (the process is gone, or
    is a zombie with no memory left): a gone process's memory is not known, not 0."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def rss_total_kib(pids: Iterable[int]) -> tuple[int, int]:
    """The resident memory of the processes still there, and how many were gone (not counted)."""
    got = [rss_kib(pid) for pid in pids]
    return sum(x for x in got if x is not None), sum(1 for x in got if x is None)


def _reap(pid: int) -> None:
    # Our own children (when `up` itself tears down) must be reaped or they stay zombies.
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


def _wait_gone(pids: list[int], seconds: float) -> list[int]:
    """Wait until none of ``pids`` is alive or ``seconds`` pass; return those still alive."""
    deadline = time.monotonic() + seconds
    remaining = pids
    while remaining:
        for pid in remaining:
            _reap(pid)
        remaining = [p for p in remaining if alive(p)]
        if not remaining or time.monotonic() >= deadline:
            break
        time.sleep(0.02)
    return remaining


def _signal(pids: list[int], lab: str, sig: int) -> None:
    for pid in pids:
        # Re-checked right before signalling: a PID that is no longer the lab's is left alone.
        if lab_of(pid) == lab:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass


def end_processes(lab: str, pids: list[int], grace: float = 1.5) -> list[str]:
    """SIGTERM the lab's processes, SIGKILL what is left after ``grace`` seconds.

    Only PIDs still carrying this lab's mark are signalled, so a recycled PID is never hit.
    Returns the problems (processes that would not die).
    """
    targets = sorted({p for p in pids if lab_of(p) == lab} | set(marked_pids(lab)))
    _signal(targets, lab, signal.SIGTERM)
    remaining = _wait_gone(targets, grace)
    _signal(remaining, lab, signal.SIGKILL)
    remaining = _wait_gone(remaining, 2.0)
    return [f"process {pid} of lab '{lab}' survived SIGKILL" for pid in remaining]


def lab_rss_kib(lab: str) -> int:
    """Resident memory of every process carrying the lab's mark (daemons and their helpers) that
    is still there when it is read (one that ended meanwhile is not counted, rather than as 0)."""
    return rss_total_kib(marked_pids(lab))[0]

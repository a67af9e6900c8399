"""How a drill ends early: SIGINT or SIGTERM (``DrillInterrupted``, raised once in the main
thread by ``interrupts``), or its maximum duration passed (``DrillOverrun``)."""

from __future__ import annotations

import os
import signal
import threading
from contextlib import contextmanager
from typing import Iterator

from lab.errors import BgplabError


class DrillInterrupted(BgplabError):
    """The drill was stopped by a signal; the lab it made is gone, its report says so."""

    def __init__(self, signum: int):
        self.signum = signum
        self.exit_code = 128 + signum  # 130 for Ctrl-C, 143 for SIGTERM, as a shell reports them
        super().__init__(f"drill interrupted by {signal.Signals(signum).name}")


class DrillOverrun(BgplabError):
    """The drill passed its maximum duration (a task nobody stopped, a step that never came)."""

    exit_code = 3


@contextmanager
def interrupts() -> Iterator[None]:
    """SIGINT and SIGTERM raise DrillInterrupted in the main thread, once: a second signal
    during the cleanup that follows does not cut that cleanup short."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    fired: list[int] = []
    owner = os.getpid()

    def handler(signum: int, _frame: object) -> None:
        if os.getpid() != owner:
            # A child forked from this process (pyroute2's namespace helpers are) inherits the
            # handler: there the signal means what it always means, so end as the default would.
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)
            return
        if not fired:
            fired.append(signum)
            raise DrillInterrupted(signum)

    previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)

"""Wait on a state, never sleep blindly: re-check until it holds or a timeout passes."""

from __future__ import annotations

import time
from typing import Callable

from lab.errors import WaitTimeout

# A check returns (done, what it saw): what it saw goes into the timeout message.
Check = Callable[[], "tuple[bool, str]"]


def wait_until(check: Check, *, timeout: float, what: str, interval: float = 0.05) -> float:
    """Return the seconds it took for ``check`` to hold; raise WaitTimeout naming ``what``."""
    start = time.monotonic()
    deadline = start + timeout
    seen = ""
    while True:
        done, seen = check()
        now = time.monotonic()
        if done:
            return now - start
        if now >= deadline:
            raise WaitTimeout(f"timed out after {timeout:g} s waiting for {what}; last seen: {seen}")
        time.sleep(min(interval, max(0.0, deadline - now)))

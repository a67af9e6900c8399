"""The drill's own view while it runs: on a terminal, a small table redrawn in place once a
second; anywhere else (a CI log, a pipe), one plain line a second, as before.

The figures are the runner's sampler's (network: the observer's count, the end hosts'
probes) and the drill's own records (controller: impact states, held changes, trips).
"""

from __future__ import annotations

import sys
from typing import Any, TextIO

CLEAR_LINE = "\x1b[2K"
UP = "\x1b[{n}F"  # cursor to the start of the line n lines up


def _n(v: Any) -> str:
    return "?" if v is None else f"{v:,}" if isinstance(v, int) else str(v)


def rows(s: dict[str, Any]) -> list[tuple[str, str]]:
    """The table's rows, label and value, from one status."""
    probes = s.get("probes") or {}
    ok = sum(v.get("ok", 0) for v in probes.values())
    total = sum(sum(v.values()) for v in probes.values())
    impact = s.get("impact") or {}
    out = [
        ("clock", f"{s['clock']}  {s['pace']}"),
        ("step", s.get("step") or "-"),
        ("next", s.get("next") or "-"),
        ("observer", f"{_n(s.get('observer'))} prefixes (network)"),
        ("probes ok", f"{ok}/{total} in the last 1.5 s (network)" if total else "-"),
        ("withdrawn only / some bindings gone / all gone",
         f"{_n(impact.get('withdrawn_only'))} / {_n(impact.get('some_bindings'))} / {_n(impact.get('all_bindings'))} (controller)"),
        ("task", s.get("task") or "-"),
    ]
    if s.get("guardrails"):
        out.append(("guardrails", s["guardrails"]))
    return out


class TerminalView:
    def __init__(self, out: TextIO = sys.stderr, tty: bool | None = None):
        self.out = out
        self.tty = out.isatty() if tty is None else tty
        self.drawn = 0  # lines of the table on screen

    def line(self, text: str) -> None:
        """A message (bring-up, settling, ...): above the table on a terminal."""
        self._clear()
        self.out.write(text + "\n")
        self.out.flush()

    def update(self, status: dict[str, Any], plain: str) -> None:
        """Once a second: the table redrawn in place, or ``plain`` as a line."""
        if not self.tty:
            self.out.write(plain + "\n")
            self.out.flush()
            return
        self._clear()
        r = rows(status)
        width = max(len(k) for k, _ in r)
        text = "".join(f"{CLEAR_LINE}{k:>{width}}  {v}\n" for k, v in r)
        self.out.write(text)
        self.out.flush()
        self.drawn = len(r)

    def _clear(self) -> None:
        if self.tty and self.drawn:
            self.out.write(UP.format(n=self.drawn) + "".join(CLEAR_LINE + "\n" for _ in range(self.drawn))
                           + UP.format(n=self.drawn))
            self.drawn = 0

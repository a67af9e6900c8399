"""The drill's terminal view: a table redrawn in place on a terminal, plain lines elsewhere."""

from __future__ import annotations

import io

from controller.drills.terminal import TerminalView

STATUS = {"clock": "18:01:20", "pace": "x240", "step": "cleanup sub-task starts", "next": "20:20:00 revert",
          "observer": 6391, "impact": {"withdrawn_only": 95, "some_bindings": 0, "all_bindings": 36},
          "probes": {"host1": {"ok": 30, "timeout": 2}, "host2": {"ok": 32}}, "task": "cleanup: 131 withdrawn",
          "guardrails": None}


def test_plain_lines_when_not_a_terminal() -> None:
    out = io.StringIO()
    v = TerminalView(out, tty=False)
    v.update(STATUS, "[18:01:20 x240] task cleanup withdrawn by task 131")
    v.line("steps done")
    assert out.getvalue() == "[18:01:20 x240] task cleanup withdrawn by task 131\nsteps done\n"
    assert "\x1b" not in out.getvalue()


def test_a_table_redrawn_in_place_on_a_terminal() -> None:
    out = io.StringIO()
    v = TerminalView(out, tty=True)
    v.update(STATUS, "plain")
    first = out.getvalue()
    assert "6,391 prefixes (network)" in first and "62/64 in the last 1.5 s" in first and "95 / 0 / 36" in first
    assert "plain" not in first and v.drawn == 7
    v.update({**STATUS, "observer": 6300}, "plain")
    second = out.getvalue()[len(first):]
    assert second.startswith("\x1b[7F") and "6,300 prefixes" in second  # back up over the old table, then redrawn
    v.line("steps done at 23:55:04")
    assert out.getvalue().endswith("steps done at 23:55:04\n") and v.drawn == 0

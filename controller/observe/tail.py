"""The one JSON-lines reader for files the lab's daemons are still writing (probes, samples,
faults): what is new since the last read, and what the last seconds held.

A line still being written (no newline yet) is left for the next read; the files only grow.
The MRT dumps have their own reader (controller.observe.mrt.records), with the same rule.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

# How far back from the end ``recent`` reads: enough for several seconds of every probe of the
# reference lab (about 60 lines a second of ~150 bytes), and cheap to read twice a second.
RECENT_BYTES = 256 * 1024


class JsonlTail:
    """New records of a JSON-lines file since the last read."""

    def __init__(self, path: Path):
        self.path, self.pos, self.rest = path, 0, b""

    def read(self) -> list[dict[str, Any]]:
        try:
            with open(self.path, "rb") as f:
                f.seek(self.pos)
                data = f.read()
        except FileNotFoundError:
            return []
        self.pos += len(data)
        lines = (self.rest + data).split(b"\n")
        self.rest = lines.pop()
        return [json.loads(line) for line in lines if line.strip()]


def recent(path: Path, window: float, now: float | None = None) -> list[dict[str, Any]]:
    """Records stamped (``t``, wall clock) in the last ``window`` seconds, newest first, from the
    file's last RECENT_BYTES (where that is not the file's start, the first line there is cut,
    and skipped)."""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            start = max(0, f.tell() - RECENT_BYTES)
            f.seek(start)
            lines = f.read().decode(errors="replace").splitlines()[1 if start else 0:]
    except FileNotFoundError:
        return []
    cutoff = (time.time() if now is None else now) - window
    out = []
    for line in reversed(lines):
        try:
            e = json.loads(line)
        except ValueError:
            continue  # the last line, still being written
        if e["t"] < cutoff:
            break
        out.append(e)
    return out

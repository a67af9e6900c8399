"""Durations as people write them ('90s', '8m', '1h 7m') and as the controller counts them
(seconds): the one parser, for drill files and for the API's settings."""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import BeforeValidator

DURATION = re.compile(r"^(?:(\d+)h)?\s*(?:(\d+)m)?\s*(?:(\d+(?:\.\d+)?)s)?$")


def parse_duration(text: str | int | float) -> float:
    """'1h', '8m', '90s', '1h 7m' -> seconds."""
    if isinstance(text, (int, float)):
        return float(text)
    m = DURATION.match(str(text).strip())
    if not m or not any(m.groups()):
        raise ValueError(f"{text!r} is not a duration (examples: 90s, 8m, 1h 7m)")
    h, mi, s = m.groups()
    return int(h or 0) * 3600 + int(mi or 0) * 60 + float(s or 0)


def _seconds(v: Any) -> Any:
    return parse_duration(v) if isinstance(v, str) else v


# Seconds, given as a number or as duration text ('10m' is 600.0)
Seconds = Annotated[float, BeforeValidator(_seconds)]

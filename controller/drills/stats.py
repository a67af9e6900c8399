"""A figure (its value, its source, its basis) and the statistics the figures share: the
percentiles of a distribution and when probes say a prefix is back (sustained)."""

from __future__ import annotations

import statistics
from typing import Any, Iterable


SOURCES = ("input", "controller", "network", "calibrated")


def figure(value: Any, source: str, basis: str, *, unmeasured: str | None = None, **extra: Any) -> dict[str, Any]:
    """A figure and where it comes from. ``unmeasured``: why a network figure has no evidence
    behind it; the value is then None whatever was computed, and says so (an expectation on
    it fails, naming the reason), rather than standing in a value from another source."""
    if source not in SOURCES:
        raise ValueError(f"a figure's source is one of {', '.join(SOURCES)} (got {source!r})")
    if unmeasured:
        return {"value": None, "source": source, "basis": basis, "reason": unmeasured, **extra}
    return {"value": value, "source": source, "basis": basis, **extra}


# Probes in a row, every one ok and none failing after them, that make a recovery: a single
# ok probe between failures (a machine the binding has reached, then one it has not) is not one.
SUSTAINED_PROBES = 3


def sustained_from(runs: list[tuple[float, bool]], n: int = SUSTAINED_PROBES) -> float | None:
    """When the last run of ok probes began, if it holds at least ``n`` probes and nothing
    failed after it; else None (still failing at the end, or too few oks to call it back)."""
    start, count = None, 0
    for t, ok in runs:
        if ok:
            if start is None:
                start = t
            count += 1
        else:
            start, count = None, 0
    return start if start is not None and count >= n else None


def percentile(values: list[float], p: float) -> float | None:
    if not values:
        return None
    s = sorted(values)
    k = (len(s) - 1) * p
    lo, hi = int(k), min(int(k) + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


def distribution(values: Iterable[float | None]) -> dict[str, float | int | None]:
    v = [x for x in values if x is not None]
    return {
        "n": len(v),
        "median": round(statistics.median(v), 4) if v else None,
        "p90": round(percentile(v, 0.9), 4) if v else None,
        "max": round(max(v), 4) if v else None,
    }

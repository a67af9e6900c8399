"""A figure (its value, its source, its basis) and the statistics the figures share: the
percentiles of a distribution and when probes say a prefix is back (sustained)."""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from typing import Any, Iterable, Iterator


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


@dataclass(frozen=True)
class Figure:
    """One figure of a run, read by attribute: its value, its source, its basis, why it has no
    value (``reason``), and the fields some figures carry beside (``more``: the clock, a share,
    examples, what calibrated it). A figure the run did not make reads as absent: ``made`` is
    false and every field is empty."""

    name: str
    value: Any = None
    source: str = ""
    basis: str = ""
    reason: str | None = None
    more: dict[str, Any] = field(default_factory=dict)

    @property
    def made(self) -> bool:
        return bool(self.source)

    def get(self, key: str, default: Any = None) -> Any:
        """A field beside the value (``share``, ``clock``, ``examples``...), or ``default``."""
        return self.more.get(key, default)

    @classmethod
    def of(cls, name: str, d: dict[str, Any] | None) -> "Figure":
        if d is None:
            return cls(name)
        rest = {k: v for k, v in d.items() if k not in ("value", "source", "basis", "reason")}
        return cls(name, d.get("value"), d["source"], d["basis"], d.get("reason"), rest)


class Figures:
    """A run's figures, by attribute: ``F.withdrawn_by_task.value``, ``F.products.made``. Built
    from metrics.json's ``figures`` (or the analysis's), which stay the record on disk."""

    def __init__(self, raw: dict[str, dict[str, Any]]):
        self._raw = raw

    def __getattr__(self, name: str) -> Figure:
        if name.startswith("_"):
            raise AttributeError(name)
        return Figure.of(name, self._raw.get(name))

    def __contains__(self, name: str) -> bool:
        return name in self._raw

    def __iter__(self) -> Iterator[Figure]:
        return (Figure.of(n, d) for n, d in self._raw.items())


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

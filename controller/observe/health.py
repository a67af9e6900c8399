"""What the end hosts' probes say of the last seconds: the staged rollout's health signal
(network), and a per-host summary for the lab's observe route."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from controller.observe.probe import by_end_host
from controller.observe.tail import recent


def probe_health(paths: list[Path], since: float, until: float, announced: set[str]) -> dict[str, Any]:
    """The end hosts' probe results between ``since`` and ``until``, of every product, on the
    prefixes some PoP announces (``announced``): a prefix withdrawn everywhere serves nothing and
    is not a failure of the network. ``paths``: the lab's sample and the stage's own probes of
    its prefixes. How many, and how many were not ok: the staged rollout's health signal (network)."""
    results = [e for path in paths for e in recent(path, until - since + 1.0)
               if by_end_host(e) and since <= e["t"] <= until and e["prefix"] in announced]
    not_ok = [e for e in results if e["result"] != "ok"]
    by: dict[str, int] = {}
    for e in not_ok:
        by[e["result"]] = by.get(e["result"], 0) + 1
    return {"total": len(results), "not_ok": len(not_ok), "by_result": by,
            "basis": "the end hosts' probes of every product in the window (the lab's sample and the stage's own "
                     "prefixes), on prefixes some PoP announces"}


def probe_summary(path: Path, window: float = 1.5) -> dict[str, dict[str, int]]:
    """Results of the end hosts' probes of the last ``window`` seconds, per host."""
    out: dict[str, dict[str, int]] = {}
    for e in recent(path, window):
        if not by_end_host(e):
            continue  # the PoPs' own egress attempts, not an end host's view
        per = out.setdefault(e["host"], {})
        per[e["result"]] = per.get(e["result"], 0) + 1
    return out

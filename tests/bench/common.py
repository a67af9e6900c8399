"""What both benchmarks share: the command line, repeated runs, medians, the JSON file."""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parents[2]


def arguments(doc: str, out: str, *, runtimes: bool = False,
              extra: Callable[[argparse.ArgumentParser], None] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=doc)
    if extra:
        extra(ap)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--topology", default="topologies/byoip-incident.yaml")
    ap.add_argument("--out", default=out)
    if runtimes:
        ap.add_argument("--runtimes", default="netns", help="comma-separated: netns,docker (side by side, same run)")
    return ap.parse_args()


def repeat(runs: int, tag: str, one_run: Callable[[str], dict[str, Any]], line: Callable[[dict[str, Any]], str]) -> list[dict]:
    """``runs`` runs, each on a fresh lab named after ``tag``, one progress line each."""
    out = []
    for i in range(runs):
        r = one_run(f"{tag}{os.getpid() % 10000}_{i}")
        out.append(r)
        print(f"run {i + 1}/{runs}: {line(r)}", file=sys.stderr)
    return out


def medians(runs: list[dict[str, Any]], keys: list[str]) -> dict[str, float]:
    return {k: round(statistics.median(r[k] for r in runs), 3) for k in keys}


def write(out: str, result: dict[str, Any]) -> Path:
    path = ROOT / out
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({**result, "cpus": os.cpu_count(),
                                "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}, indent=2))
    return path

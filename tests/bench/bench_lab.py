"""Benchmark: the reference lab from `bgplab up` to converged, `bgplab down`, memory.

Prints medians of several runs and writes every run as JSON. Run with `make bench`.
Targets (issue 2): up to converged <= 10 s on 2 cores; down <= 3 s; lab <= 1 GiB resident.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

from lab.daemons.frr import frr_version
from lab.lifecycle import lab_rss_kib
from lab.procs import marked_pids
from tests.bench import common

ROOT = Path(__file__).resolve().parents[2]
BGPLAB = [sys.executable, "-m", "controller.cli"]


def one_run(topology: str, name: str) -> dict:
    t0 = time.monotonic()
    up = subprocess.run([*BGPLAB, "up", topology, "--name", name, "--json"], capture_output=True, text=True, cwd=ROOT)
    wall_up = time.monotonic() - t0
    if up.returncode != 0:
        raise SystemExit(f"bench: up failed:\n{up.stderr}")
    milestones = json.loads(up.stdout)["timings"]
    rss = lab_rss_kib(name)
    procs = len(marked_pids(name))
    t1 = time.monotonic()
    down = subprocess.run([*BGPLAB, "down", name], capture_output=True, text=True, cwd=ROOT)
    wall_down = time.monotonic() - t1
    if down.returncode != 0:
        raise SystemExit(f"bench: down failed:\n{down.stderr}")
    return {
        "up_to_converged_s": round(wall_up, 3),
        "namespaces_and_links_s": milestones["network"],
        "sessions_established_s": milestones["sessions_established"],
        "observer_has_all_prefixes_s": milestones["observer_full"],
        "every_kernel_table_s": milestones["kernel_converged"],
        "down_s": round(wall_down, 3),
        "resident_mib": round(rss / 1024, 1),
        "processes": procs,
        "milestones": milestones,
    }


FIGURES = [
    ("namespaces_and_links_s", "namespaces and links created", "s"),
    ("sessions_established_s", "all sessions Established", "s"),
    ("observer_has_all_prefixes_s", "6,500 prefixes at the observer", "s"),
    ("every_kernel_table_s", "6,500 in every router's kernel table", "s"),
    ("up_to_converged_s", "`bgplab up` wall time, to converged", "s"),
    ("down_s", "`bgplab down` wall time", "s"),
    ("resident_mib", "resident memory of the lab's processes", "MiB"),
]


def main() -> None:
    args = common.arguments(__doc__, "bench-results/lab.json")
    runs = common.repeat(args.runs, "bench", lambda name: one_run(args.topology, name), lambda r: (
        f"up {r['up_to_converged_s']:.2f} s, down {r['down_s']:.2f} s, {r['resident_mib']:.0f} MiB"))
    medians = common.medians(runs, [k for k, _, _ in FIGURES])
    result = {
        "benchmark": "lab lifecycle",
        "topology": args.topology,
        "runs": args.runs,
        "median": medians,
        "all_runs": runs,
        "frr_version": frr_version(),
        "exabgp_version": _exabgp_version(),
        "machine": {"kernel": platform.release(), "python": platform.python_version()},
    }
    out = common.write(args.out, result)
    print(f"\nreference lab ({args.topology}), median of {args.runs} runs, {os.cpu_count()} CPUs, FRR {result['frr_version']}:")
    for key, label, unit in FIGURES:
        print(f"  {label:<42} {medians[key]:>8.2f} {unit}")
    print(f"written to {out}")


def _exabgp_version() -> str:
    from importlib.metadata import version

    return version("exabgp")


if __name__ == "__main__":
    main()

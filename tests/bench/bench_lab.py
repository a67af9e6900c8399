"""Benchmark: the reference lab from `bgplab up` to converged, `bgplab down`, memory, per runtime.

Prints medians of several runs and writes every run as JSON. Run with `make bench`.
Targets (issue 2): up to converged <= 10 s on 2 cores; down <= 3 s; lab <= 1 GiB resident.
Targets (issue 6, `--runtimes netns,docker`, runs alternating in the same run): docker's
up to converged <= 2x the namespaces'; the per-node memory overhead of a container over a
namespace, reported (its containerd shim, docker-init and log follower).
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

from lab.routers.frr.daemons import frr_version
from lab.procs import lab_rss_kib
from lab.procs import marked_pids, rss_kib
from tests.bench import common

ROOT = Path(__file__).resolve().parents[2]
BGPLAB = [sys.executable, "-m", "controller.cli"]


def container_overhead_kib(lab: str) -> tuple[int, int]:
    """RSS of what each container adds outside the lab's marked processes: its containerd shim.

    (docker-init and the log follower inside carry the lab's mark, so lab_rss_kib counts them.)
    Returns (total KiB, containers).
    """
    from lab.runtime.docker import lab_containers

    total, n = 0, 0
    for c in lab_containers(lab):
        init = c["pid"]
        if not init:
            continue
        stat = Path(f"/proc/{init}/stat").read_text()
        shim = int(stat.rsplit(")", 1)[1].split()[1])  # field 4: the parent
        total += rss_kib(shim) or 0  # a shim gone meanwhile holds nothing
        n += 1
    return total, n


def engine_rss_kib() -> int:
    """dockerd and containerd, found by the engine's own PID files (shared by every lab)."""
    total = 0
    for pidfile in ("/var/run/docker.pid", "/run/docker/containerd/containerd.pid"):
        try:
            total += rss_kib(int(Path(pidfile).read_text().strip())) or 0
        except (OSError, ValueError):
            pass
    return total


def one_run(topology: str, name: str, runtime: str) -> dict:
    t0 = time.monotonic()
    up = subprocess.run([*BGPLAB, "up", topology, "--name", name, "--json", "--runtime", runtime],
                        capture_output=True, text=True, cwd=ROOT)
    wall_up = time.monotonic() - t0
    if up.returncode != 0:
        raise SystemExit(f"bench: up failed:\n{up.stderr}")
    milestones = json.loads(up.stdout)["timings"]
    rss = lab_rss_kib(name)
    procs = len(marked_pids(name))
    shims, containers = container_overhead_kib(name) if runtime == "docker" else (0, 0)
    engine = engine_rss_kib() if runtime == "docker" else 0
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
        "resident_with_shims_mib": round((rss + shims) / 1024, 1),
        "shims_mib": round(shims / 1024, 1),
        "engine_mib": round(engine / 1024, 1),
        "containers": containers,
        "processes": procs,
        "milestones": milestones,
    }


FIGURES = [
    ("namespaces_and_links_s", "nodes (namespaces or containers) and links", "s"),
    ("sessions_established_s", "all sessions Established", "s"),
    ("observer_has_all_prefixes_s", "6,500 prefixes at the observer", "s"),
    ("every_kernel_table_s", "6,500 in every router's kernel table", "s"),
    ("up_to_converged_s", "`bgplab up` wall time, to converged", "s"),
    ("down_s", "`bgplab down` wall time", "s"),
    ("resident_mib", "resident memory of the lab's processes", "MiB"),
    ("resident_with_shims_mib", "  the same with the containers' shims", "MiB"),
]


# Issue 11's targets for the reference lab on a 2-core machine.
TARGETS = {"up_to_converged_s": 5.0, "resident_mib": 1024.0}


def main() -> None:
    args = common.arguments(__doc__, "bench-results/lab.json", runtimes=True)
    runtimes = [r.strip() for r in args.runtimes.split(",") if r.strip()]
    per: dict[str, list[dict]] = {rt: [] for rt in runtimes}

    def both(name: str) -> dict:
        # Alternating runtimes within each run: both see the same machine at the same time.
        out = {}
        for rt in runtimes:
            r = one_run(args.topology, f"{name}{rt[0]}", rt)
            per[rt].append(r)
            out[rt] = r
        return out

    common.repeat(args.runs, "bench", both, lambda r: "; ".join(
        f"{rt}: up {x['up_to_converged_s']:.2f} s, down {x['down_s']:.2f} s, {x['resident_with_shims_mib']:.0f} MiB"
        for rt, x in r.items()))
    keys = [k for k, _, _ in FIGURES] + ["shims_mib", "engine_mib", "containers"]
    medians = {rt: common.medians(per[rt], keys) for rt in runtimes}
    result = {
        "benchmark": "lab lifecycle",
        "topology": args.topology,
        "runs": args.runs,
        "runtimes": runtimes,
        "median": medians[runtimes[0]],  # the first runtime's, where earlier results were kept
        "median_by_runtime": medians,
        "all_runs": per,
        "frr_version": frr_version(),
        "exabgp_version": _exabgp_version(),
        "machine": {"kernel": platform.release(), "python": platform.python_version()},
    }
    if "netns" in medians and "docker" in medians:
        n, d = medians["netns"], medians["docker"]
        nodes = d["containers"] or 1
        result["docker_vs_netns"] = {
            "up_to_converged_ratio": round(d["up_to_converged_s"] / n["up_to_converged_s"], 2),
            "down_ratio": round(d["down_s"] / n["down_s"], 2),
            "memory_overhead_per_node_mib": round((d["resident_with_shims_mib"] - n["resident_mib"]) / nodes, 1),
            "nodes": nodes,
            "engine_mib": d["engine_mib"],
        }
    out = common.write(args.out, result)
    print(f"\nreference lab ({args.topology}), median of {args.runs} runs, {os.cpu_count()} CPUs, FRR {result['frr_version']}:")
    print(f"  {'':<42} " + " ".join(f"{rt:>9}" for rt in runtimes))
    for key, label, unit in FIGURES:
        target = f"   target <= {TARGETS[key]:g} {unit}" if key in TARGETS else ""
        print(f"  {label:<42} " + " ".join(f"{medians[rt][key]:>9.2f}" for rt in runtimes) + f" {unit}{target}")
    if "docker_vs_netns" in result:
        c = result["docker_vs_netns"]
        print(f"  docker / netns, up to converged: {c['up_to_converged_ratio']:.2f}x (target <= 2x); "
              f"down {c['down_ratio']:.2f}x")
        print(f"  memory overhead of a container over a namespace: {c['memory_overhead_per_node_mib']:.1f} MiB per node "
              f"({c['nodes']} nodes); the engine itself (dockerd + containerd) {c['engine_mib']:.0f} MiB, shared")
    print(f"written to {out}")


def _exabgp_version() -> str:
    from importlib.metadata import version

    return version("exabgp")


if __name__ == "__main__":
    main()

"""Benchmark: the reference lab on each router implementation (issue 27). Run with `make bench`.

Per implementation (every router but the collector run by it) and run:
  1. `bgplab up --no-controller`: from the command to converged (every session, every table,
     every kernel where the implementation has one), and the resident memory of each
     router's daemons once up (the lab's own processes: /proc, by the lab's mark);
  2. a lab brought up with everything withdrawn: one API request advertises the 6,500, until
     every router holds them: its kernel where the implementation installs routes, its BGP
     table where it is RIB-only (GoBGP, OpenBGPD here: said in the output, never mixed up);
  3. one API request withdraws 1,100 BYOIP prefixes, until gone everywhere, the same way.
Prints medians of the runs beside the FRR run of the same bench and writes every run as JSON.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from controller.client import ApiClient
from lab.kernel import count_lab_routes_fast
from lab.kinds import router_of
from lab.routers import ROUTERS, get_router
from lab.running import RunningLab
from lab.wait import wait_until
from tests.bench import common

ROOT = Path(__file__).resolve().parents[2]
BGPLAB = [sys.executable, "-m", "controller.cli"]
TOPOLOGY = "topologies/byoip-incident.yaml"


def _up(name: str, implementation: str, *extra: str) -> dict:
    t0 = time.monotonic()
    p = subprocess.run([*BGPLAB, "up", TOPOLOGY, "--name", name, "--implementation", implementation, "--json", *extra],
                       capture_output=True, text=True, cwd=ROOT)
    if p.returncode != 0:
        raise SystemExit(f"bench: up on {implementation} failed:\n{p.stderr[-2000:]}")
    return {"wall_s": round(time.monotonic() - t0, 3), **json.loads(p.stdout)}


def _down(name: str) -> None:
    subprocess.run([*BGPLAB, "down", name], capture_output=True, cwd=ROOT)


def _held(running: RunningLab) -> dict[str, int]:
    """Per router but the collector: pool prefixes in its kernel, or in its BGP table where it
    installs none (RIB-only), less what it originates itself."""
    plan, out = running.plan, {}
    for node in plan.routers():
        if node.role.value == "collector":
            continue
        if node.installs_routes:
            c = count_lab_routes_fast(node.namespace, plan.pool_keys)
        else:
            c = router_of(node).received(running.node_dir(node.name))
            c = {f: c[f] - sum(1 for n in node.networks if (n.version == 4) == (f == "ipv4")) for f in c}
        out[node.name] = c["ipv4"] + c["ipv6"]
    return out


def _wait(running: RunningLab, want: int, t0: float, what: str) -> float:
    def done() -> tuple[bool, str]:
        held = _held(running)
        return all(v == want for v in held.values()), str(held)

    wait_until(done, timeout=300, what=what, interval=0.05)
    return time.monotonic() - t0


def one_run(implementation: str, name: str) -> dict:
    result: dict = {"implementation": implementation}
    up = _up(name, implementation, "--no-controller")
    try:
        result["up_s"] = up["wall_s"]
        result["up_timings"] = up["timings"]
        result["versions"] = up["router_versions"]
        running = RunningLab.open(name)
        rss = {n.name: n.rss_kib for n in running.status(kernel=False) if n.version and n.role != "collector"}
        result["rss_mib_per_router"] = round(statistics.median(rss.values()) / 1024, 1)
        result["rss_mib_routers"] = round(sum(rss.values()) / 1024, 1)
    finally:
        _down(name)
    _up(name, implementation, "--withdrawn")
    try:
        running = RunningLab.open(name)
        total = len(running.plan.prefixes)
        with ApiClient(name) as api:
            t0 = time.monotonic()
            body = api.set_advertised(True, all=True, advertised=False)
            assert body["result"]["prefixes"] == total
            result["api_6500_s"] = round(_wait(running, total, t0, "the 6,500 everywhere"), 3)
            t0 = time.monotonic()
            body = api.set_advertised(False, byoip=True, count=1100)
            assert body["result"]["prefixes"] == 1100
            result["api_withdraw_1100_s"] = round(_wait(running, total - 1100, t0, "the 1,100 gone everywhere"), 3)
        result["finish_line"] = "kernel" if get_router(implementation).kernel_proto is not None else "BGP table (RIB-only)"
    finally:
        _down(name)
    return result


def main() -> None:
    args = common.arguments(__doc__, "bench-results/implementations.json", extra=lambda ap: ap.add_argument(
        "--implementations", default=",".join(ROUTERS), help="comma-separated (default: every one)"))
    impls = args.implementations.split(",")
    results = {}
    for impl in impls:
        runs = common.repeat(args.runs, f"ib{impl[:2]}", lambda name, impl=impl: one_run(impl, name), lambda r: (
            f"{r['implementation']}: up {r['up_s']:.2f} s, {r['rss_mib_per_router']} MiB a router, "
            f"6,500 via the API {r['api_6500_s']:.2f} s, 1,100 withdrawn {r['api_withdraw_1100_s']:.2f} s"))
        results[impl] = {"median": common.medians(runs, ["up_s", "rss_mib_per_router", "rss_mib_routers", "api_6500_s",
                                                          "api_withdraw_1100_s"]),
                         "finish_line": runs[0]["finish_line"], "versions": runs[0]["versions"], "all_runs": runs}
    out = common.write(args.out, {"benchmark": "implementations", "topology": TOPOLOGY, "runs": args.runs,
                                  "results": results})
    print(f"\nthe reference lab per implementation, median of {args.runs} runs, {os.cpu_count()} CPUs "
          "(measured: wall clock of the command or request to the finish line; memory from /proc):")
    print(f"  {'implementation':<16} {'up (s)':>7} {'MiB/router':>10} {'6,500 API (s)':>14} {'1,100 gone (s)':>15}  finish line")
    for impl, r in results.items():
        m = r["median"]
        label = f"{get_router(impl).label} {r['versions'].get(impl, '?')}"
        print(f"  {label:<16} {m['up_s']:>7.2f} {m['rss_mib_per_router']:>10.1f} {m['api_6500_s']:>14.2f} "
              f"{m['api_withdraw_1100_s']:>15.2f}  {r['finish_line']}")
    print("  anchors: one full table costs FRR's zebra and bgpd 2 GB or more against ~380 MB for BIRD (FRR issue 7805); "
          "memory at idle: bgpd ~16-28 MB, zebra ~11 MB, BIRD ~5 MB (DESIGN.md)")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()

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
from lab.procs import rss_kib
from lab.routers import ROUTERS, get_router
from lab.running import RunningLab
from lab.errors import WaitTimeout
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


def _tree(pid: int) -> list[int]:
    """The process and its descendants (/proc/<pid>/task/*/children)."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        for task in Path(f"/proc/{p}/task").glob("*"):
            try:
                todo += [int(c) for c in (task / "children").read_text().split()]
            except OSError:
                pass
    return out


def _down(name: str) -> None:
    subprocess.run([*BGPLAB, "down", name], capture_output=True, cwd=ROOT)


def _held(running: RunningLab) -> dict[str, int]:
    """Per router but the collector: pool prefixes in its kernel, or in its BGP table where it
    installs none (RIB-only): its table's prefixes less those that are no pool's (eyeballs' subnets,
    which the plan says it holds whatever is announced)."""
    plan, out = running.plan, {}
    for node in plan.routers():
        if node.role.value == "collector":
            continue
        if node.installs_routes:
            c = count_lab_routes_fast(node.namespace, plan.pool_keys)
        else:
            c = router_of(node).received(running.node_dir(node.name))
            pools = {f: len(s) for f, s in plan.expected[node.name].items()}
            c = {f: c[f] - (plan.expected_rib[node.name][f] - pools[f]) for f in c}
        out[node.name] = c["ipv4"] + c["ipv6"]
    return out


def _wait(running: RunningLab, want: int, t0: float, what: str, timeout: float = 120.0) -> tuple[float | None, dict]:
    """Seconds until every router holds ``want``; None when some never did within ``timeout``
    (GoBGP 3.10 keeps withdrawn routes for good: README), with what each held then."""
    seen: dict = {}

    def done() -> tuple[bool, str]:
        seen.update(_held(running))
        return all(v == want for v in seen.values()), str(seen)

    try:
        wait_until(done, timeout=timeout, what=what, interval=0.05)
    except WaitTimeout:
        return None, {r: v for r, v in seen.items() if v != want}
    return time.monotonic() - t0, {}


def one_run(implementation: str, name: str) -> dict:
    result: dict = {"implementation": implementation}
    up = _up(name, implementation, "--no-controller")
    try:
        result["up_s"] = up["wall_s"]
        result["up_timings"] = up["timings"]
        result["versions"] = up["router_versions"]
        running = RunningLab.open(name)
        # each router's daemons and what they forked (OpenBGPD's session engine and RDE hold its RIB)
        daemons = running.state.daemons()
        rss = {n.name: sum(rss_kib(p) or 0 for pid in daemons.get(n.name, {}).values() for p in _tree(pid))
               for n in running.plan.routers() if n.role.value != "collector"}
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
            s, short = _wait(running, total, t0, "the 6,500 everywhere")
            result["api_6500_s"], result["api_6500_short"] = s and round(s, 3), short
            t0 = time.monotonic()
            body = api.set_advertised(False, byoip=True, count=1100)
            assert body["result"]["prefixes"] == 1100
            s, stale = _wait(running, total - 1100, t0, "the 1,100 gone everywhere")
            result["api_withdraw_1100_s"], result["api_withdraw_1100_stale"] = s and round(s, 3), stale
        result["finish_line"] = "kernel" if get_router(implementation).kernel_proto is not None else "BGP table (RIB-only)"
    finally:
        _down(name)
    return result


def _s(v: float | None) -> str:
    return "never" if v is None else f"{v:.2f} s"


def main() -> None:
    args = common.arguments(__doc__, "bench-results/implementations.json", extra=lambda ap: ap.add_argument(
        "--implementations", default=",".join(ROUTERS), help="comma-separated (default: every one)"))
    impls = args.implementations.split(",")
    results = {}
    for impl in impls:
        runs = common.repeat(args.runs, f"ib{impl[:2]}", lambda name, impl=impl: one_run(impl, name), lambda r: (
            f"{r['implementation']}: up {r['up_s']:.2f} s, {r['rss_mib_per_router']} MiB a router, "
            f"6,500 via the API {_s(r['api_6500_s'])}, 1,100 withdrawn {_s(r['api_withdraw_1100_s'])}"
            + (f" (still held 120 s after: {r['api_withdraw_1100_stale']})" if r["api_withdraw_1100_stale"] else "")))
        keys = ["up_s", "rss_mib_per_router", "rss_mib_routers", "api_6500_s", "api_withdraw_1100_s"]
        results[impl] = {"median": {**{k: None for k in keys},
                                    **common.medians(runs, [k for k in keys if all(r[k] is not None for r in runs)])},
                         "finish_line": runs[0]["finish_line"], "versions": runs[0]["versions"], "all_runs": runs}
    out = common.write(args.out, {"benchmark": "implementations", "topology": TOPOLOGY, "runs": args.runs,
                                  "results": results})
    print(f"\nthe reference lab per implementation, median of {args.runs} runs, {os.cpu_count()} CPUs "
          "(measured: wall clock of the command or request to the finish line; memory from /proc):")
    print(f"  {'implementation':<16} {'up (s)':>7} {'MiB/router':>10} {'6,500 API (s)':>14} {'1,100 gone (s)':>15}  finish line")
    for impl, r in results.items():
        m = r["median"]
        label = f"{get_router(impl).label} {r['versions'].get(impl, '?')}"
        print(f"  {label:<16} {m['up_s']:>7.2f} {m['rss_mib_per_router']:>10.1f} {_s(m['api_6500_s']):>14} "
              f"{_s(m['api_withdraw_1100_s']):>15}  {r['finish_line']}")
    print("  anchors: one full table costs FRR's zebra and bgpd 2 GB or more against ~380 MB for BIRD (FRR issue 7805); "
          "memory at idle: bgpd ~16-28 MB, zebra ~11 MB, BIRD ~5 MB (DESIGN.md)")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()

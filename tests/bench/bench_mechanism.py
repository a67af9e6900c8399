"""The replay's mechanism alone (no BGP): every inventory seed 1-5 at every speed 30-240,
each headline figure beside the incident's and the bound it must stay in, the time one
run takes, and the sensitivity table (every knob moved by 10% and 50%, down and up). Controller figures: what the mechanism did through
the real API; the network's side is the live replay's (make drill-internet, the CI test)."""

from __future__ import annotations

import json
import statistics
import time
from pathlib import Path

from controller.drills.simulation import simulate_many
from controller.drills.sensitivity import lines, sensitivity
from controller.drills.model import load_drill
from tests.bench.common import ROOT, arguments

# The incident's figures (postmortem) and issue 13's bounds.
TARGETS = {"withdrawn": (1100, 0.05), "restored_by_revert": (800, 0.10), "restored_by_config_push": (300, 0.10)}


def main() -> None:
    args = arguments(__doc__, "bench-results/mechanism.json",
                     extra=lambda ap: ap.add_argument("--drill", default="drills/byoip-2026-02-20.yaml"))
    drill, topology = load_drill(ROOT / args.drill)
    jobs = [(drill.model_copy(update={"edge": drill.edge.model_copy(update={"inventory_seed": seed})}), topology, speed)
            for seed in range(1, 6) for speed in (30, 60, 120, 240)]
    t = time.monotonic()
    results = simulate_many(jobs)
    per_run = (time.monotonic() - t) / len(jobs)
    print(f"{'figure':<26} {'min':>6} {'median':>7} {'max':>6}   target (bound)        all within")
    summary = {}
    for name, (target, tol) in TARGETS.items():
        values = [r[name] for r in results]
        within = all(abs(v - target) <= target * tol for v in values)
        summary[name] = {"min": min(values), "median": statistics.median(values), "max": max(values),
                         "target": target, "bound": tol, "within": within}
        print(f"{name:<26} {min(values):>6} {statistics.median(values):>7g} {max(values):>6}   "
              f"{target} (+/-{tol:.0%}){'':<8} {'yes' if within else 'NO'}")
    share = [r["affected_customer_share"] for r in results]
    print(f"affected customers share   {min(share):.2f}-{max(share):.2f}; one run: {per_run:.1f} s (2 processes)")
    t = time.monotonic()
    table = sensitivity(drill, topology)
    for line in lines(table):
        print(line)
    print(f"sensitivity: {len(table['knobs'])} knobs, {time.monotonic() - t:.0f} s for {len(table['rows']) + 1} runs")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"runs": results, "summary": summary, "seconds_per_run": round(per_run, 2),
                               "sensitivity": table}, indent=1))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()

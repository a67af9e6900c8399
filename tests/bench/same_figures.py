"""Same figures, same seed: every shipped replay's mechanism (no BGP), before and after a change.

    python -m tests.bench.same_figures --out DIR               # record (a checkout before the change)
    python -m tests.bench.same_figures --against DIR           # compare (after the change)

The mechanism is deterministic for a seed (the real API over a seeded inventory, on a simulated
clock), so its output must match to the last field; so is the analysis of a recorded run
(tests/fixtures/run-mini, a mini replay the lab recorded: every figure, network ones included).
A difference is printed with its path and the exit code is 1. A new live run's network figures
vary from run to run and are held by their drills' ranges in the live tests, not here.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

from controller.drills.simulation import simulate_many
from controller.drills import mechanism_applies
from controller.drills.analysis import analyse
from controller.drills.model import load_drill
from controller.drills.rundir import RunDir

ROOT = Path(__file__).resolve().parents[2]
SEEDS = (1, 7)
RECORDED = ROOT / "tests" / "fixtures" / "run-mini"


def run(drill_file: Path) -> dict[str, Any]:
    drill, topology = load_drill(drill_file)
    jobs = [(drill.model_copy(update={"edge": drill.edge.model_copy(update={"inventory_seed": s})}), topology, drill.speed)
            for s in SEEDS]
    return {"results": simulate_many(jobs)}


def recorded_figures() -> dict[str, Any]:
    """Every figure the analysis makes of the recorded run (analysed in a copy: it writes there)."""
    with tempfile.TemporaryDirectory() as tmp:
        rd = Path(tmp) / "run"
        shutil.copytree(RECORDED, rd)
        return json.loads(json.dumps(analyse(RunDir(rd)).figures, default=str, sort_keys=True))


def differences(a: Any, b: Any, path: str = "") -> list[str]:
    if type(a) is not type(b):
        return [f"{path}: {a!r} -> {b!r}"]
    if isinstance(a, dict):
        return [d for k in sorted(set(a) | set(b), key=str) for d in differences(a.get(k), b.get(k), f"{path}.{k}")]
    if isinstance(a, list):
        out = [f"{path}: {len(a)} items -> {len(b)}"] if len(a) != len(b) else []
        return out + [d for i, (x, y) in enumerate(zip(a, b)) for d in differences(x, y, f"{path}[{i}]")]
    return [] if a == b else [f"{path}: {a!r} -> {b!r}"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    g = ap.add_mutually_exclusive_group(required=True)
    g.add_argument("--out", type=Path, help="write each drill's mechanism output here")
    g.add_argument("--against", type=Path, help="compare with the output recorded here")
    args = ap.parse_args()
    drills = [p for p in sorted((ROOT / "drills").glob("*.yaml")) if mechanism_applies(load_drill(p)[0])]
    outputs = [(f"{p.stem}.json", lambda p=p: run(p)) for p in drills]
    outputs.append(("run-mini.figures.json", recorded_figures))
    bad = 0
    for name, make in outputs:
        doc = make()
        if args.out:
            args.out.mkdir(parents=True, exist_ok=True)
            (args.out / name).write_text(json.dumps(doc, indent=1))
            print(f"{name}: recorded")
            continue
        before = json.loads((args.against / name).read_text())
        diff = differences(before, doc)
        bad += bool(diff)
        print(f"{name}: {'same' if not diff else f'{len(diff)} differences'}")
        for d in diff[:20]:
            print(f"  {d}")
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()

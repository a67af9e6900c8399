"""Benchmark: does a dashboard open during a drill change the drill's figures? Run with
`make bench-dashboard` (part of `make bench`).

The same drill (drills/withdraw-all-byoip.yaml: 4,305 BYOIP prefixes withdrawn and restored,
on its own fresh reference lab each run) runs ``--runs`` times with no dashboard, and as many
with one dashboard client reading the live stream (/v1/lab/stream, a frame a second, its
sessions polled every 5 s) from the moment the lab's API answers to the drill's end. Prints
the drill's network figures side by side (medians), and the dashboard's own cost: the time
its session poller spent in vtysh, and the frames the client read.
"""

from __future__ import annotations

import json
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx

from controller.client import ApiClient
from controller.drills.expect import failed
from controller.drills.rundir import RunDir, read_jsonl
from tests.bench import common

ROOT = Path(__file__).resolve().parents[2]
DRILL = ROOT / "drills" / "withdraw-all-byoip.yaml"
FIGURES = [("convergence_s", "p90", "withdrawal convergence p90 (lab s)"),
           ("restore_convergence_s", "p90", "restore convergence p90 (lab s)"),
           ("observer_min", None, "observer's fewest prefixes"),
           ("probe_failures", None, "probe results not ok"),
           ("probe_success_end", None, "ok share at the end")]


class Client(threading.Thread):
    """One dashboard: reads the stream as a browser's EventSource would."""

    def __init__(self, url: str, token: str):
        super().__init__(daemon=True)
        self.url, self.token = url, token
        self.frames = 0
        self.last: dict[str, Any] = {}
        self.stopping = threading.Event()
        self.error: BaseException | None = None
        self.closed_at: float | None = None  # the server closed the stream (the lab going down)

    def run(self) -> None:
        try:
            with httpx.stream("GET", f"{self.url}/v1/lab/stream", params={"token": self.token}, timeout=None) as r:
                for line in r.iter_lines():
                    if self.stopping.is_set():
                        return
                    if line.startswith("data: ") and '"cost"' in line:
                        self.frames += 1
                        self.last = json.loads(line[6:])
        except httpx.RemoteProtocolError:
            # the lab going down at the drill's end, with the stream open, as a browser sees it;
            # one() checks it came after the drill's end, not in the middle of it
            self.closed_at = time.time()
        except BaseException as e:  # noqa: BLE001 - raised by the bench once the drill is over
            self.error = e


def one(lab: str, watched: bool) -> dict[str, Any]:
    from controller.drills import run_drill

    clients: list[Client] = []

    def ready(api: ApiClient, name: str) -> None:
        if watched:
            token = api.call("POST", "/v1/lab/tokens", json={"role": "read-only", "name": "bench-dashboard"})["result"]["token"]
            c = Client(api.url, token)
            c.start()
            clients.append(c)

    with tempfile.TemporaryDirectory() as d:
        r = run_drill(DRILL, runs_dir=Path(d), lab=lab, on_ready=ready)
        ended = next(e["t"] for e in read_jsonl(RunDir(r.run_dir).events) if e["kind"] == "end")
    for c in clients:
        c.stopping.set()
        if c.error is not None:
            raise RuntimeError(f"the dashboard client failed during the drill: {c.error!r}") from c.error
        if c.closed_at is not None and c.closed_at < ended:
            raise RuntimeError(f"the dashboard's stream was cut {ended - c.closed_at:.1f} s before the drill's end")
    F = r.metrics["figures"]
    out: dict[str, Any] = {"watched": watched, "checks_ok": not failed(r.checks)}
    for name, key, _ in FIGURES:
        v = F[name]["value"]
        out[name] = v.get(key) if key else v
    if clients:
        cost = clients[0].last.get("cost", {})
        out["frames"] = clients[0].frames
        out["session_poll_s"] = cost.get("session_poll_s")
        out["session_polls"] = cost.get("session_polls")
    return out


def main() -> None:
    args = common.arguments(__doc__, "bench-results/dashboard.json")
    runs: list[dict[str, Any]] = []
    for i in range(args.runs):  # alternated, so a drift of the machine falls on both
        for watched in (False, True):
            r = one(f"bd{i}{int(watched)}", watched)
            runs.append(r)
            print(f"run {i + 1}/{args.runs} {'with' if watched else 'without'} a dashboard: "
                  + ", ".join(f"{k}={r[k]}" for k, _, _ in FIGURES), file=sys.stderr)
    rows = []
    for name, _, label in FIGURES:
        a = [r[name] for r in runs if not r["watched"] and r[name] is not None]
        b = [r[name] for r in runs if r["watched"] and r[name] is not None]
        rows.append({"figure": name, "label": label, "without": statistics.median(a) if a else None,
                     "with": statistics.median(b) if b else None})
    print(f"{'figure':<36} {'no dashboard':>14} {'dashboard open':>15}   (medians of {args.runs}; network figures)")
    for row in rows:
        print(f"{row['label']:<36} {row['without']!s:>14} {row['with']!s:>15}")
    watched = [r for r in runs if r["watched"]]
    poll = statistics.median(r["session_poll_s"] or 0 for r in watched)
    frames = statistics.median(r["frames"] for r in watched)
    print(f"the dashboard's own cost: {frames:g} frames read, session polling {poll:g} s of vtysh over the drill "
          "(median per run)")
    path = common.write(args.out, {"drill": DRILL.name, "runs": runs, "rows": rows,
                                   "dashboard_cost": {"frames": frames, "session_poll_s": poll}})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()

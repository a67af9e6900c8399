"""Drill runs side by side: "what each defence would have changed on 2026-02-20".

Reads each run directory's metrics.json (what the analysis measured) and sets the same
figures in one table, each row saying where its figure comes from. Nothing is recomputed
here: a run that lacks a figure shows "-".
"""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any, Callable

from controller.drills.rundir import RunDir, RunDirError
from controller.drills.stats import Figures
from controller.products import PRODUCTS
from lab.routers import routers_text

# (row label, source, how to read it from a run's figures)
Row = tuple[str, str, Callable[[Figures], Any]]


def _v(name: str, key: str | None = None) -> Callable[[Figures], Any]:
    def read(F: Figures) -> Any:
        v = getattr(F, name).value
        return v.get(key) if key and isinstance(v, dict) else v
    return read


def _product(product: str) -> Callable[[Figures], Any]:
    def read(F: Figures) -> Any:
        p = (F.products.value or {}).get(product)
        return None if p is None else p.get("failed_target_seconds")
    return read


def _held(F: Figures) -> Any:
    held = F.held_by_guardrail.value or {}
    return ", ".join(f"{g} {d['changes']} ({d['withdraw']} prefixes)" for g, d in sorted(held.items())) or 0


def _guards(F: Figures) -> Any:
    g = F.guardrails.value or {}
    on = [k for k, v in g.items() if v]
    return ", ".join(on) or "none"


ROWS: list[Row] = [
    ("guardrails", "input", _guards),
    ("prefixes withdrawn by the task", "controller", _v("withdrawn_by_task")),
    ("withdrawals seen in the network", "network", _v("withdrawn_on_wire")),
    ("fewest prefixes at the observer", "network", _v("observer_min")),
    ("customers affected", "controller", _v("affected_customers")),
    ("bindings removed", "controller", _v("bindings_removed")),
    ("prefixes left with no binding (peak)", "controller", _v("impact_all_bindings")),
    ("changes held by a guardrail", "controller", _held),
    ("breaker tripped (incident s)", "controller", _v("breaker_tripped_incident_s")),
    ("stages promoted / rolled back", "controller",
     lambda F: None if not (F.stages.value or {}).get("started") else
     f"{F.stages.value['promoted']} / {F.stages.value['rolled_back']}"),
    ("staged prefixes reached through the other PoP (ok share)", "network", _v("staged_reachable", "ok_share")),
    *((f"probe failures, {p.label}" + (" (target-seconds)" if i == 0 else ""), "network", _product(p.name))
      for i, p in enumerate(q for q in PRODUCTS if q.failed_2026_02_20)),
    ("403 answers at the edge", "network", lambda F: sum(d.get("n", 0) for d in (F.edge_403.value or {}).values())),
    # where implementations part (no MRAI, their own tie-breaks): how hard the network hunted
    ("paths explored per withdrawn prefix, median at each transit", "network",
     lambda F: ", ".join(f"{vp} {d.get('median')}" for vp, d in sorted((F.path_hunting.value or {}).items())) or None),
    ("UPDATEs per withdrawn prefix at the collector, median", "network", _v("updates_per_prefix", "median")),
    ("convergence after a withdrawal, p90 (s)", "network", _v("convergence_s", "p90")),
    ("time to full recovery (incident s)", "network", _v("duration_incident_s")),
    ("snapshot restore to every table and probe (lab s)", "network", _v("snapshot_recovery_s")),
]


def compare(run_dirs: list[Path]) -> dict[str, Any]:
    """The table: one column per run (its drill's name), one row per figure."""
    columns, values = [], []
    for d in run_dirs:
        rd = RunDir(Path(d))
        try:
            metrics = json.loads(rd.metrics.read_text())
            drill = json.loads(rd.drill.read_text())
        except (OSError, ValueError) as e:
            raise RunDirError(f"{d}: not a reported drill run ({e}); run `bgplab report {d}` first") from None
        F = Figures(metrics["figures"])
        run = metrics.get("run", {})
        try:  # the routers that ran it (input: what `up` read from each node's binary), "FRR 8.4.4"
            versions = json.loads((Path(d) / "lab.json").read_text())["lab"]["router_versions"]
        except (OSError, ValueError, KeyError):
            versions = None
        columns.append({"drill": drill["name"], "run": str(d), "speed": run.get("speed"),
                        "outcome": run.get("outcome"), "runtime": run.get("runtime"),
                        "routers": routers_text(versions) if versions else None})
        values.append([read(F) for _, _, read in ROWS])
    rows = [{"figure": label, "source": source, "values": [v[i] for v in values]} for i, (label, source, _) in enumerate(ROWS)]
    return {"columns": columns, "rows": rows}


def _cell(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:g}"
    return str(v)


def markdown(t: dict[str, Any]) -> str:
    head = "| figure | source | " + " | ".join(c["drill"].replace("byoip-2026-02-20", "replay")
                                               + (f" ({c['routers']})" if c.get("routers") else "") for c in t["columns"]) + " |"
    lines = [head, "|" + "---|" * (len(t["columns"]) + 2)]
    for r in t["rows"]:
        lines.append(f"| {r['figure']} | {r['source']} | " + " | ".join(_cell(v) for v in r["values"]) + " |")
    return "\n".join(lines)


def write_html(t: dict[str, Any], out: Path) -> Path:
    cols = "".join(f"<th>{html.escape(c['drill'])}<br><small>speed {c['speed']}, {html.escape(str(c['runtime']))}"
                   f"{', ' + html.escape(c['routers']) if c.get('routers') else ''}</small></th>" for c in t["columns"])
    body = "".join(f"<tr><td>{html.escape(r['figure'])}</td><td><i>{r['source']}</i></td>"
                   + "".join(f"<td>{html.escape(_cell(v))}</td>" for v in r["values"]) + "</tr>" for r in t["rows"])
    out.write_text(f"""<!doctype html><meta charset="utf-8"><title>What each defence would have changed on 2026-02-20</title>
<style>body{{font-family:sans-serif;margin:2em}}td,th{{border:1px solid #ccc;padding:4px 8px;text-align:right}}
td:first-child{{text-align:left}}table{{border-collapse:collapse}}</style>
<h1>What each defence would have changed on 2026-02-20</h1>
<p>Each column is a drill run on real BGP sessions: the unguarded replay and its guarded variants, the same buggy
handler and the same task. Each row says where its figure comes from: <i>input</i> (the drill file),
<i>controller</i> (what the controller did through the API), <i>network</i> (MRT at the collector, the
speakers' captures, the end hosts' probes, kernel tables).</p>
<table><tr><th>figure</th><th>source</th>{cols}</tr>{body}</table>
<p>Runs: {"; ".join(html.escape(c['run']) for c in t['columns'])}</p>
""")
    return out

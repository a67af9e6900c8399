"""The replay's sensitivity: every knob of the drill file, of the seeded inventory and of the
mechanism's own constants, moved alone by +/-10% and +/-50%, through the mechanism alone
(controller.drills.simulation.simulate: the real API, no BGP); each figure's change and its
elasticity (the figure's relative change over the knob's).

The knobs are found, not listed: every number and duration in the drill (its tasks, edge,
steps, guardrails, probes and speed), the inventory's shape (controller.inventory.
InventoryShape) and the mechanism's constants (controller.drills.simulation.Constants). A knob
added to a drill file is in the table without a line here. What is not moved is said with
its reason (``NOT_MOVED``), so the table is complete: its test checks exactly that.

The figures are controller figures; many depend on their knobs linearly (the withdrawn count
on the batch), so an elasticity near 1 there is arithmetic, not a finding. The table shows
which knobs a figure rests on at all, and how far.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from pydantic import BaseModel

from controller.drills.clock import parse_clock
from controller.drills import model as m
from controller.drills.simulation import Constants, simulate_many
from controller.inventory import InventoryShape

STEPS = (0.10, 0.50)
# The mechanism's numeric figures the table follows.
FIGURES = ("withdrawn", "restored_by_revert", "restored_by_config_push", "affected_customers",
           "dashboard_toggles_ok", "dashboard_refused", "canary_failed_s", "task_stopped_s")
# Drill fields that are numbers but no knob of the mechanism, with why.
NOT_MOVED = {
    "start": "the clock the incident starts at: it names times, it moves nothing",
    "settle": "lab seconds after the last step: the live run's wait, not the mechanism's",
    "max_duration": "the live run's bound in lab seconds",
    "realtime": "windows change the lab clock, not the incident clock the mechanism's figures are on",
    "at": "a step's time is the timeline itself, not a knob of the mechanism",
    "expect": "an expectation checks a figure; it moves none",
    "by_implementation": "expectations for one router implementation: they check figures, move none",
    "timers": "BGP's timers: the mechanism has no BGP (the MRAI variants measure them on real sessions)",
}
SHARES = {"fraction", "max_share", "operator_spectrum"}
SEED_FIELDS = {"seed", "inventory_seed"}


@dataclass(frozen=True)
class Knob:
    path: str  # tasks.cleanup.batch, steps.detect.response, inventory.customers, mechanism.confirm
    value: Any
    kind: str  # count | share | number | duration | seed
    what: str


def _kind(name: str, value: Any, annotation: Any = None) -> str | None:
    if isinstance(value, bool) or value is None:
        return None
    if name in SEED_FIELDS and isinstance(value, int):
        return "seed"
    if isinstance(value, int):
        return "count"
    if isinstance(value, float):
        return "share" if name in SHARES else "number"
    if isinstance(value, str):
        try:
            m.parse_duration(value)
        except ValueError:
            return None
        return "duration"
    return None


def _model_knobs(prefix: str, obj: BaseModel, skip: set[str] = frozenset()) -> list[Knob]:
    out = []
    for name, info in type(obj).model_fields.items():
        if name in skip or name in NOT_MOVED:
            continue
        value = getattr(obj, name)
        if isinstance(value, BaseModel):
            out += _model_knobs(f"{prefix}.{name}", value)
            continue
        kind = _kind(name, value)
        if kind is not None:
            out.append(Knob(f"{prefix}.{name}", value, kind, info.description or name.replace("_", " ")))
    return out


def knobs(drill: m.Drill, shape: InventoryShape = InventoryShape(), constants: Constants = Constants()) -> list[Knob]:
    """Every knob the table moves, in the order of the drill file."""
    out = [Knob("speed", drill.speed, "number", "incident seconds per lab second"),
           Knob("probes", drill.probes, "count", "probe targets (the canary is one of them)")]
    for name, task in drill.tasks.items():
        out += _model_knobs(f"tasks.{name}", task, skip={"kind"})
    out += _model_knobs("edge", drill.edge)
    out += _model_knobs("guardrails", drill.guardrails)
    kinds = [s.do for s in drill.steps]
    for i, step in enumerate(drill.steps):
        where = f"steps.{step.do}" if kinds.count(step.do) == 1 else f"steps.{i}"
        out += _model_knobs(where, step, skip={"do", "label", "task"})
    for f in dataclasses.fields(shape):
        value = getattr(shape, f.name)
        if f.name == "byoip_services":
            out += [Knob(f"inventory.byoip_services.{svc}", p, "share", f"share of BYOIP prefixes bound to {svc}")
                    for svc, p in value]
        else:
            out.append(Knob(f"inventory.{f.name}", value, _kind(f.name, value) or "number", f.name.replace("_", " ")))
    for f in dataclasses.fields(constants):
        value = getattr(constants, f.name)
        out.append(Knob(f"mechanism.{f.name}", value, "count" if isinstance(value, int) else "number",
                        f.name.replace("_", " ")))
    return out


def moved(k: Knob, step: float, up: bool) -> Any:
    """The knob's value moved by ``step`` (a share of it) up or down. A count moves by at least
    one; a share stays within (0, 1]; a seed moves by 1 (10%) or 2 (50%): seeds have no scale."""
    factor = 1 + step if up else 1 - step
    if k.kind == "seed":
        return k.value + (1 if step < 0.5 else 2) * (1 if up else -1)
    if k.kind == "count":
        v = max(1, round(k.value * factor))
        return v if v != k.value else k.value + (1 if up else -1 if k.value > 1 else 0)
    if k.kind == "share":
        return round(min(1.0, max(0.001, k.value * factor)), 4)
    if k.kind == "duration":
        return f"{m.parse_duration(k.value) * factor:g}s"
    return round(k.value * factor, 6)


def _magnitude(k: Knob, value: Any) -> float:
    return m.parse_duration(value) if k.kind == "duration" else float(value)


def apply(drill: m.Drill, shape: InventoryShape, constants: Constants, path: str,
          value: Any) -> tuple[m.Drill, InventoryShape, Constants]:
    """The drill, inventory shape and constants with the knob at ``path`` set to ``value``."""
    head, _, rest = path.partition(".")
    if head == "inventory":
        if rest.startswith("byoip_services."):
            return drill, shape.with_service(rest.split(".", 1)[1], value), constants
        return drill, dataclasses.replace(shape, **{rest: value}), constants
    if head == "mechanism":
        return drill, shape, dataclasses.replace(constants, **{rest: value})
    return _set(drill, path.split("."), value), shape, constants


def _set(obj: Any, parts: list[str], value: Any) -> Any:
    """A copy of ``obj`` (a pydantic model, or a drill's step list) with the field at ``parts`` set."""
    if len(parts) == 1:
        return obj.model_copy(update={parts[0]: value})
    head, rest = parts[0], parts[1:]
    if isinstance(obj, m.Drill) and head == "steps":
        which = rest[0]
        i = int(which) if which.isdigit() else next(j for j, s in enumerate(obj.steps) if s.do == which)
        steps = list(obj.steps)
        steps[i] = _set(steps[i], rest[1:], value)
        return obj.model_copy(update={"steps": steps})
    if isinstance(obj, m.Drill) and head == "tasks":
        tasks = dict(obj.tasks)
        tasks[rest[0]] = _set(tasks[rest[0]], rest[1:], value)
        return obj.model_copy(update={"tasks": tasks})
    return obj.model_copy(update={head: _set(getattr(obj, head), rest, value)})


def _figures(r: dict[str, Any], drill: m.Drill) -> dict[str, float | None]:
    start = parse_clock(drill.start)
    out = {f: r.get(f) for f in FIGURES if not f.endswith("_s")}
    for f in ("canary_failed", "task_stopped"):
        out[f + "_s"] = None if r.get(f) is None else (parse_clock(r[f]) - start) % 86400
    return out


def sensitivity(drill: m.Drill, topology: Path, *, speed: float | None = None, steps: tuple[float, ...] = STEPS,
                shape: InventoryShape = InventoryShape(), constants: Constants = Constants(),
                only: list[str] | None = None,
                run: Callable[[list[tuple[Any, ...]]], list[dict[str, Any]]] = simulate_many) -> dict[str, Any]:
    """Each knob (``only``: those paths) moved down and up by each of ``steps`` alone; per move,
    each figure, its change against the base and its elasticity."""
    ks = [k for k in knobs(drill, shape, constants) if only is None or k.path in only]
    moves = [(k, step, up, moved(k, step, up)) for k in ks for step in steps for up in (False, True)]
    jobs = [(drill, topology, speed, shape, constants)]
    for k, _, _, value in moves:
        d, sh, c = apply(drill, shape, constants, k.path, value)
        jobs.append((d, topology, value if k.path == "speed" else speed, sh, c))
    results = run(jobs)
    base = _figures(results[0], drill)
    rows = []
    for (k, step, up, value), r in zip(moves, results[1:]):
        got = _figures(r, drill)
        dk = None if k.kind == "seed" else (_magnitude(k, value) - _magnitude(k, k.value)) / _magnitude(k, k.value)
        change = {f: None if not base[f] or got[f] is None else round((got[f] - base[f]) / base[f], 4) for f in FIGURES}
        elasticity = {f: None if change[f] is None or not dk else round(change[f] / dk, 3) for f in FIGURES}
        rows.append({"knob": k.path, "what": k.what, "kind": k.kind, "base": k.value, "value": value,
                     "step": step, "direction": "+" if up else "-", "figures": got, "change": change,
                     "elasticity": elasticity})
    return {"base": base, "steps": list(steps), "figures": list(FIGURES), "knobs": [k.path for k in ks],
            "not_moved": NOT_MOVED, "rows": rows, "source": "controller (the mechanism alone: the real API over a "
            "fresh inventory, no BGP)"}


SHORT = {"withdrawn": "withdrawn", "restored_by_revert": "revert", "restored_by_config_push": "push",
         "affected_customers": "customers", "dashboard_toggles_ok": "toggles", "dashboard_refused": "refused",
         "canary_failed_s": "detected", "task_stopped_s": "stopped"}


def lines(t: dict[str, Any]) -> list[str]:
    """The table as text: one line per move, each figure's change and its elasticity (e)."""
    head = f"{'knob':<40} {'base':>10} {'moved to':>10} " + " ".join(f"{SHORT[f]:>15}" for f in t["figures"])
    out = [head]
    for r in t["rows"]:
        cells = []
        for f in t["figures"]:
            c, e = r["change"][f], r["elasticity"][f]
            cells.append(f"{'-' if c is None else f'{c:+.1%}':>8} {'' if e is None else f'e{e:+.2f}':>6}")
        out.append(f"{r['knob']:<40} {str(r['base']):>10} {str(r['value']):>10} " + " ".join(cells))
    out.append("not moved: " + "; ".join(f"{k} ({why})" for k, why in t["not_moved"].items()))
    return out

"""The report's figures as Plotly specifications (plain data: traces and a layout), drawn in
the page by plotly.js, which the report embeds (from the plotly package: the page opens
offline). Every figure can be zoomed, and hovering shows exact values and times.

Also what makes the page readable: values in words (``human``), the prefixes that hunted
longest grouped where they behaved identically, and a per-prefix event table in place of
overlapping AS-path labels.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

from controller.drills.analysis import PRODUCTS, Analysis, product_rounds
from controller.drills.clock import DrillClock, Window
from controller.drills.model import fmt_clock, parse_clock

COLOURS = {"withdrawn_only": "#1f77b4", "some_bindings": "#ff7f0e", "all_bindings": "#d62728"}


def plotly_js() -> str:
    """plotly.js as the plotly package ships it (embedded whole: the report works offline)."""
    import plotly

    return (Path(plotly.__file__).parent / "package_data" / "plotly.min.js").read_text()


def human(v: Any) -> str:
    """A value in words: no Python or JSON structure ever reaches the page."""
    if v is None:
        return "-"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, dict):
        if {"n", "median"} <= set(v):
            return f"median {human(v['median'])}, p90 {human(v.get('p90'))}, max {human(v.get('max'))} (n={v['n']})"
        return "; ".join(f"{str(k).replace('_', ' ')}: {human(x)}" for k, x in v.items()) or "-"
    if isinstance(v, (list, tuple)):
        return ", ".join(f"({human(x)})" if isinstance(x, dict) else human(x) for x in v) or "-"
    return str(v)


def _clock(start: str, incident_s: float) -> str:
    return fmt_clock(parse_clock(start) + incident_s)


def step_lanes(marks: list[dict[str, Any]], span: float, width_px: int = 1000) -> list[dict[str, Any]]:
    """Each step (x in incident minutes) with a lane: a label goes in the lowest lane where the
    label before it has ended, so no two labels overlap (a label's width estimated at 6.5 px a
    character over a plot ``width_px`` wide spanning ``span`` minutes)."""
    per_char = span / width_px * 6.5 if span > 0 else 0.0
    ends: list[float] = []
    out = []
    for m in sorted(marks, key=lambda m: m["x"]):
        lane = next((i for i, end in enumerate(ends) if end < m["x"]), None)
        if lane is None:
            lane = len(ends)
            ends.append(0.0)
        ends[lane] = m["x"] + per_char * (len(m["label"]) + 2)
        out.append({**m, "lane": lane})
    return out


def _marks_layout(a: Analysis, span: float) -> tuple[list[dict], list[dict], int]:
    st = a.record.state
    marks = [{"x": mk["incident"] / 60, "label": f"{_clock(st.start, mk['incident'])[:5]} {mk['label'][:48]}"}
             for mk in st.marks]
    lanes = step_lanes(marks, span)
    n = 1 + max((m["lane"] for m in lanes), default=-1)
    shapes = [{"type": "line", "xref": "x", "yref": "paper", "x0": m["x"], "x1": m["x"], "y0": 0, "y1": 1,
               "line": {"color": "#999", "width": 1, "dash": "dot"}} for m in lanes]
    notes = [{"xref": "x", "yref": "paper", "x": m["x"], "y": 1, "yshift": 4 + 15 * m["lane"], "text": m["label"],
              "showarrow": False, "xanchor": "left", "yanchor": "bottom", "font": {"size": 10, "color": "#555"}}
             for m in lanes]
    return shapes, notes, n


def _layout(a: Analysis, title: str, ytitle: str, span: float, **extra: Any) -> dict[str, Any]:
    shapes, notes, lanes = _marks_layout(a, span)
    return {"meta": {"title": title},  # the page writes the title above the plot, clear of the step labels
            "xaxis": {"title": {"text": f"incident minutes after {a.record.state.start} UTC"}},
            "yaxis": {"title": {"text": ytitle}}, "shapes": shapes, "annotations": notes, "hovermode": "x unified",
            "margin": {"t": 16 + 15 * lanes, "l": 60, "r": 20, "b": 50}, "height": 310 + 15 * lanes,
            "legend": {"orientation": "h", "y": -0.25}, **extra}


def figures(a: Analysis) -> dict[str, dict[str, Any]]:
    """Every figure of the report: name -> {data, layout}."""
    st = a.record.state
    samples = a.samples
    x = [s["incident"] / 60 for s in samples]
    clocks = [_clock(st.start, s["incident"]) for s in samples]
    span = (max(x) - min(x)) if x else 1.0
    out: dict[str, dict[str, Any]] = {}

    def line(name: str, ys: list, colour: str | None = None, unit: str = "") -> dict[str, Any]:
        return {"type": "scatter", "mode": "lines", "name": name, "x": x, "y": ys, "customdata": clocks,
                "line": {"width": 2, **({"color": colour} if colour else {})},
                "hovertemplate": f"%{{customdata}}: %{{y}}{unit}<extra>{name}</extra>"}

    out["observer"] = {"data": [line("observer", [s["observer"] for s in samples], "#ff7f0e")],
                       "layout": _layout(a, "Prefixes the observer peer receives from the edge (network)", "prefixes",
                                         span, showlegend=False)}
    out["impact"] = {"data": [line(label, [(s.get("impact") or {}).get(key) for s in samples], COLOURS[key])
                              for key, label in (("withdrawn_only", "withdrawn only"),
                                                 ("some_bindings", "withdrawn, some bindings removed"),
                                                 ("all_bindings", "withdrawn, all bindings removed"))],
                     "layout": _layout(a, "BYOIP prefixes in each impact state (controller)", "prefixes", span)}
    rates = []
    for s in samples:
        res = list((s.get("probes") or {}).values())
        ok = sum(h.get("ok", 0) for h in res)
        total = sum(sum(h.values()) for h in res)
        rates.append(round(100 * ok / total, 1) if total else None)
    clock = DrillClock(st.speed, [Window(w["start"], w["end"], w["label"]) for w in st.windows])
    products = []
    for product, rounds in sorted(product_rounds(a.probes, st.t0).items(),
                                  key=lambda kv: PRODUCTS.index(kv[0]) if kv[0] in PRODUCTS else 99):
        per_min: dict[int, list[bool]] = defaultdict(list)
        for sec, ok in rounds:
            per_min[int(clock.incident(sec) // 60)].append(ok)
        xs = sorted(per_min)
        products.append({"type": "scatter", "mode": "lines", "name": product.replace("_", " "), "x": xs,
                         "y": [round(100 * sum(per_min[m]) / len(per_min[m]), 1) for m in xs],
                         "customdata": [_clock(st.start, m * 60)[:5] for m in xs],
                         "hovertemplate": "%{customdata}: %{y}% of targets<extra>%{fullData.name}</extra>"})
    out["probes"] = {"data": [line("all end-host probes", rates, "#2ca02c", "%")] + products,
                     "layout": _layout(a, "Probes that worked: all, and each product's own (network, per minute)",
                                       "% ok", span, yaxis={"title": {"text": "% ok"}, "range": [-5, 105]})}
    per_pop: dict[str, dict[int, int]] = defaultdict(dict)
    for p in a.probes:
        if p["result"] == "http_403" and p.get("machine"):
            pop = p["machine"].rpartition("/")[0]
            m = int(clock.incident(p["t"] - st.t0) // 60)
            per_pop[pop][m] = per_pop[pop].get(m, 0) + 1
    if per_pop:
        out["edge_403"] = {"data": [{"type": "scatter", "mode": "lines", "name": pop, "x": sorted(c),
                                     "y": [c[m] for m in sorted(c)], "line": {"shape": "hv"}}
                                    for pop, c in sorted(per_pop.items())],
                           "layout": _layout(a, 'HTTP 403 "Edge IP Restricted" per PoP (network, per minute)',
                                             "403 answers", span)}
    vps = sorted(a.record.lab.vantage_points.values()) if a.record.lab else []
    hunting = [{"type": "histogram", "name": vp, "x": [r.paths[vp] for r in a.results if vp in r.paths],
                "xbins": {"size": 1}, "opacity": 0.75} for vp in vps]
    out["hunting"] = {"data": hunting, "layout": {
        "meta": {"title": "Path hunting per vantage point: distinct AS paths after a prefix's withdrawal (network)"},
        "barmode": "group", "height": 320, "margin": {"t": 16},
        "xaxis": {"title": {"text": "AS paths announced between the withdrawal and the final withdrawal"}, "dtick": 1},
        "yaxis": {"title": {"text": "prefixes"}}, "legend": {"orientation": "h", "y": -0.25}}}
    cdf = []
    for data, label in ((sorted(r.convergence for r in a.results if r.convergence is not None), "withdrawal"),
                        (sorted(r.restore_convergence for r in a.results if r.restore_convergence is not None),
                         "restoration")):
        if data:
            cdf.append({"type": "scatter", "mode": "lines", "name": label, "x": data,
                        "y": [round((i + 1) / len(data), 4) for i in range(len(data))], "line": {"shape": "hv"},
                        "hovertemplate": "%{x:.3f} s: %{y:.1%} of prefixes<extra>%{fullData.name}</extra>"})
    out["convergence"] = {"data": cdf, "layout": {
        "meta": {"title": "Convergence: until every vantage point agreed (network, lab seconds: BGP's own clock)"},
        "height": 300, "margin": {"t": 16},
        "xaxis": {"title": {"text": "lab seconds"}}, "yaxis": {"title": {"text": "share of prefixes"}, "tickformat": ".0%"},
        "legend": {"orientation": "h", "y": -0.25}}}
    for v in out.values():  # a trace with no point draws nothing: left out, and a figure left empty with it
        v["data"] = [t for t in v["data"] if len(t.get("x") or []) and any(y is not None for y in t.get("y", t["x"]))]
    return {k: v for k, v in out.items() if v["data"]}


def hunted_longest(a: Analysis, top: int = 10) -> list[dict[str, Any]]:
    """The prefixes that hunted longest, grouped where they behaved identically (the same paths
    and UPDATEs at every vantage point): one row per behaviour, with how many prefixes had it."""
    groups: dict[tuple, list] = defaultdict(list)
    for r in a.results:
        if r.withdrawn_at is None:
            continue
        key = (tuple(sorted(r.paths.items())), tuple(sorted(r.updates.items())))
        groups[key].append(r)
    rows = []
    for (paths, updates), rs in groups.items():
        conv = [r.convergence for r in rs if r.convergence is not None]
        rows.append({"paths": dict(paths), "updates": dict(updates), "count": len(rs),
                     "example": sorted(r.prefix for r in rs)[0], "worst": max((r.hunting for r in rs), default=0),
                     "convergence": (min(conv), max(conv)) if conv else None})
    rows.sort(key=lambda g: (-g["worst"], -(g["convergence"][1] if g["convergence"] else 0), -g["count"]))
    return rows[:top]


def prefix_timeline(a: Analysis, prefix: str, horizon: float | None = None) -> list[dict[str, Any]]:
    """One prefix's UPDATEs at the collector after its withdrawal, one row each: when (lab s
    after the withdrawal), which vantage point, what (announce with its AS path, or withdraw)."""
    r = next((x for x in a.results if x.prefix == prefix), None)
    if r is None or r.withdrawn_at is None:
        return []
    horizon = horizon if horizon is not None else (r.convergence or 1.0) * 1.3 + 0.05
    names = a.record.lab.vantage_points if a.record.lab else {}
    rows = []
    for e in sorted(a.events, key=lambda e: e.t):
        if e.prefix == prefix and r.withdrawn_at <= e.t <= r.withdrawn_at + horizon:
            rows.append({"after_s": round(e.t - r.withdrawn_at, 3), "vp": names.get(e.peer_ip, e.peer_ip),
                         "kind": e.kind, "as_path": " ".join(map(str, e.as_path or ())) if e.kind == "announce" else ""})
    return rows


def narrative(a: Analysis) -> list[str]:
    """What happened, in order, from what was measured and recorded (each sentence says how)."""
    st, F = a.record.state, a.figures
    start = st.start

    def v(name: str) -> Any:
        return (F.get(name) or {}).get("value")

    out = []
    first = v("first_withdrawal_incident_s")
    if first is not None:
        out.append(f"The first withdrawal reached the network at {_clock(start, first)} (network: "
                   f"{F['first_withdrawal_incident_s']['basis']}).")
    det = st.detection or {}
    if det.get("failed") is not None:
        out.append(f"The canary ({det.get('canary')}) was failing from {_clock(start, det['failed'])} (network: the end "
                   "hosts' probes, three failed in a row).")
    if det.get("stopped") is not None:
        out.append(f"The operators stopped the task at {_clock(start, det['stopped'])}, after "
                   f"{human(v('withdrawn_by_task'))} prefixes had been withdrawn through the API (controller).")
    elif v("withdrawn_by_task"):
        out.append(f"{human(v('withdrawn_by_task'))} prefixes were withdrawn through the API (controller); "
                   f"{human(v('withdrawn_on_wire'))} of them were seen withdrawn in the network (network).")
    if a.samples and v("observer_min") is not None:
        low = min((s for s in a.samples if s.get("observer") is not None), key=lambda s: s["observer"], default=None)
        if low is not None:
            out.append(f"The observer's count was lowest, {low['observer']:,} prefixes, at "
                       f"{_clock(start, low['incident'])} (network: the observer's BGP table).")
    products = v("products") or {}
    failed = sorted((p["first_failure"], name) for name, p in products.items() if p.get("first_failure"))
    if failed:
        out.append("Products first failed at: " + ", ".join(f"{name.replace('_', ' ')} {t}" for t, name in failed)
                   + " (network: each product's own probe).")
    for how, label in (("dashboard", "customers re-advertised from the dashboard"), ("revert", "the revert asked for"),
                       ("config_push", "the global config push asked for"), ("snapshot", "a snapshot restore brought back")):
        n = len(st.restore_requests.get(how, []))
        if n:
            out.append(f"{label[0].upper() + label[1:]} {n} prefixes (controller).")
    held = v("held_changes")
    if held:
        out.append(f"Guardrails held {human(held)} of the task's requests (controller: the change pipeline).")
    trip = v("breaker_tripped_incident_s")
    if trip is not None:
        out.append(f"The withdrawal breaker tripped at {_clock(start, trip)} (controller: the audit log).")
    if v("duration_incident_s") is not None:
        d = int(v("duration_incident_s"))
        out.append(f"From the first withdrawal until every affected prefix was back at every vantage point: "
                   f"{d // 3600} h {d % 3600 // 60:02d} m on the incident clock ({human(v('duration_s'))} lab s; "
                   "network: the collector's MRT).")
    end = v("observer_end")
    if end is not None:
        out.append(f"At the end the observer had {end:,} prefixes (network).")
    return out

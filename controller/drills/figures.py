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

import plotly

from controller.drills.analysis import Analysis
from controller.drills.reach import product_rounds
from controller.drills.stats import Figures
from controller.products import NAMES
from controller.observe.probe import by_end_host

COLOURS = {"withdrawn_only": "#1f77b4", "some_bindings": "#ff7f0e", "all_bindings": "#d62728"}


def plotly_js() -> str:
    """plotly.js as the plotly package ships it (embedded whole: the report works offline)."""
    return (Path(plotly.__file__).parent / "package_data" / "plotly.min.js").read_text()


def human(v: Any) -> str:
    """A value in words: no Python or JSON structure ever reaches the page."""
    if v is None:
        return "-"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        if abs(v) >= 1000:  # 20320.4, not 2.032e+04
            return f"{v:,.1f}".rstrip("0").rstrip(".")
        return f"{v:.4g}"
    if isinstance(v, dict):
        if {"n", "median"} <= set(v):
            return f"median {human(v['median'])}, p90 {human(v.get('p90'))}, max {human(v.get('max'))} (n={v['n']})"
        # a nested record stays one: its fields in parentheses after its name, not run into the outer ones
        return "; ".join(f"{str(k).replace('_', ' ')} ({human(x)})" if isinstance(x, dict) and x
                         else f"{str(k).replace('_', ' ')}: {human(x)}" for k, x in v.items()) or "-"
    if isinstance(v, (list, tuple)):
        return ", ".join(f"({human(x)})" if isinstance(x, dict) else human(x) for x in v) or "-"
    return str(v)


# The narrowest plot the lanes are laid out for: a 900 px window less the page's and the plot's
# margins. The labels' text keeps its size in pixels as the plot narrows, so lanes laid out for a
# wider plot overlap in a narrower one.
PLOT_WIDTH_PX = 760
LABEL_CHARS = 48


def short_label(text: str, limit: int = LABEL_CHARS) -> str:
    """A step's label cut at a word, with an ellipsis, never mid-word."""
    if len(text) <= limit:
        return text
    cut = text[: limit - 1].rsplit(" ", 1)[0].rstrip(" ,;:(")
    return cut + "…"


def step_lanes(marks: list[dict[str, Any]], span: float, width_px: int = PLOT_WIDTH_PX) -> list[dict[str, Any]]:
    """Each step (x in incident minutes) with a lane: a label goes in the lowest lane where the
    label before it has ended, so no two labels overlap (a label's width estimated at 7 px a
    character, the font's widest average, over a plot ``width_px`` wide spanning ``span`` minutes)."""
    per_char = span / width_px * 7.0 if span > 0 else 0.0
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
    clk = st.clock()
    # a step is drawn where it was played (the x axis is the played clock, as every sample is)
    marks = [{"x": mk.get("played", mk["incident"]) / 60,
              "label": f"{clk.text(mk.get('played', mk['incident']), seconds=False)} {short_label(mk['label'])}"}
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
    clk = st.clock()
    clocks = [clk.text(s["incident"]) for s in samples]
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
    clock = clk

    def minute(t: float) -> int:
        return int(clock.incident(t - st.t0) // 60)

    # Every end host's probes, per incident minute (a sample holds the probes that came since the
    # last, of one product or another: per sample the share saw-toothed between products).
    everyone: dict[int, list[bool]] = defaultdict(list)
    for p in a.probes:
        if by_end_host(p):
            everyone[minute(p["t"])].append(p["result"] == "ok")
    all_minutes = sorted(everyone)
    products = []
    for product, rounds in sorted(product_rounds(a.probes, st.t0).items(),
                                  key=lambda kv: NAMES.index(kv[0]) if kv[0] in NAMES else 99):
        per_min: dict[int, list[bool]] = defaultdict(list)
        for sec, ok in rounds:
            per_min[int(clock.incident(sec) // 60)].append(ok)
        xs = sorted(per_min)
        products.append({"type": "scatter", "mode": "lines", "name": product.replace("_", " "), "x": xs,
                         "y": [round(100 * sum(per_min[m]) / len(per_min[m]), 1) for m in xs],
                         "customdata": [clk.text(m * 60, seconds=False) for m in xs],
                         "hovertemplate": "%{customdata}: %{y}% of targets<extra>%{fullData.name}</extra>"})
    every = {"type": "scatter", "mode": "lines", "name": "all end-host probes", "x": all_minutes,
             "y": [round(100 * sum(everyone[m]) / len(everyone[m]), 1) for m in all_minutes],
             "customdata": [clk.text(m * 60, seconds=False) for m in all_minutes], "line": {"width": 3, "color": "#111"},
             "hovertemplate": "%{customdata}: %{y}% ok<extra>all end-host probes</extra>"}
    out["probes"] = {"data": [every] + products,
                     "layout": _layout(a, "Probes that worked: all, and each product's own (network, per minute)",
                                       "% ok", span, yaxis={"title": {"text": "% ok"}, "range": [-5, 105]})}
    per_pop: dict[str, dict[int, int]] = defaultdict(dict)
    for p in a.probes:
        if p["result"] == "http_403" and p.get("machine"):
            pop = p["machine"].rpartition("/")[0]
            m = minute(p["t"])
            per_pop[pop][m] = per_pop[pop].get(m, 0) + 1
    if per_pop:
        # The probes run at a lab pace: an incident minute in a real-time window lasts 60 lab s and
        # gets 60 s of probing, elsewhere 60/speed. A count per incident minute would draw the pace
        # (spikes in the windows), not the incident: each minute's count over its lab seconds.
        def lab_seconds(m: int) -> float:
            return clock.lab((m + 1) * 60.0) - clock.lab(m * 60.0)

        out["edge_403"] = {"data": [{"type": "scatter", "mode": "lines", "name": pop, "x": sorted(c),
                                     "y": [round(c[m] / lab_seconds(m), 2) for m in sorted(c)], "line": {"shape": "hv"},
                                     "customdata": [[clk.text(m * 60, seconds=False), c[m], round(lab_seconds(m), 2)]
                                                    for m in sorted(c)],
                                     "hovertemplate": "%{customdata[0]}: %{y} a lab second (%{customdata[1]} answers "
                                                      "in %{customdata[2]} lab s)<extra>%{fullData.name}</extra>"}
                                    for pop, c in sorted(per_pop.items())],
                           "layout": _layout(a, 'HTTP 403 "Edge IP Restricted" per PoP (network: answers per lab second '
                                             'of each incident minute, so that the drill\'s pace is not drawn as the '
                                             'incident)', "403 answers a lab second", span)}
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
    st, F = a.record.state, Figures(a.figures)
    clk = st.clock()

    def v(name: str) -> Any:
        return getattr(F, name).value

    out = []
    first = v("first_withdrawal_incident_s")
    if first is not None:
        out.append(f"The first withdrawal reached the network at {clk.text(first)} (network: "
                   f"{F.first_withdrawal_incident_s.basis}).")
    det = st.detection or {}
    if det.get("failed") is not None:
        out.append(f"The canary ({det.get('canary')}) was failing from {clk.text(det['failed'])} (network: the end "
                   "hosts' probes, three failed in a row).")
    web = (v("products") or {}).get("resolver_web") or {}
    e403 = v("edge_403") or {}
    if web.get("first_failure") or e403:
        # One account of the website's failure, each time with what it is: they differ because they
        # measure different things, not because one is wrong.
        parts = []
        first403 = min((d["first"] for d in e403.values() if d.get("first")), default=None)
        last403 = max((d["last"] for d in e403.values() if d.get("last")), default=None)
        if first403:
            parts.append(f"its first 403 at {first403} (one end host's probe, answered by a machine its binding had "
                         "left)")
        if det.get("failed") is not None and det.get("canary") == "resolver":
            parts.append(f"three failed probes in a row from {clk.text(det['failed'])} (the detection's signal)")
        if web.get("first_failure"):
            parts.append(f"a second in which no end host got through from {web['first_failure']} to "
                         f"{web['last_failure']} (the product's figure: while some machines still served it, some "
                         "probes got through)")
        if last403:
            parts.append(f"its last 403 at {last403} (a machine the push had not reached yet, while others had)")
        out.append("The resolver's website, in the order of the times: " + "; ".join(parts) + " (network: the end "
                   "hosts' probes; times on the played clock).")
    if det.get("stopped") is not None:
        played = det.get("stopped_played", det["stopped"])
        late = played - det["stopped"]
        when = (f"{clk.text(played)} (played; scheduled for {clk.text(det['stopped'])}, the failure plus the "
                f"response: the controller ran {abs(late):.0f} incident seconds {'behind' if late > 0 else 'ahead of'} "
                "the drill's pace)" if abs(late) >= 1 else clk.text(played))
        out.append(f"The operators stopped the task at {when}, after "
                   f"{human(v('withdrawn_by_task'))} prefixes had been withdrawn through the API (controller).")
    elif v("withdrawn_by_task"):
        out.append(f"{human(v('withdrawn_by_task'))} prefixes were withdrawn through the API (controller); "
                   f"{human(v('withdrawn_on_wire'))} of them were seen withdrawn in the network (network).")
    if a.samples and v("observer_min") is not None:
        low = min((s for s in a.samples if s.get("observer") is not None), key=lambda s: s["observer"], default=None)
        if low is not None:
            out.append(f"The observer's count was lowest, {low['observer']:,} prefixes, at "
                       f"{clk.text(low['incident'])} (network: the observer's BGP table).")
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
        out.append(f"The withdrawal breaker tripped at {clk.text(trip)} (controller: the audit log).")
    if v("duration_incident_s") is not None:
        d = int(v("duration_incident_s"))
        out.append(f"From the first withdrawal until every affected prefix was back at every vantage point: "
                   f"{d // 3600} h {d % 3600 // 60:02d} m on the incident clock ({human(v('duration_s'))} lab s; "
                   "network: the collector's MRT).")
    end = v("observer_end")
    if end is not None:
        out.append(f"At the end the observer had {end:,} prefixes (network).")
    return out

"""A drill's report: PNG plots and one self-contained HTML page, from the run directory."""

from __future__ import annotations

import base64
import html
import json
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from controller.analysis import _read_jsonl, analyse, per_prefix  # noqa: E402
from controller.observe.mrt import events  # noqa: E402

# The incident's own figures (postmortem of 2026-02-20), for the side-by-side table.
INCIDENT = {
    "prefixes advertised to the peer": 6500,
    "of them BYOIP": 4306,
    "withdrawn (17:56-18:46)": 1100,
    "restored by the revert (20:20)": 800,
    "restored by the global config push (23:03)": 300,
    "duration from 17:48": "6 h 07 m",
}


def _clock(start: str, incident_s: float) -> str:
    h, m = (int(x) for x in start.split(":")[:2])
    s = int(h * 3600 + m * 60 + incident_s) % 86400
    return f"{s // 3600:02d}:{s % 3600 // 60:02d}"


def _marks(ax, marks: list[dict[str, Any]], start: str, scale: float = 1 / 60) -> None:
    at: dict[float, list[str]] = {}
    for m in marks:
        at.setdefault(m["incident"], []).append(m["label"])
    for t, labels in sorted(at.items()):
        x = t * scale
        ax.axvline(x, color="grey", lw=0.7, ls=":")
        text = " / ".join(label[:24] for label in labels)[:48]
        ax.text(x, 0.98, f"{_clock(start, t)} {text}", rotation=90, va="top", ha="right", fontsize=6,
                color="dimgrey", transform=ax.get_xaxis_transform(), clip_on=True)


def plots(run_dir: Path, metrics: dict[str, Any]) -> dict[str, Path]:
    lab = json.loads((run_dir / "lab.json").read_text())
    st = lab["state"]
    start, t0 = st["start"], st["t0"]
    samples = _read_jsonl(run_dir / "drill-samples.jsonl")
    x = [s["incident"] / 60 for s in samples]
    out: dict[str, Path] = {}

    def over_time(name: str, title: str, ylabel: str, series: list[tuple[str | None, str, list]], ylim=None) -> None:
        """One plot against the incident clock, with the drill's steps marked."""
        fig, ax = plt.subplots(figsize=(10, 4))
        for label, color, values in series:
            ax.plot(x, values, label=label, color=color, lw=1.5)
        if ylim:
            ax.set_ylim(*ylim)
        ax.set_xlabel(f"incident minutes after {start} UTC")
        ax.set_ylabel(ylabel)
        ax.set_title(title)
        if any(label for label, _, _ in series):
            ax.legend(fontsize=8)
        _marks(ax, st["marks"], start)
        out[name] = run_dir / f"{name}.png"
        fig.tight_layout()
        fig.savefig(out[name], dpi=110)
        plt.close(fig)

    over_time("observer", "Prefixes the observer peer receives from the edge", "prefixes",
              [(None, "tab:orange", [s["observer"] for s in samples])])
    over_time("impact", "Prefixes in each impact state", "BYOIP prefixes", [
        (label, color, [s["impact"][key] for s in samples])
        for key, label, color in (("withdrawn_only", "withdrawn only", "tab:blue"),
                                  ("some_bindings", "withdrawn, some bindings removed", "tab:orange"),
                                  ("all_bindings", "withdrawn, all bindings removed", "tab:red"))
    ])
    rates = []
    for s in samples:
        res = list(s.get("probes", {}).values())
        ok = sum(h.get("ok", 0) for h in res)
        total = sum(sum(h.values()) for h in res)
        rates.append(100 * ok / total if total else None)
    over_time("probes", "End hosts reaching BYOIP service addresses (probes)", "% probes ok",
              [(None, "tab:green", rates)], ylim=(-5, 105))

    collector = next(iter(sorted(run_dir.glob("collector*-updates.mrt"))), None)
    mrt_events = [e for e in events(collector) if e.t >= t0] if collector else []
    withdrawn = {p.replace("_", "/"): t for p, t in {**st.get("withdrawn_by_api", {}), **st["withdrawn_by_task"]}.items()}
    restored = {p.replace("_", "/"): t for p, t in st["restore_times"].items()}
    results = per_prefix(mrt_events, withdrawn, restored, lab["collector_peers"])

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    hunting = [r.hunting for r in results]
    if hunting:
        axes[0].hist(hunting, bins=range(0, max(hunting) + 2), color="tab:purple", align="left", rwidth=0.8)
    axes[0].set_xlabel("distinct AS paths seen after the withdrawal (worst vantage point)")
    axes[0].set_ylabel("prefixes")
    axes[0].set_title("Path hunting per prefix")
    conv = sorted(r.convergence for r in results if r.convergence is not None)
    rest = sorted(r.restore_convergence for r in results if r.restore_convergence is not None)
    for data, label in ((conv, "withdrawal: last withdraw everywhere"), (rest, "restoration: announced everywhere")):
        if data:
            axes[1].plot(data, [i / len(data) for i in range(1, len(data) + 1)], label=label)
    axes[1].set_xlabel("seconds (lab time)")
    axes[1].set_ylabel("share of prefixes")
    axes[1].set_title("Convergence (CDF)")
    if conv or rest:
        axes[1].legend(fontsize=7)
    out["hunting"] = run_dir / "hunting.png"
    fig.tight_layout()
    fig.savefig(out["hunting"], dpi=110)
    plt.close(fig)

    worst = sorted(results, key=lambda r: (-r.hunting, -(r.convergence or 0)))[:3]
    fig, axes = plt.subplots(len(worst) or 1, 1, figsize=(10, 2.2 * max(1, len(worst))), squeeze=False)
    peers = lab["collector_peers"]
    for ax, r in zip(axes[:, 0], worst):
        horizon = (r.convergence or 1.0) * 1.3 + 0.05
        evs = [e for e in mrt_events if e.prefix == r.prefix and r.withdrawn_at <= e.t <= r.withdrawn_at + horizon]
        names = sorted(set(peers.values()))
        for e in evs:
            y = names.index(peers.get(e.peer_ip, e.peer_ip)) if peers.get(e.peer_ip) in names else 0
            dt = e.t - r.withdrawn_at
            if e.kind == "announce":
                ax.plot(dt, y, "o", color="tab:blue", ms=4)
                n = sum(1 for x in evs if x.peer_ip == e.peer_ip and x.kind == "announce" and x.t < e.t)
                ax.annotate(" ".join(map(str, e.as_path or ())), (dt, y), fontsize=6, xytext=(3, 3 + 7 * n),
                            textcoords="offset points")
            else:
                ax.plot(dt, y, "x", color="tab:red", ms=6)
        ax.set_yticks(range(len(names)), names)
        ax.set_title(f"{r.prefix}: {r.hunting} paths hunted, converged in "
                     f"{'-' if r.convergence is None else f'{r.convergence:.2f} s'} (o announce, x withdraw)", fontsize=9)
        ax.set_xlabel("seconds after the origin withdrew it")
    out["worst"] = run_dir / "worst-prefixes.png"
    fig.tight_layout()
    fig.savefig(out["worst"], dpi=110)
    plt.close(fig)
    return out


def lab_vs_incident(m: dict[str, Any]) -> list[tuple[str, Any, Any]]:
    d = m["duration_incident_s"]
    return [
        ("prefixes advertised to the peer", m["observer_start"], INCIDENT["prefixes advertised to the peer"]),
        ("of them BYOIP", m["byoip"], INCIDENT["of them BYOIP"]),
        ("withdrawn (17:56-18:46)", m["withdrawn_by_task"], INCIDENT["withdrawn (17:56-18:46)"]),
        ("restored by the revert (20:20)", m["restored"]["revert"], INCIDENT["restored by the revert (20:20)"]),
        ("restored by the global config push (23:03)", m["restored"]["config_push"],
         INCIDENT["restored by the global config push (23:03)"]),
        ("duration from 17:48", f"{int(d // 3600)} h {int(d % 3600 // 60):02d} m", INCIDENT["duration from 17:48"]),
    ]


def write(run_dir: Path, checks: list[dict[str, Any]] | None = None) -> Path:
    """metrics.json, the PNGs and report.html into ``run_dir``; returns the HTML's path."""
    metrics = analyse(run_dir)
    if checks is not None:
        metrics["expectations"] = checks
    elif (run_dir / "metrics.json").exists():
        metrics["expectations"] = json.loads((run_dir / "metrics.json").read_text()).get("expectations", [])
    (run_dir / "metrics.json").write_text(json.dumps(metrics, indent=2))
    pngs = plots(run_dir, metrics)
    drill = json.loads((run_dir / "drill.json").read_text())

    def img(p: Path) -> str:
        return f'<img src="data:image/png;base64,{base64.b64encode(p.read_bytes()).decode()}" alt="{p.name}">'

    def row(*cells: Any, tag: str = "td") -> str:
        return "<tr>" + "".join(f"<{tag}>{html.escape(str(c))}</{tag}>" for c in cells) + "</tr>"

    dist = lambda d: f"median {d['median']}, p90 {d['p90']}, max {d['max']} (n={d['count']})"  # noqa: E731
    checks_html = "".join(
        row(c["expectation"], c["value"], c["range"], "ok" if c["ok"] else "FAILED") for c in metrics.get("expectations", [])
    )
    worst = "".join(row(w["prefix"], w["paths"], w["updates"], w["convergence_s"]) for w in metrics["worst_hunting"])
    page = f"""<!doctype html>
<html><head><meta charset="utf-8"><title>bgplab drill: {html.escape(drill['name'])}</title>
<style>body{{font-family:sans-serif;max-width:1100px;margin:2em auto}}table{{border-collapse:collapse;margin:1em 0}}
td,th{{border:1px solid #ccc;padding:3px 8px;font-size:13px}}img{{max-width:100%}}</style></head><body>
<h1>{html.escape(drill['name'])}</h1>
<p>{html.escape(drill.get('description', ''))}</p>
<p>Speed {metrics['speed']:g} (incident seconds per lab second), FRR {metrics['frr_version']}.
All figures below were measured in the lab on real BGP sessions.</p>
<h2>The lab beside the incident</h2>
<table>{row('figure', 'lab', 'incident', tag='th')}{''.join(row(*r) for r in lab_vs_incident(metrics))}</table>
<p>Impact states when the task was stopped: {html.escape(json.dumps(metrics['impact_at_stop']))};
peaks: {html.escape(json.dumps(metrics['impact_peak']))}. Dashboard re-advertisements: {metrics['restored']['dashboard']}
succeeded, {metrics['dashboard_refused']} refused (no bindings left).</p>
<h2>Expectations</h2><table>{row('expectation', 'value', 'range', 'result', tag='th')}{checks_html}</table>
<h2>Prefixes advertised to the observer</h2>{img(pngs['observer'])}
<h2>Impact states</h2>{img(pngs['impact'])}
<h2>Path hunting and convergence</h2>
<p>Paths explored per prefix: {dist(metrics['path_hunting'])}.<br>
UPDATEs per prefix at the collector: {dist(metrics['updates_per_prefix'])}.<br>
Withdrawal convergence (s): {dist(metrics['convergence_s'])}.<br>
Restoration convergence (s): {dist(metrics['restore_convergence_s'])}.<br>
Reachable again from the eyeballs after restoration (s): {dist(metrics['reachable_again_s'])}.</p>
{img(pngs['hunting'])}
<h3>The prefixes that hunted longest</h3>
<table>{row('prefix', 'paths per vantage point', 'updates', 'convergence (s)', tag='th')}{worst}</table>
{img(pngs['worst'])}
<h2>Data plane</h2><p>{metrics['probe_failures']} of {metrics['probes_total']} probes failed during the drill;
share ok at the end: {metrics['probe_success_end']}.</p>{img(pngs['probes'])}
</body></html>
"""
    out = run_dir / "report.html"
    out.write_text(page)
    return out

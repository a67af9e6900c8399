"""A drill's report: one self-contained HTML page from the run directory's analysis (run once
per report). Its figures are interactive (plotly.js, embedded: the page opens offline; zoom,
hover for exact values and times); every figure in the page carries its source, and every
value is written in words (controller.drills.figures.human), never as a data structure."""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

from controller.drills.analysis import Analysis
from controller.drills.figures import figures, human, hunted_longest, narrative, plotly_js, prefix_timeline
from controller.drills.rundir import RunDir

# The incident's own figures (postmortem of 2026-02-20), for the side-by-side table.
INCIDENT = {
    "prefixes advertised to the peer": "6,500",
    "of them BYOIP": "4,306",
    "withdrawn": "1,100 (17:56-18:46)",
    "restored by the revert": "~800 (20:20)",
    "restored by the global config push": "~300 (23:03)",
    "duration": "6 h 07 m from 17:48 (the sub-task's start) to 23:55",
}


def _clock(start: str, incident_s: float) -> str:
    h, m = (int(x) for x in start.split(":")[:2])
    s = int(h * 3600 + m * 60 + incident_s) % 86400
    return f"{s // 3600:02d}:{s % 3600 // 60:02d}"


def _hms(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    s = int(round(seconds))
    return f"{s // 3600} h {s % 3600 // 60:02d} m {s % 60:02d} s"


def lab_vs_incident(a: Analysis) -> list[tuple[str, str, str, str]]:
    """(figure, the lab's value, where it comes from, the incident's) for the side-by-side table."""
    F = a.figures

    def v(name: str) -> Any:
        return F[name]["value"] if name in F else None

    def restored(how: str) -> str:
        return f"{v(f'restored_by_{how}')} asked; {v(f'restored_by_{how}_in_network')} back at every vantage point"

    return [
        ("prefixes advertised to the peer", str(v("observer_start")), "network: " + F["observer_start"]["basis"],
         INCIDENT["prefixes advertised to the peer"]),
        ("of them BYOIP", str(v("byoip")), "input: " + F["byoip"]["basis"], INCIDENT["of them BYOIP"]),
        ("withdrawn", f"{v('withdrawn_by_task')} by the task; {v('withdrawn_on_wire')} seen withdrawn in the network",
         "controller: API calls of the task; network: " + F["withdrawn_on_wire"]["basis"], INCIDENT["withdrawn"]),
        ("restored by the revert", restored("revert"), "controller: the revert's API call; network: collector MRT",
         INCIDENT["restored by the revert"]),
        ("restored by the global config push", restored("config_push"),
         "controller: the push's API call; network: collector MRT", INCIDENT["restored by the global config push"]),
        ("duration", f"{_hms(v('duration_incident_s'))} on the incident clock ({v('duration_s')} lab s), "
         f"from the first withdrawal at {_clock(a.record.state.start, v('first_withdrawal_incident_s') or 0)}",
         "network: " + F["duration_s"]["basis"], INCIDENT["duration"]),
    ]


def beside_the_internet(a: Analysis) -> list[tuple[str, str, str, str]]:
    """(figure, the lab's value, where it comes from and on which clock, RIPE's beacons) rows."""
    from controller.drills.analysis import RIPE_SOURCE

    F = a.figures
    rows = []
    for name, what in (("internet_announce_50_s", "announcement: half the vantage points have it (s)"),
                       ("internet_announce_100_s", "announcement: every vantage point has it (s)"),
                       ("internet_withdraw_90_s", "withdrawal: visible at under 10% of vantage points (s)"),
                       ("internet_withdraw_last_s", "withdrawal: the last withdrawal at each vantage point (s)"),
                       ("internet_paths_explored", "withdrawal: AS paths explored per vantage point"),
                       ("internet_updates_per_withdrawal", "withdrawal: UPDATEs per vantage point"),
                       ("internet_update_ratio", "UPDATEs after a withdrawal / after an announcement")):
        f = F.get(name)
        if f is None:
            continue
        v = f["value"]
        if isinstance(v, dict) and "median" in v:
            lab = f"median {v['median']}, p90 {v['p90']}, max {v['max']} (n={v['n']})"
            if "share_under_10" in v:
                lab += f"; share under 10: {v['share_under_10']}"
        else:
            lab = "-" if v is None else str(v)
        clock = "real seconds of BGP (lab clock)" if f.get("clock") == "lab" else "count"
        beacon = f.get("beacon")
        mine = v.get("share_under_10") if isinstance(v, dict) and "share_under_10" in v else (
            v.get("median") if isinstance(v, dict) else v)
        if beacon and mine:
            ratio = mine / beacon["value"]
            verdict = (f"lab/Internet {ratio:.2g}: " +
                       ("same order of magnitude" if 0.1 <= ratio <= 10 else "differs by more than 10x"))
        else:
            verdict = "-"
        rows.append((what, lab, f"network, {clock}", f"{beacon['claim']}" if beacon else "(no published figure)", verdict))
    rows.append(("", "", "", "source: " + RIPE_SOURCE, ""))
    return rows


# Why the lab's figures differ from the beacons': what the lab is not.
INTERNET_DIFFERENCES = (
    "Where the lab differs, and why: its AS graph has tens of ASes where the Internet has ~75,000, so a "
    "withdrawn prefix has fewer alternative paths to hunt through and its paths are shorter (2-4 AS hops); "
    "every session here uses one MRAI (FRR's, per peer, counted in whole seconds and not jittered), while RIS "
    "peers run many implementations and settings, some with no MRAI at all; RIS's figures come from a few "
    "hundred full-feed peers spread over the world, the lab's from its collector's vantage points; and "
    "announcements here follow withdrawals by minutes, so MRAI timers still running slow them down, where a "
    "beacon's announcement comes after two quiet hours.")


def _value(f: dict[str, Any]) -> str:
    return human(f["value"])


def _compression(F: dict[str, Any]) -> str:
    c = F.get("compression_effect")
    if c is None:
        return ""
    v = c["value"]

    def d(x: dict[str, Any]) -> str:
        return "none converged" if not x["n"] else f"median {x['median']} s, p90 {x['p90']} s (n={x['n']})"

    return (f"<p><b>What the compression changes.</b> Withdrawal convergence inside real-time windows: "
            f"{html.escape(d(v['in_windows']))}; outside them: {html.escape(d(v['compressed']))}. Of "
            f"{v['compressed_withdrawals']} prefixes withdrawn outside the windows, {v['restored_before_converging']} "
            "were restored before every vantage point had withdrawn them: compressed, the revert came while BGP was "
            "still hunting, which on the day it did not.</p>")


def _windows(F: dict[str, Any]) -> str:
    w = F.get("realtime_windows")
    if w is None:
        return ""
    if not w["value"]:
        return html.escape("; " + w["basis"]) if w.get("compressed") else "; no real-time window"
    parts = ", ".join(f"{x['label'] or 'window'} ({x['lab_s']:g} s)" for x in w["value"])
    return html.escape(f"; in real time (speed 1, BGP on its own clock): {parts}. Durations marked 'lab' are real "
                       "seconds of BGP; 'incident' ones are on the drill's clock")


def _products(F: dict[str, Any]) -> str:
    from controller.drills.analysis import PRODUCT_PROBES

    f = F.get("products")
    if not f or not f["value"]:
        return ""
    rows = "".join(
        "<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in (
            name.replace("_", " "), PRODUCT_PROBES.get(name, ""), v["failed_target_seconds"], v["target_seconds"],
            v["first_failure"] or "-", v["last_failure"] or "-",
            ", ".join(f"{k}: {n}" for k, n in sorted(v["results"].items())), v["ok_share_end"])) + "</tr>"
        for name, v in f["value"].items())
    e = F.get("edge_403", {}).get("value") or {}
    pops = "; ".join(f"{pop}: {v['n']} from {v['machines']} machines, {v['first']}-{v['last']}" for pop, v in e.items())
    return (f"<h3>Each product's own failure</h3><p>network: {html.escape(f['basis'])}</p><table><tr><th>product</th>"
            "<th>probe</th><th>failed (target-seconds)</th><th>probed (target-seconds)</th><th>first failure</th>"
            "<th>last failure</th><th>results</th><th>ok at the end</th></tr>" + rows + "</table>"
            f"<p>network: 403 'Edge IP Restricted' per PoP: {html.escape(pops or 'none')}.</p>")


def _customers(F: dict[str, Any]) -> str:
    if "affected_customers" not in F:
        return ""
    a = F["affected_customers"]
    states = F["impact_customers"]["value"]
    return (f"<h2>Who was hit</h2><p>controller: {a['value']} customers ({human(a.get('share'))} of the {human(a.get('of'))} BYOIP "
            f"customers; input: the seeded inventory) owned a prefix the task withdrew. By the postmortem's states: "
            f"{states['withdrawn_only']} had prefixes withdrawn only, {states['partial']} lost every binding on some of "
            f"them (they could toggle some and not others), {states['all_bindings']} on all of them. "
            f"{F['dashboard_customers']['value']} opened the dashboard: {F.get('restored_by_dashboard', {}).get('value')} "
            f"toggles went through, {F['dashboard_refused']['value']} were refused (no service bound).</p>")


def _guardrails(rd: RunDir, F: dict[str, Any]) -> str:
    """What the guardrails did, and this run beside the unguarded replay (when it is a guarded variant)."""
    g = F.get("guardrails", {}).get("value") or {}
    active = {k: v for k, v in g.items() if v}
    restores = F["snapshot_recovery_s"] if F.get("snapshot_recovery_s", {}).get("prefixes") is not None else None
    path = rd.path / "baseline.json"
    if not active and restores is None and not path.exists():
        return ""
    out = ["<h2>Guardrails</h2>"]
    out.append(f"<p>input: {html.escape(human(active) if active else 'none')}. controller: "
               f"{F['held_changes']['value']} of the task's requests held; by guardrail: "
               f"{html.escape(human(F['held_by_guardrail']['value']))}; breaker tripped at incident second "
               f"{human(F['breaker_tripped_incident_s']['value'])}.</p>")
    stages = F.get("stages", {}).get("value") or {}
    if stages.get("started"):
        reach, fo = F["staged_reachable"]["value"], F["staged_failover_s"]["value"]
        out.append(f"<p>controller: {stages['started']} changes were staged at their first PoP; "
                   f"{stages['promoted']} went on to every PoP, {stages['rolled_back']} were rolled back. network: "
                   f"while in their window, {reach['ok_share']} of {reach['probes']} end-host probes of their prefixes "
                   f"were ok (reached through the other PoP); the vantage points settled on the surviving path in a "
                   f"median {fo.get('median')} lab s (p90 {fo.get('p90')}, n={fo.get('n')}).</p>")
    if restores is not None:
        r = restores
        out.append(f"<p>network: a snapshot restore brought {r.get('prefixes')} prefixes back in {r['value']} lab s "
                   f"(every vantage point and every probe: {r.get('prefixes_back_s')} s; every kernel table: "
                   f"{r.get('kernel_full_s')} s). {html.escape(r['basis'])}.</p>")
    if path.exists():
        b = json.loads(path.read_text())
        keys = [("withdrawn", "prefixes withdrawn by the task"), ("affected_customers", "customers affected"),
                ("restored_by_revert", "restored by the revert"), ("restored_by_config_push", "restored by the config push"),
                ("restored_by_snapshot", "restored by a snapshot"), ("task_stopped", "task stopped")]
        live = {"withdrawn": F["withdrawn_by_task"]["value"], "affected_customers": F.get("affected_customers", {}).get("value"),
                "restored_by_revert": F.get("restored_by_revert", {}).get("value"),
                "restored_by_config_push": F.get("restored_by_config_push", {}).get("value"),
                "restored_by_snapshot": F.get("restored_by_snapshot", {}).get("value"), "task_stopped": None}
        rows = "".join(f"<tr><td>{label}</td><td>{b['unguarded'].get(k)}</td><td>{b['guarded'].get(k)}</td>"
                       f"<td>{live.get(k) if live.get(k) is not None else '-'}</td></tr>" for k, label in keys)
        out.append(f"<p>Beside the unguarded replay ({html.escape(b['base'])}): controller figures of the mechanism "
                   "alone (the real API over a fresh inventory, no BGP) for both drills, and this live run's. "
                   "<code>bgplab drill compare RUN_DIR...</code> sets live runs side by side with their network "
                   "figures.</p><table><tr><th>figure</th><th>unguarded (mechanism)</th><th>this drill (mechanism)</th>"
                   f"<th>this run (live)</th></tr>{rows}</table>")
    return "".join(out)


def _automation(F: dict[str, Any]) -> str:
    """A team's automation: its runs, and its blast radius as the network measured it."""
    if "automation_runs" not in F:
        return ""
    esc = html.escape
    runs = "".join(
        f"<tr><td>{esc(r['task'])}</td><td>{r['run']}</td><td>{'ended at its limit' if r['killed_at_limit'] else r['exit_code']}"
        f"</td><td>{r['seconds']}</td><td>{'ok' if r['ok'] else 'FAILED'}</td><td><a href=\"{esc(r['stdout'])}\">stdout</a> "
        f"<a href=\"{esc(r['stderr'])}\">stderr</a></td><td><pre>{esc(r['stderr_tail'][-800:])}</pre></td></tr>"
        for r in F["automation_runs"]["value"])

    def line(name: str) -> str:
        f = F.get(name)
        if f is None:
            return ""
        ex = f.get("examples")
        more = f"<br><small>{esc(', '.join(map(str, ex)))}</small>" if ex else ""
        return (f"<tr><td>{esc(name)}</td><td>{esc(_value(f))}{more}</td><td>{esc(f['source'])}</td>"
                f"<td>{esc(f['basis'])}</td></tr>")

    radius = "".join(line(n) for n in ("asked", "withdrawn_in_network", "withdrawn_not_asked", "bindings_removed",
                                       "bindings_removed_not_asked", "accounts_affected", "accounts_unbound", "observer_min", "api_denied",
                                       "automation_changes", "held_changes", "breaker_trips"))
    return (f"<h2>Your automation</h2><table><tr><th>task</th><th>run</th><th>exit</th><th>lab s</th><th>result</th>"
            f"<th>output</th><th>stderr (failed runs)</th></tr>{runs}</table>"
            f"<h3>What it did to the network</h3><table><tr><th>figure</th><th>value</th><th>source</th><th>from</th></tr>"
            f"{radius}</table>")


def _sensitivity(rd: RunDir) -> str:
    """The sensitivity table, when the run has one (``bgplab drill run`` computes it after the lab is down)."""
    path = rd.path / "sensitivity.json"
    if not path.exists():
        return ("<h2>Sensitivity</h2><p>Not computed for this run (it runs the mechanism 13 times: "
                "<code>bgplab drill sensitivity DRILL</code>).</p>")
    t = json.loads(path.read_text())
    base = t["base"]
    head = "".join(f"<th>{h}</th>" for h in ("knob", "what", "moved to", "withdrawn", "restored by the revert",
                                              "restored by the config push"))
    rows = "".join(
        "<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in (
            r["knob"], r["what"], r["value"],
            *(f"{r[h]} ({r['change'][h]:+.1%})" for h in ("withdrawn", "restored_by_revert", "restored_by_config_push"))))
        + "</tr>" for r in t["rows"])
    return (f"<h2>Sensitivity</h2><p>controller (the mechanism alone: the real API over a fresh inventory, no BGP; "
            f"controller.drills.mechanism): each knob moved by {t['step']:.0%} alone. With the shipped knobs: "
            f"{base['withdrawn']} withdrawn, {base['restored_by_revert']} restored by the revert, "
            f"{base['restored_by_config_push']} by the config push. The largest change of a headline figure: "
            f"{t['largest_change']:.1%}.</p><table><tr>{head}</tr>{rows}</table>")


def _hunted(a: Analysis) -> str:
    """The prefixes that hunted longest, one row per behaviour (with how many prefixes had it),
    and the first three behaviours' example prefixes as event tables (readable AS paths)."""
    groups = hunted_longest(a)
    if not groups:
        return "<p>No withdrawn prefix was seen hunting at the collector.</p>"
    esc = html.escape
    def conv(g: dict[str, Any]) -> str:
        return "-" if not g["convergence"] else f"{g['convergence'][0]:.3f} to {g['convergence'][1]:.3f}"

    rows = "".join(f"<tr><td>{esc(g['example'])}</td><td>{g['count']}</td><td>{esc(human(g['paths']))}</td>"
                   f"<td>{esc(human(g['updates']))}</td><td>{conv(g)}</td></tr>" for g in groups)
    out = [f"<table><tr><th>example prefix</th><th>prefixes that behaved so</th><th>AS paths per vantage point</th>"
           f"<th>UPDATEs per vantage point</th><th>convergence (lab s)</th></tr>{rows}</table>"]
    for g in groups[:3]:
        events = prefix_timeline(a, g["example"])
        if not events:
            continue
        body = "".join(f"<tr><td>{e['after_s']:.3f}</td><td>{esc(e['vp'])}</td><td>{e['kind']}</td>"
                       f"<td>{esc(e['as_path'])}</td></tr>" for e in events)
        out.append(f"<h4>{esc(g['example'])} (and {g['count'] - 1} more that behaved the same)</h4><table class=\"events\">"
                   f"<tr><th>lab s after its withdrawal</th><th>vantage point</th><th>UPDATE</th><th>AS path</th></tr>"
                   f"{body}</table>")
    return "".join(out)


def write(rd: RunDir, a: Analysis, metrics: dict[str, Any]) -> Path:
    """report.html into the run directory (one file: its plots' script inside); returns its path."""
    figs = figures(a)
    drill = json.loads(rd.drill.read_text())
    run = metrics["run"]
    esc = html.escape

    def plot(name: str, basis: str = "") -> str:
        if name not in figs:
            return ""
        note = f"<p class=\"basis\">{esc(basis)}</p>" if basis else ""
        title = figs[name]["layout"].get("meta", {}).get("title", "")
        return f'<h3>{esc(title)}</h3>{note}<div class="plot" id="plot-{name}" data-figure="{name}"></div>'

    def row(*cells: Any, tag: str = "td") -> str:
        return "<tr>" + "".join(f"<{tag}>{esc(c if isinstance(c, str) else human(c))}</{tag}>" for c in cells) + "</tr>"

    checks_html = "".join(
        row(c["expectation"], c["value"], c.get("n", ""), c["range"], c.get("source") or "-", "ok" if c["ok"] else "FAILED")
        for c in metrics.get("expectations", [])
    )
    figures_html = "".join(
        row(name, _value(f), f["source"], f.get("clock", ""), f["basis"]) for name, f in metrics["figures"].items()
    )
    F = metrics["figures"]
    outcome = ""
    if run["outcome"] != "completed":
        outcome = (f'<p style="color:#b00;font-weight:bold">This run did not complete: {esc(run["outcome"])}. '
                   f'{esc(run.get("error") or "")} The figures below cover what was recorded until then.</p>')
    incident_html = f"""<h2>The lab beside the incident</h2>
<table>{row('figure', 'lab', 'source', 'incident', tag='th')}{''.join(row(*r) for r in lab_vs_incident(a))}</table>
<h2>The lab beside the Internet</h2>
<p>{esc(F['internet_withdraw_last_s']['basis'] if 'internet_withdraw_last_s' in F else '')}</p>
<table>{row('figure', 'lab', 'source and clock', 'RIPE RIS beacons', 'comparison', tag='th')}{''.join(row(*r) for r in beside_the_internet(a))}</table>
<p>{esc(INTERNET_DIFFERENCES)}</p>
{_compression(F)}"""
    story = "".join(f"<li>{esc(x)}</li>" for x in narrative(a))
    specs = json.dumps({k: v for k, v in figs.items()}).replace("</", "<\\/")
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>bgplab drill: {esc(drill['name'])}</title><link rel="icon" href="data:,">
<style>body{{font-family:system-ui,sans-serif;max-width:1150px;margin:2em auto;color:#222}}table{{border-collapse:collapse;margin:1em 0}}
td,th{{border:1px solid #ccc;padding:3px 8px;font-size:13px;vertical-align:top}}.plot{{width:100%;min-height:320px}}
.basis{{font-size:12px;color:#666;margin:0}}table.events td{{font-family:ui-monospace,monospace}}</style>
<script>{plotly_js()}</script></head><body>
<h1>{esc(drill['name'])}</h1>
{outcome}
<p>{esc(drill.get('description', ''))}</p>
<p>Speed {run['speed']:g} (incident seconds per lab second; BGP's timers do not compress){_windows(F)}, FRR {esc(str(run['frr_version']))},
{esc(str(run['runtime']))} runtime. Each figure below says where it comes from: <b>input</b> (the drill file, the
topology, the seeded inventory), <b>controller</b> (what the drill and its tasks did through the API) or <b>network</b>
(measured: the collector's MRT, the speakers' link captures, the observer's BGP table, the end hosts' probes).
The plots zoom (drag), and show exact values and times on hover.</p>
<h2>What happened</h2><ol>{story}</ol>
{_automation(F)}
{'' if 'automation_runs' in F else incident_html}
<h2>Expectations</h2><table>{row('expectation', 'value', 'n', 'range', 'source', 'result', tag='th')}{checks_html}</table>
<h2>The drill's timeline</h2>
{plot('observer', 'network: ' + F['observer_start']['basis'])}
{plot('impact', 'controller: ' + F['impact_withdrawn_only']['basis'])}
<h2>Path hunting and convergence</h2>
<p>network: {esc(F['path_hunting']['basis'])}. Withdrawals located by {esc(F['withdrawn_on_wire']['basis'])}.</p>
{plot('hunting')}
{plot('convergence')}
<h3>The prefixes that hunted longest, grouped where they behaved identically</h3>
{_hunted(a)}
<h2>Data plane</h2><p>network: {F['probe_failures']['value']} of {F['probes_total']['value']} probes failed during the drill;
share ok at the end: {human(F['probe_success_end']['value'])}.</p>
{plot('probes')}
{_products(F)}
{plot('edge_403')}
{_customers(F)}
{_guardrails(rd, F)}
{_sensitivity(rd)}
<h2>Every figure</h2>
<table>{row('figure', 'value', 'source', 'clock', 'from', tag='th')}{figures_html}</table>
<script>
const FIGURES = {specs};
for (const [name, fig] of Object.entries(FIGURES)) {{
  Plotly.newPlot("plot-" + name, fig.data, fig.layout, {{displaylogo: false, responsive: true}});
}}
</script>
</body></html>
"""
    out = rd.report
    out.write_text(page)
    return out

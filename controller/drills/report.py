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
from controller.drills.beside import beside_the_internet, internet_differences, lab_vs_incident
from controller.drills.figures import figures, human, hunted_longest, narrative, plotly_js, prefix_timeline
from controller.drills.rundir import RunDir
from controller.drills.stats import Figure, Figures
from controller.drills.sensitivity import SHORT
from controller.products import BY_NAME
from lab.routers import routers_text

def _value(f: Figure) -> str:
    if f.value is None and f.reason:
        return f.reason
    return human(f.value)


def _compression(F: Figures) -> str:
    c = F.compression_effect
    if not c.made:
        return ""
    v = c.value

    def d(x: dict[str, Any]) -> str:
        return "none converged" if not x["n"] else f"median {x['median']} s, p90 {x['p90']} s (n={x['n']})"

    cut = v["restored_before_converging"]
    what = (f"{cut} were restored before every vantage point had withdrawn them: compressed, the revert came while "
            "BGP was still hunting, which on the day it did not" if cut else
            "none was restored before every vantage point had withdrawn it: BGP had settled before the revert, "
            "compressed or not")
    return (f"<p><b>What the compression changes.</b> Withdrawal convergence inside real-time windows: "
            f"{html.escape(d(v['in_windows']))}; outside them: {html.escape(d(v['compressed']))}. Of "
            f"{v['compressed_withdrawals']} prefixes withdrawn outside the windows, {html.escape(what)}.</p>")


def _windows(F: Figures) -> str:
    w = F.realtime_windows
    if not w.made:
        return ""
    if not w.value:
        return html.escape("; " + w.basis) if w.get("compressed") else "; no real-time window"
    parts = ", ".join(f"{x['label'] or 'window'} ({x['lab_s']:g} s)" for x in w.value)
    return html.escape(f"; in real time (speed 1, BGP on its own clock): {parts}. Durations marked 'lab' are real "
                       "seconds of BGP; 'incident' ones are on the drill's clock")


def _products(F: Figures) -> str:
    f = F.products
    if not f.value:
        return ""
    rows = "".join(
        "<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in (
            name.replace("_", " "), (BY_NAME[name].probed if name in BY_NAME else ""), v["failed_target_seconds"], v["target_seconds"],
            v["first_failure"] or "-", v["last_failure"] or "-",
            ", ".join(f"{k}: {n}" for k, n in sorted(v["results"].items())), v["ok_share_end"])) + "</tr>"
        for name, v in f.value.items())
    e = F.edge_403.value or {}
    pops = "; ".join(f"{pop}: {v['n']} from {v['machines']} machines, {v['first']}-{v['last']}" for pop, v in e.items())
    return (f"<h3>Each product's own failure</h3><p>network: {html.escape(f.basis)}</p><table><tr><th>product</th>"
            "<th>probe</th><th>failed (target-seconds)</th><th>probed (target-seconds)</th><th>first failure</th>"
            "<th>last failure</th><th>results</th><th>ok at the end</th></tr>" + rows + "</table>"
            f"<p>network: 403 'Edge IP Restricted' per PoP: {html.escape(pops or 'none')}.</p>")


def _customers(F: Figures) -> str:
    a = F.affected_customers
    if not a.made:
        return ""
    states = F.impact_customers.value
    return (f"<h2>Who was hit</h2><p>controller: {a.value} customers ({human(a.get('share'))} of the {human(a.get('of'))} BYOIP "
            f"customers; input: the seeded inventory) owned a prefix the task withdrew. By the postmortem's states: "
            f"{states['withdrawn_only']} had prefixes withdrawn only, {states['partial']} lost every binding on some of "
            f"them (they could toggle some and not others), {states['all_bindings']} on all of them. "
            f"{F.dashboard_customers.value} opened the dashboard: {F.restored_by_dashboard.value} "
            f"toggles went through, {F.dashboard_refused.value} were refused (no service bound).</p>")


def _guardrails(rd: RunDir, F: Figures) -> str:
    """What the guardrails did, and this run beside the unguarded replay (when it is a guarded variant)."""
    g = F.guardrails.value or {}
    active = {k: v for k, v in g.items() if v}
    restores = F.snapshot_recovery_s if F.snapshot_recovery_s.get("prefixes") is not None else None
    path = rd.path / "baseline.json"
    if not active and restores is None and not path.exists():
        return ""
    out = ["<h2>Guardrails</h2>"]
    out.append(f"<p>input: {html.escape(human(active) if active else 'none')}. controller: "
               f"{F.held_changes.value} of the task's requests held; by guardrail: "
               f"{html.escape(human(F.held_by_guardrail.value))}; breaker tripped at incident second "
               f"{human(F.breaker_tripped_incident_s.value)}.</p>")
    stages = F.stages.value or {}
    if stages.get("started"):
        reach, fo = F.staged_reachable.value, F.staged_failover_s.value
        out.append(f"<p>controller: {stages['started']} changes were staged at their first PoP; "
                   f"{stages['promoted']} went on to every PoP, {stages['rolled_back']} were rolled back. network: "
                   f"while in their window, {reach['ok_share']} of {reach['probes']} end-host probes of their prefixes "
                   f"were ok (reached through the other PoP); the vantage points settled on the surviving path in a "
                   f"median {fo.get('median')} lab s (p90 {fo.get('p90')}, n={fo.get('n')}).</p>")
    if restores is not None:
        r = restores
        out.append(f"<p>network: a snapshot restore brought {r.get('prefixes')} prefixes back in {r.value} lab s "
                   f"(every vantage point and every probe: {r.get('prefixes_back_s')} s; every kernel table: "
                   f"{r.get('kernel_full_s')} s). {html.escape(r.basis)}.</p>")
    if path.exists():
        b = json.loads(path.read_text())
        keys = [("withdrawn", "prefixes withdrawn by the task"), ("affected_customers", "customers affected"),
                ("restored_by_revert", "restored by the revert"), ("restored_by_config_push", "restored by the config push"),
                ("restored_by_snapshot", "restored by a snapshot"), ("task_stopped", "task stopped")]
        live = {"withdrawn": F.withdrawn_by_task.value, "affected_customers": F.affected_customers.value,
                "restored_by_revert": F.restored_by_revert.value, "restored_by_config_push": F.restored_by_config_push.value,
                "restored_by_snapshot": F.restored_by_snapshot.value, "task_stopped": None}
        rows = "".join(f"<tr><td>{label}</td><td>{b['unguarded'].get(k)}</td><td>{b['guarded'].get(k)}</td>"
                       f"<td>{live.get(k) if live.get(k) is not None else '-'}</td></tr>" for k, label in keys)
        out.append(f"<p>Beside the unguarded replay ({html.escape(b['base'])}): controller figures of the mechanism "
                   "alone (the real API over a fresh inventory, no BGP) for both drills, and this live run's. "
                   "<code>bgplab drill compare RUN_DIR...</code> sets live runs side by side with their network "
                   "figures.</p><table><tr><th>figure</th><th>unguarded (mechanism)</th><th>this drill (mechanism)</th>"
                   f"<th>this run (live)</th></tr>{rows}</table>")
    return "".join(out)


def _automation(F: Figures) -> str:
    """A team's automation: its runs, and its blast radius as the network measured it."""
    if "automation_runs" not in F:
        return ""
    esc = html.escape
    runs = "".join(
        f"<tr><td>{esc(r['task'])}</td><td>{r['run']}</td><td>{'ended at its limit' if r['killed_at_limit'] else r['exit_code']}"
        f"</td><td>{r['seconds']}</td><td>{'ok' if r['ok'] else 'FAILED'}</td><td><a href=\"{esc(r['stdout'])}\">stdout</a> "
        f"<a href=\"{esc(r['stderr'])}\">stderr</a></td><td><pre>{esc(r['stderr_tail'][-800:])}</pre></td></tr>"
        for r in F.automation_runs.value)

    def line(name: str) -> str:
        f = getattr(F, name)
        if not f.made:
            return ""
        ex = f.get("examples")
        more = f"<br><small>{esc(', '.join(map(str, ex)))}</small>" if ex else ""
        return (f"<tr><td>{esc(name)}</td><td>{esc(_value(f))}{more}</td><td>{esc(f.source)}</td>"
                f"<td>{esc(f.basis)}</td></tr>")

    radius = "".join(line(n) for n in ("asked", "withdrawn_in_network", "withdrawn_not_asked", "bindings_removed",
                                       "bindings_removed_not_asked", "accounts_affected", "accounts_unbound", "observer_min", "api_denied",
                                       "api_unauthorized", "automation_changes", "held_changes", "breaker_trips"))
    refused = F.refused_requests.value or []
    refused_list = ("<h3>What its scope refused, request by request</h3><ol>"
                    + "".join(f"<li><code>{esc(r)}</code></li>" for r in refused) + "</ol>") if refused else ""
    return (f"<h2>Your automation</h2><table><tr><th>task</th><th>run</th><th>exit</th><th>lab s</th><th>result</th>"
            f"<th>output</th><th>stderr (failed runs)</th></tr>{runs}</table>"
            f"<h3>What it did to the network</h3><table><tr><th>figure</th><th>value</th><th>source</th><th>from</th></tr>"
            f"{radius}</table>{refused_list}")


def _sensitivity(rd: RunDir) -> str:
    """The sensitivity table, when the run has one (``bgplab drill sensitivity RUN_DIR`` adds it)."""
    path = rd.path / "sensitivity.json"
    if not path.exists():
        return ("<h2>Sensitivity</h2><p>Not computed for this run: <code>bgplab drill sensitivity "
                f"{html.escape(str(rd.path))}</code> adds it (the mechanism alone, every knob moved alone; ~10 minutes).</p>")
    t = json.loads(path.read_text())
    if "figures" not in t:
        return "<h2>Sensitivity</h2><p>This run's table is of an older form; compute it again.</p>"
    esc = html.escape
    head = "".join(f"<th>{h}</th>" for h in ("knob", "base", "moved to", *(SHORT[f] for f in t["figures"])))

    def cell(r: dict[str, Any], f: str) -> str:
        c, e = r["change"][f], r["elasticity"][f]
        if c is None:
            return "-"
        return f"{c:+.1%}" + ("" if e is None else f" (e {e:+.2f})")

    rows = "".join("<tr>" + "".join(f"<td>{esc(str(x))}</td>" for x in (r["knob"], r["base"], r["value"],
                                                                    *(cell(r, f) for f in t["figures"]))) + "</tr>"
                   for r in t["rows"])
    not_moved = "".join(f"<li><code>{esc(k)}</code>: {esc(why)}</li>" for k, why in t["not_moved"].items())
    base = ", ".join(f"{SHORT[f]} {t['base'][f]}" for f in t["figures"])
    return (f"<h2>Sensitivity</h2><p>controller ({esc(t['source'])}): every knob of the drill file, the seeded "
            f"inventory and the mechanism moved alone by {', '.join(f'{x:.0%}' for x in t['steps'])}, down and up. "
            f"With the shipped knobs: {esc(base)}. Each cell is the figure's change and its elasticity (e: the "
            "figure's relative change over the knob's). A figure a knob sets by arithmetic (the withdrawn count "
            "and the batch) shows an elasticity near 1: that is the mechanism, not a finding.</p>"
            f"<table><tr>{head}</tr>{rows}</table><p>Not moved:</p><ul>{not_moved}</ul>")


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
        row(c["expectation"], c["value"], c.get("n", ""), c["range"], c.get("source") or "-",
            "ok" if c["ok"] else (c["note"] if c["ok"] is None else "FAILED" + (f": {c['note']}" if c.get("note") else "")))
        for c in metrics.get("expectations", [])
    )
    F = Figures(metrics["figures"])
    figures_html = "".join(row(f.name, _value(f), f.source, f.get("clock", ""), f.basis) for f in F)
    outcome = ""
    if run["outcome"] != "completed":
        outcome = (f'<p style="color:#b00;font-weight:bold">This run did not complete: {esc(run["outcome"])}. '
                   f'{esc(run.get("error") or "")} The figures below cover what was recorded until then.</p>')
    as_root = sorted(n for n, who in (F.automation_run_as.value or {}).items() if who == "root")
    if as_root:
        outcome += (f'<p style="color:#b00;font-weight:bold">Ran as root, as the drill asked (run_as: root): '
                    f'{esc(", ".join(as_root))}. Its token\'s scope held only as far as its code cooperated: root can '
                    f'read the lab\'s admin token and enter its namespaces.</p>')
    incident_html = f"""<h2>The lab beside the incident</h2>
<p>Only an emergent figure (one no knob fixes) is compared with the incident. A figure fixed by a knob that was derived
from the incident's own numbers is <b>set to match</b>, and says which knob; the drill file's <code>calibration:</code>
names them.</p>
<table>{row('figure', 'lab', 'source', 'incident', 'comparison', tag='th')}{''.join(row(*r) for r in lab_vs_incident(a))}</table>
<h2>The lab beside the Internet</h2>
<p>{esc(F.internet_withdraw_last_s.basis)}</p>
<table>{row('figure', 'lab', 'source and clock', 'RIPE RIS beacons', 'comparison', tag='th')}{''.join(row(*r) for r in beside_the_internet(a))}</table>
<p>{esc(internet_differences(a.record.lab.mrai if a.record.lab else None))}</p>
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
<p>Speed {run['speed']:g} (incident seconds per lab second; BGP's timers do not compress){_windows(F)}, {esc(routers_text(run.get('router_versions')))},
{esc(str(run['runtime']))} runtime. Each figure below says where it comes from: <b>input</b> (the drill file, the
topology, the seeded inventory), <b>controller</b> (what the drill and its tasks did through the API), <b>network</b>
(measured: the collector's MRT, the speakers' link captures, the observer's BGP table, the end hosts' probes) or
<b>calibrated</b> (fixed by a knob derived from the incident's own figures: set to match, never agreement).
Times of day are on the drill's clock as <b>played</b>: the lab's time converted by the drill's pace, which is when
things happened in the network; where the drill had scheduled something for another time (a step, the stop the
detection set), the scheduled time is given beside it and called so.
The plots zoom (drag), and show exact values and times on hover.</p>
<h2>What happened</h2><ol>{story}</ol>
{_automation(F)}
{'' if 'automation_runs' in F else incident_html}
<h2>Expectations</h2><table>{row('expectation', 'value', 'n', 'range', 'source', 'result', tag='th')}{checks_html}</table>
<h2>The drill's timeline</h2>
{plot('observer', 'network: ' + F.observer_start.basis)}
{plot('impact', 'controller: ' + F.impact_withdrawn_only.basis)}
<h2>Path hunting and convergence</h2>
<p>network: {esc(F.path_hunting.basis)}. Withdrawals located by {esc(F.withdrawn_on_wire.basis)}.</p>
{plot('hunting')}
{plot('convergence')}
<h3>The prefixes that hunted longest, grouped where they behaved identically</h3>
{_hunted(a)}
<h2>Data plane</h2><p>network: {F.probe_failures.value} of {F.probes_total.value} probes failed during the drill;
share ok at the end: {human(F.probe_success_end.value)}.</p>
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

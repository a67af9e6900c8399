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
from controller.drills.internet import RIPE_SOURCE
from controller.drills.figures import figures, human, hunted_longest, narrative, plotly_js, prefix_timeline
from controller.drills.rundir import RunDir
from controller.drills.sensitivity import SHORT
from controller.products import BY_NAME, PRODUCTS
from lab.routers import routers_text

# The incident's own figures (postmortem of 2026-02-20), for the side-by-side table.
INCIDENT = {
    "prefixes advertised to the peer": "6,500",
    "of them BYOIP": "4,306",
    "withdrawn": "1,100 (17:56-18:46)",
    "restored by the revert": "~800 (20:20)",
    "restored by the global config push": "~300 (23:03)",
    "duration": "6 h 07 m from 17:48 (the sub-task's start) to 23:55",
}


def _hms(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    s = int(round(seconds))
    return f"{s // 3600} h {s % 3600 // 60:02d} m {s % 60:02d} s"


# The products the postmortem names as failing, and the one it names as not affected.
INCIDENT_PRODUCTS_FAILED = {p.name for p in PRODUCTS if p.failed_2026_02_20}
INCIDENT_PRODUCTS_OK = {p.name for p in PRODUCTS if not p.failed_2026_02_20}


def _set_to_match(*fs: dict[str, Any] | None) -> str | None:
    """"Set to match" with the knobs and the incident figure they came from, when any of the
    row's figures is fixed by calibrated knobs; None for an emergent row."""
    cal = [f for f in fs if f and f.get("calibrated_by")]
    if not cal:
        return None
    knobs = sorted({k for f in cal for k in f["calibrated_by"]})
    return f"set to match, not agreement: {', '.join(knobs)} derived from {cal[0]['derived_from']}"


def _duration(a: Analysis) -> str:
    """The duration with both its ends, on the played incident clock, and what ended it."""
    F = a.figures
    d = F["duration_s"]
    if d["value"] is None:
        return d.get("reason") or "not known: some affected prefix never recovered"
    ends = d.get("endpoints") or {}
    clock = a.record.state.clock()
    text = (f"{_hms(F['duration_incident_s']['value'])} on the incident clock ({d['value']} lab s): from the first "
            f"withdrawal at {clock.text(ends.get('start') or 0)}")
    if ends.get("end") is not None:
        text += f" to {clock.text(ends['end'])}, {ends.get('ended_by')} (played times)"
    return text + (". The incident's 6 h 07 m counts from 17:48, when the sub-task started; the lab's from the "
                   "first withdrawal in the network, and the sub-task's first eight minutes withdrew nothing")


def lab_vs_incident(a: Analysis) -> list[tuple[str, str, str, str, str]]:
    """(figure, the lab's value, where it comes from, the incident's, the comparison) for the
    side-by-side table. A row whose figure a calibrated knob fixes says "set to match"; only an
    emergent figure is compared, and one the postmortem gives no number for says so."""
    F = a.figures

    def v(name: str) -> Any:
        f = F.get(name)
        if f is None:
            return None
        return f["reason"] if f["value"] is None and f.get("reason") else f["value"]

    def src(*names: str) -> str:
        return "; ".join(f"{F[n]['source']}: {F[n]['basis']}" for n in names if n in F)

    def restored(how: str) -> str:
        return f"{v(f'restored_by_{how}')} asked; {v(f'restored_by_{how}_in_network')} back at every vantage point"

    def calibrated(*names: str) -> str:
        return _set_to_match(*(F.get(n) for n in names)) or "emergent"

    rows = [
        ("prefixes advertised to the peer", str(v("observer_start")), src("observer_start"),
         INCIDENT["prefixes advertised to the peer"],
         "set by the topology (input): each PoP announces 6,500 (6,499 anycast and its own /24), so the lab holds "
         "6,501 and the observer hears one PoP's 6,500"),
        ("of them BYOIP", str(v("byoip")), src("byoip"), INCIDENT["of them BYOIP"], "set by the topology (input)"),
        ("withdrawn", f"{v('withdrawn_by_task')} by the task; {v('withdrawn_on_wire')} seen withdrawn in the network",
         src("withdrawn_by_task", "withdrawn_on_wire"), INCIDENT["withdrawn"],
         calibrated("withdrawn_by_task", "withdrawn_on_wire")),
        ("restored by the revert", restored("revert"), src("restored_by_revert", "restored_by_revert_in_network"),
         INCIDENT["restored by the revert"], calibrated("restored_by_revert", "restored_by_revert_in_network")),
        ("restored by the global config push", restored("config_push"),
         src("restored_by_config_push", "restored_by_config_push_in_network"),
         INCIDENT["restored by the global config push"],
         calibrated("restored_by_config_push", "restored_by_config_push_in_network")),
        ("duration", _duration(a),
         src("duration_s"), INCIDENT["duration"], calibrated("duration_incident_s", "duration_s")),
    ]
    cust = F.get("affected_customers")
    if cust is not None:
        share = f" of {cust.get('of')} ({cust['share']:.0%})" if cust.get("share") is not None else ""
        rows.append(("customers affected", f"{cust['value']}{share}", src("affected_customers"),
                     "no incident figure: the postmortem gives 25% of BYOIP prefixes, and the 25% of customers in its "
                     "summary repeats that figure", calibrated("affected_customers") if cust.get("calibrated_by")
                     else "emergent: no incident figure to set it beside"))
    products = (F.get("products") or {}).get("value") or {}
    if products:
        failed = {p for p, d in products.items() if d.get("failed_target_seconds")}
        probed = set(products)
        expected_failed = INCIDENT_PRODUCTS_FAILED & probed
        expected_ok = INCIDENT_PRODUCTS_OK & probed
        agrees = failed >= expected_failed and not (failed & expected_ok)
        rows.append(("products that failed", ", ".join(sorted(failed)) or "none", src("products"),
                     "CDN, Spectrum, Magic Transit and Dedicated Egress on BYOIP, the resolver's website (403); "
                     "DNS over 1.1.1.1 not affected",
                     "emergent: " + ("agrees" if agrees else "differs") + " (which products failed, not for how long)"))
    e403 = (F.get("edge_403") or {}).get("value") or {}
    if e403:
        first = min(d["first"] for d in e403.values() if d.get("first"))
        rows.append(("the resolver's website answering 403", f"{sum(d['n'] for d in e403.values())} answers, the "
                     f"first at {first}", src("edge_403"), "403 'Edge IP Restricted' (no count or time given)",
                     "emergent: the 403s agree in kind; no incident figure for their number or start"))
    if "dashboard_refused" in F:
        rows.append(("dashboard toggles refused", str(v("dashboard_refused")), src("dashboard_refused"),
                     "some customers could not toggle (no service bound); no count given",
                     "emergent: agrees in kind; no incident figure for the number"))
    return rows


def beside_the_internet(a: Analysis) -> list[tuple[str, str, str, str]]:
    """(figure, the lab's value, where it comes from and on which clock, RIPE's beacons) rows."""
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
        if beacon and mine is not None and beacon.get("kind") == "majority":
            # "most withdrawals": a word, not a number to divide by
            verdict = (f"lab: {mine:.0%}; " + ("agrees: more than half" if mine > 0.5 else "differs: half or fewer"))
        elif beacon and mine:
            ratio = mine / beacon["value"]
            verdict = (f"lab/Internet {ratio:.2g}: " +
                       ("same order of magnitude" if 0.1 <= ratio <= 10 else "differs by more than 10x"))
        else:
            verdict = "-"
        rows.append((what, lab, f"network, {clock}", f"{beacon['claim']}" if beacon else "(no published figure)", verdict))
    rows.append(("", "", "", "source: " + RIPE_SOURCE, ""))
    return rows


# Why the lab's figures differ from the beacons': what the lab is not.
def internet_differences(mrai: list[int] | None) -> str:
    """Where the lab differs from RIS, and why; what it says of MRAI follows the lab's own."""
    if mrai is None:
        timers = "the lab's MRAI is not in this run's record"
        slowed = ""
    elif mrai == [0]:
        timers = ("every session here has no MRAI (0 s: FRR sends each change at once), while RIS peers run many "
                  "implementations and settings, most eBGP ones with an MRAI near RFC 4271's 30 s")
        slowed = ""
    else:
        timers = (f"the sessions here use MRAI {', '.join(f'{x} s' for x in mrai)} (FRR's, per peer, counted in whole "
                  "seconds and not jittered), while RIS peers run many implementations and settings, some with no "
                  "MRAI at all")
        slowed = ("; and announcements here follow withdrawals by minutes, so MRAI timers still running slow them "
                  "down, where a beacon's announcement comes after two quiet hours")
    return ("Where the lab differs, and why: its AS graph has tens of ASes where the Internet has ~75,000, so a "
            "withdrawn prefix has fewer alternative paths to hunt through and its paths are shorter (2-4 AS hops); "
            f"{timers}; RIS's figures come from a few hundred full-feed peers spread over the world, the lab's from "
            f"its collector's vantage points{slowed}.")


def _value(f: dict[str, Any]) -> str:
    if f["value"] is None and f.get("reason"):
        return f["reason"]
    return human(f["value"])


def _compression(F: dict[str, Any]) -> str:
    c = F.get("compression_effect")
    if c is None:
        return ""
    v = c["value"]

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

    f = F.get("products")
    if not f or not f["value"]:
        return ""
    rows = "".join(
        "<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in (
            name.replace("_", " "), (BY_NAME[name].probed if name in BY_NAME else ""), v["failed_target_seconds"], v["target_seconds"],
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
                                       "api_unauthorized", "automation_changes", "held_changes", "breaker_trips"))
    refused = (F.get("refused_requests") or {}).get("value") or []
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
    figures_html = "".join(
        row(name, _value(f), f["source"], f.get("clock", ""), f["basis"]) for name, f in metrics["figures"].items()
    )
    F = metrics["figures"]
    outcome = ""
    if run["outcome"] != "completed":
        outcome = (f'<p style="color:#b00;font-weight:bold">This run did not complete: {esc(run["outcome"])}. '
                   f'{esc(run.get("error") or "")} The figures below cover what was recorded until then.</p>')
    as_root = sorted(n for n, who in ((F.get("automation_run_as") or {}).get("value") or {}).items() if who == "root")
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
<p>{esc(F['internet_withdraw_last_s']['basis'] if 'internet_withdraw_last_s' in F else '')}</p>
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

"""The report's comparison tables: the lab beside the incident (the postmortem's figures, each
row saying whether the lab's value emerged or was set to match) and beside the Internet
(RIPE's routing beacons, computed the same way on the lab's prefixes)."""

from __future__ import annotations

from typing import Any

from controller.drills.analysis import Analysis
from controller.drills.internet import RIPE_SOURCE
from controller.drills.stats import Figure, Figures
from controller.products import PRODUCTS


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


def _set_to_match(*fs: Figure) -> str | None:
    """"Set to match" with the knobs and the incident figure they came from, when any of the
    row's figures is fixed by calibrated knobs; None for an emergent row."""
    cal = [f for f in fs if f.get("calibrated_by")]
    if not cal:
        return None
    knobs = sorted({k for f in cal for k in f.get("calibrated_by")})
    return f"set to match, not agreement: {', '.join(knobs)} derived from {cal[0].get('derived_from')}"


def _duration(a: Analysis) -> str:
    """The duration with both its ends, on the played incident clock, and what ended it."""
    F = Figures(a.figures)
    d = F.duration_s
    if d.value is None:
        return d.reason or "not known: some affected prefix never recovered"
    ends = d.get("endpoints") or {}
    clock = a.record.state.clock()
    text = (f"{_hms(F.duration_incident_s.value)} on the incident clock ({d.value} lab s): from the first "
            f"withdrawal at {clock.text(ends.get('start') or 0)}")
    if ends.get("end") is not None:
        text += f" to {clock.text(ends['end'])}, {ends.get('ended_by')} (played times)"
    return text + (". The incident's 6 h 07 m counts from 17:48, when the sub-task started; the lab's from the "
                   "first withdrawal in the network, and the sub-task's first eight minutes withdrew nothing")


def lab_vs_incident(a: Analysis) -> list[tuple[str, str, str, str, str]]:
    """(figure, the lab's value, where it comes from, the incident's, the comparison) for the
    side-by-side table. A row whose figure a calibrated knob fixes says "set to match"; only an
    emergent figure is compared, and one the postmortem gives no number for says so."""
    F = Figures(a.figures)

    def v(name: str) -> Any:
        f = getattr(F, name)
        return f.reason if f.value is None and f.reason else f.value

    def src(*names: str) -> str:
        return "; ".join(f"{f.source}: {f.basis}" for f in map(F.__getattr__, names) if f.made)

    def restored(how: str) -> str:
        return f"{v(f'restored_by_{how}')} asked; {v(f'restored_by_{how}_in_network')} back at every vantage point"

    def calibrated(*names: str) -> str:
        return _set_to_match(*(getattr(F, n) for n in names)) or "emergent"

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
    cust = F.affected_customers
    if cust.made:
        share = f" of {cust.get('of')} ({cust.get('share'):.0%})" if cust.get("share") is not None else ""
        rows.append(("customers affected", f"{cust.value}{share}", src("affected_customers"),
                     "no incident figure: the postmortem gives 25% of BYOIP prefixes, and the 25% of customers in its "
                     "summary repeats that figure", calibrated("affected_customers") if cust.get("calibrated_by")
                     else "emergent: no incident figure to set it beside"))
    products = F.products.value or {}
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
    e403 = F.edge_403.value or {}
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
    F = Figures(a.figures)
    rows = []
    for name, what in (("internet_announce_50_s", "announcement: half the vantage points have it (s)"),
                       ("internet_announce_100_s", "announcement: every vantage point has it (s)"),
                       ("internet_withdraw_90_s", "withdrawal: visible at under 10% of vantage points (s)"),
                       ("internet_withdraw_last_s", "withdrawal: the last withdrawal at each vantage point (s)"),
                       ("internet_paths_explored", "withdrawal: AS paths explored per vantage point"),
                       ("internet_updates_per_withdrawal", "withdrawal: UPDATEs per vantage point"),
                       ("internet_update_ratio", "UPDATEs after a withdrawal / after an announcement")):
        f = getattr(F, name)
        if not f.made:
            continue
        v = f.value
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

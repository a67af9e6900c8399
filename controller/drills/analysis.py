"""What a drill did and what the network showed, from its run directory alone.

Every figure says where it comes from (``source``):
- ``input``: the drill file, the topology or the seeded inventory;
- ``controller``: what the controller or the drill did (its API calls and their times);
- ``network``: measured: the collector's MRT (each vantage point's view), the captures
  (UPDATEs leaving the speakers), the observer's BGP table, the end hosts' probes.
and ``basis`` says precisely what it was read from. Durations say which clock they are
on: lab seconds (BGP's timers run on it) or incident seconds (the drill's clock: lab
seconds times the speed outside real-time windows, one for one inside them).

Real-time windows (controller.drills.clock) play parts of the timeline at speed 1. A
prefix withdrawn or restored inside one saw BGP exactly as it would be on the day: the
steps around it came at the incident's pace, not compressed. The Internet comparison
(RIPE RIS beacons) is computed on those prefixes, and says so.

Per withdrawn prefix:
- its withdrawal in the network: the first UPDATE withdrawing it that left a speaker,
  read from the speakers' link captures; without captures, the first UPDATE about it at
  any vantage point after the controller's call. The controller's own time is kept, so
  the API-to-wire delay is a figure of its own;
- at each vantage point (a collector peer): the distinct AS paths announced after the
  withdrawal and before that vantage point's final withdrawal (path hunting), the
  UPDATEs about it, and when it was finally withdrawn (convergence);
- after a restore: when each vantage point had it again, and when each end host's probe
  of it first succeeded.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from controller.drills.expect import Expect
from controller.drills.rundir import RunDir, RunRecord, read_jsonl
from controller.observe.probe import by_end_host
from controller.observe import mrt
from controller.drills.grading import automation_figures
from controller.drills.guards import guard_figures
from controller.drills.internet import internet_figures
from controller.drills.reach import customer_figures, product_figures
from controller.drills.recovery import PrefixResult, mrt_gap, per_prefix, wire_times
from controller.drills.stats import SUSTAINED_PROBES, distribution, figure


@dataclass
class Analysis:
    """Figures (each with its source) and the per-prefix results they were computed from."""

    record: RunRecord
    figures: dict[str, dict[str, Any]]
    results: list[PrefixResult]
    events: list[mrt.PrefixEvent]
    samples: list[dict[str, Any]]
    probes: list[dict[str, Any]] = field(default_factory=list)  # the run's probe records, from t0 (read once)

    def metrics(self) -> dict[str, Any]:
        """What metrics.json holds (without the expectations, which the caller adds)."""
        st, lab = self.record.state, self.record.lab
        worst = sorted(self.results, key=lambda r: (-r.hunting, -(r.convergence or 0)))
        # one row per batch (prefixes withdrawn by the same call), so the table is not ten rows of one batch
        seen_batches: set[float] = set()
        rows = []
        for r in worst:
            if r.controller_at in seen_batches:
                continue
            seen_batches.add(r.controller_at)
            rows.append({"prefix": r.prefix, "paths": r.paths, "updates": r.updates,
                         "convergence_s": None if r.convergence is None else round(r.convergence, 4)})
            if len(rows) == 10:
                break
        return {
            "run": {"outcome": self.record.outcome, "error": self.record.error, "speed": st.speed, "start": st.start,
                    "lab": lab.lab if lab else None, "runtime": lab.runtime if lab else None,
                    "router_versions": lab.router_versions if lab else None, "steps": len(st.marks),
                    "plans_built": st.plans_built},
            "figures": self.figures,
            "worst_hunting": rows,
        }


def analyse(rd: RunDir) -> Analysis:
    """Every figure of a drill run, from its directory."""
    record = rd.record()
    st, lab = record.state, record.lab
    t0, speed = st.t0, st.speed
    vps = lab.vantage_points if lab else {}
    collector = rd.collector_mrt(record)
    mrt_stats = mrt.ReadStats()
    every_event = list(mrt.events(collector, stats=mrt_stats)) if collector else []
    recorded = {e.peer_ip for e in every_event}  # the vantage points the collector recorded at all
    events = [e for e in every_event if e.t >= t0]
    del every_event
    gap = mrt_gap(collector, vps, recorded)
    affected = st.affected()
    speaker_files = [rd.captures / f for node in (lab.speaker_addresses if lab else {}) for f in st.captures.get(node, [])]
    speaker_files = [f for f in speaker_files if f.exists() and f.stat().st_size > 24]
    speakers = {a for addrs in (lab.speaker_addresses.values() if lab else []) for a in addrs}
    on_wire, announced = wire_times(speaker_files, speakers, set(affected)) if speaker_files and affected else ({}, {})
    probes = [p for p in read_jsonl(rd.probes) if p["t"] >= t0]
    samples = read_jsonl(rd.samples)
    # Recovery by the end hosts' probes; the PoPs' egress attempts only work at the PoP the
    # replies return to, so they count in the products' figures, not in each prefix's recovery.
    host_probes = [p for p in probes if by_end_host(p)]
    results = per_prefix(events, affected, st.restore_times, vps, host_probes, on_wire, announced, recorded)
    clock = st.clock()

    def window_of(t: float | None) -> str | None:
        w = None if t is None else clock.window_at(clock.incident(t - t0))
        return None if w is None else (w.label or "window")

    for r in results:
        r.window, r.restore_window = window_of(r.controller_at), window_of(r.restored_at)
    by_task = [r for r in results if r.prefix in st.withdrawn_by_task]

    F: dict[str, dict[str, Any]] = {}
    mrt_basis = f"collector MRT ({lab.collector if lab else '-'}: {', '.join(sorted(vps.values()))})"
    withdrawal_basis = ("the speakers' link captures (first UPDATE withdrawing it)" if speaker_files
                        else "the collector's MRT (first UPDATE about it after the controller's call)")
    sampled = "observer's BGP table (asked of its router, sampled every 0.5 s by the controller)"
    F["prefixes"] = figure(lab.prefixes if lab else None, "input", "the topology's pools")
    F["byoip"] = figure(lab.byoip if lab else None, "input", "the topology's pools")
    F["speed"] = figure(speed, "input", "the drill file or --speed: incident seconds per lab second, outside real-time windows")
    F["realtime_windows"] = figure(
        [{"label": w.label, "from_incident_s": w.start, "to_incident_s": w.end,
          "lab_s": round(clock.lab(w.end) - clock.lab(w.start), 1)} for w in clock.windows], "input",
        "the drill file's real-time windows (speed 1), as played" if st.realtime
        else "none played: --no-realtime compressed the drill's windows to its speed", compressed=not st.realtime)

    observer = [s["observer"] for s in samples if s.get("observer") is not None]
    F["observer_start"] = figure(observer[0] if observer else None, "network", sampled + ", first sample")
    F["observer_min"] = figure(min(observer) if observer else None, "network", sampled + ", fewest")
    F["observer_end"] = figure(observer[-1] if observer else None, "network", sampled + ", last sample")

    F["withdrawn_by_task"] = figure(len(st.withdrawn_by_task), "controller", "prefixes the cleanup task withdrew through the API")
    F["withdrawn_by_api_steps"] = figure(len(st.withdrawn_by_api), "controller", "prefixes the drill's API steps withdrew")
    seen = [r for r in by_task if r.withdrawn_at is not None]
    F["withdrawn_on_wire"] = figure(len(seen), "network", f"task-withdrawn prefixes whose withdrawal was seen: {withdrawal_basis}",
                                    by_basis={b: sum(1 for r in seen if r.withdrawal_basis == b) for b in ("wire", "collector")})
    F["api_to_wire_s"] = figure(distribution(r.api_to_wire for r in results if r.withdrawal_basis == "wire"), "network",
                                "from the controller's API call to the UPDATE leaving the speaker (captures)", clock="lab")

    impact_keys = ("withdrawn_only", "some_bindings", "all_bindings")
    impact_basis = "the inventory through the API (configured state), sampled every 0.5 s"
    for k in impact_keys:
        F[f"impact_{k}"] = figure(max((s["impact"][k] for s in samples), default=0), "controller", impact_basis + ", peak")
    stopped = st.detection.get("stopped")
    at_stop = {}
    if stopped is not None:
        after = [s for s in samples if s["incident"] >= stopped]
        if after:
            at_stop = after[min(len(after) - 1, 4)]["impact"]
    F["impact_at_stop"] = figure(at_stop, "controller", impact_basis + ", 2 s after the task was stopped")

    n_vp = len(vps)
    for how in ("dashboard", "revert", "config_push", "api", "snapshot"):
        asked = st.restore_requests.get(how, [])
        if how != "api" or asked:
            back = sum(1 for r in results if r.prefix in set(asked) and r.everywhere(n_vp))
            F[f"restored_by_{how}"] = figure(len(asked), "controller", f"prefixes the {how.replace('_', ' ')} asked the API to restore")
            F[f"restored_by_{how}_in_network"] = figure(back, "network", f"of those, back at every vantage point ({mrt_basis})",
                                                        unmeasured=gap)
    F["dashboard_refused"] = figure(st.dashboard_refused, "controller", "dashboard toggles the API refused (no service "
                                    "bound), each with the customer's own token")
    F["restored_in_network"] = figure(sum(1 for r in results if r.restored_at is not None and r.everywhere(n_vp)), "network",
                                      f"affected prefixes back at every vantage point after a restore ({mrt_basis})",
                                      unmeasured=gap)
    F["not_recovered"] = figure(sum(1 for r in results if not r.never_left(n_vp) and r.recovered_at(n_vp) is None),
                                "network", "affected prefixes not back at every vantage point with probes ok by the "
                                "end (a prefix no vantage point lost is not counted: it was never out)",
                                unmeasured=gap)

    stage_probes = [p for p in read_jsonl(rd.stage_probes) if p["t"] >= t0]
    F.update(guard_figures(st, results, samples, n_vp, mrt_basis, host_probes + stage_probes, events))

    # The duration: from the first withdrawal the task caused in the network, to the later of
    # the last affected prefix back at every vantage point with its probes ok and staying so,
    # and the last failed end-host probe of any product after the first withdrawal (a binding
    # the edge had not got back yet answers 403 on a prefix that never left BGP: the rollout's
    # tail is the incident's too).
    first = min((r.withdrawn_at for r in by_task or results if r.withdrawn_at is not None), default=None)
    # a prefix no vantage point lost was withdrawn through the API, not from the network: it has
    # no recovery to wait for (its probes' failures still count, below)
    recovered = [r.recovered_at(n_vp) for r in results if not r.never_left(n_vp)]
    duration = None
    ends: dict[str, float] = {}
    if first is not None and recovered and all(t is not None for t in recovered):
        ends["last affected prefix back at every vantage point, its probes ok and staying so"] = max(recovered)
        last_failed = max((p["t"] for p in host_probes if p["result"] != "ok" and p["t"] >= first), default=None)
        if last_failed is not None:
            ends["the last failed end-host probe"] = last_failed
        duration = max(ends.values()) - first
    ended_by = max(ends, key=ends.get) if ends else None
    F["duration_s"] = figure(None if duration is None else round(duration, 3), "network",
                             f"first withdrawal ({withdrawal_basis}) to the later of the last affected prefix back at "
                             f"every vantage point with its probes ok and staying so ({SUSTAINED_PROBES} in a row) and "
                             "the last failed end-host probe; None if some prefix never recovered", clock="lab",
                             unmeasured=gap if results else None,
                             endpoints={"start": None if first is None else round(clock.incident(first - t0), 1),
                                        "end": None if duration is None else round(clock.incident(first + duration - t0), 1),
                                        "ended_by": ended_by, "clock": "incident seconds from the drill's start (played)"})
    F["duration_incident_s"] = figure(
        None if duration is None else round(clock.incident(first + duration - t0) - clock.incident(first - t0), 1),
        "network", "the same, on the incident clock (lab seconds x speed, one for one in real-time windows)",
        clock="incident", unmeasured=gap if results else None)
    F["first_withdrawal_incident_s"] = figure(None if first is None else round(clock.incident(first - t0), 1), "network",
                                              "incident seconds from the drill's start to the first withdrawal", clock="incident")

    failures = sum(1 for p in host_probes if p["result"] != "ok")
    F["probe_failures"] = figure(failures, "network", "end hosts' probe results that were not ok during the drill")
    F["probes_total"] = figure(len(host_probes), "network", "end hosts' probe results during the drill")
    F.update(product_figures(probes, t0, clock, st.marks))
    F.update(customer_figures(st, rd.bindings_before))
    end_counts: dict[str, int] = defaultdict(int)
    for s in samples[-12:]:
        for res in s.get("probes", {}).values():
            for k, v in res.items():
                end_counts[k] += v
    total_end = sum(end_counts.values())
    F["probe_success_end"] = figure(round(end_counts.get("ok", 0) / total_end, 4) if total_end else None, "network",
                                    f"share of ok probes in the last 6 s of the drill (n={total_end})")

    per_vp = {}
    for vp in sorted(vps.values()):
        paths = [r.paths[vp] for r in results if vp in r.paths]
        d = distribution(paths)
        d["hunted_share"] = round(sum(1 for x in paths if x >= 1) / len(paths), 4) if paths else None
        per_vp[vp] = d
    F["path_hunting"] = figure(per_vp, "network", f"distinct AS paths a vantage point announced between the withdrawal "
                               f"and its final withdrawal, per withdrawn prefix ({mrt_basis}); hunted_share: share with at least one")
    F["path_hunting_worst_vp"] = figure(distribution(r.hunting for r in results), "network",
                                        "per prefix, the most paths any vantage point showed")
    F["updates_per_prefix"] = figure(distribution(sum(r.updates.values()) for r in results), "network",
                                     f"UPDATEs about a withdrawn prefix at all vantage points until restored ({mrt_basis})")
    F["convergence_s"] = figure(distribution(r.convergence for r in results), "network",
                                "from the withdrawal in the network to the last vantage point's final withdrawal", clock="lab",
                                unmeasured=gap if results else None)
    F["restore_convergence_s"] = figure(distribution(r.restore_convergence for r in results), "network",
                                        "from the controller's restore call until every vantage point had it again", clock="lab",
                                        unmeasured=gap if results else None)
    F["reachable_again_s"] = figure(distribution(v for r in results for v in r.reachable_again.values()), "network",
                                    f"from the restore call until each end host's probes of it were ok and stayed so ({SUSTAINED_PROBES} in a "
                                    "row, a 403 a failure, none failing after)", clock="lab")
    F.update(internet_figures(results, events, vps, bool(st.windows), mrt_basis))
    if st.windows:
        inside = [r for r in results if r.window]
        outside = [r for r in results if not r.window and r.withdrawn_at is not None]
        cut = sum(1 for r in outside if r.restored_at is not None and r.convergence is None)
        F["compression_effect"] = figure(
            {"in_windows": distribution(r.convergence for r in inside),
             "compressed": distribution(r.convergence for r in outside),
             "restored_before_converging": cut, "compressed_withdrawals": len(outside)},
            "network", "withdrawal convergence (lab s) of prefixes withdrawn inside real-time windows and outside them; "
            "outside, the drill's next steps come speed times sooner than on the day, so a restore can overtake a "
            f"withdrawal still being hunted (restored_before_converging) ({mrt_basis})", clock="lab")
    if st.automation or st.asked:
        F.update(automation_figures(st, rd, events, vps, mrt_basis, gap))
    F["mrt_events"] = figure(len(events), "network", f"per-prefix UPDATE events at the collector during the drill ({mrt_basis})")
    F["mrt_truncated_tail_bytes"] = figure(mrt_stats.truncated_tail_bytes, "network",
                                           f"bytes of a last MRT record cut short and not read ({mrt_stats.records} records read)")
    apply_calibration(F, json.loads(rd.drill.read_text()).get("calibration") or {} if rd.drill.exists() else {})
    return Analysis(record, F, results, events, samples, probes)


def apply_calibration(F: dict[str, dict[str, Any]], calibration: dict[str, dict[str, Any]]) -> None:
    """Mark the figures the drill file's calibrated knobs fix (``calibration:``). A count of the
    controller's that such knobs fix is no result: its source becomes ``calibrated``. A network
    figure stays a measurement (the network did show it), and carries which knobs set it, so
    that the report sets it beside the incident as "set to match", never as agreement."""
    for name, cal in calibration.items():
        f = F.get(name)
        if f is None:
            continue
        f["calibrated_by"] = list(cal["knobs"])
        f["derived_from"] = cal["derived_from"]
        if f["source"] in ("controller", "input"):
            f["source"] = "calibrated"


# An expectation checks the figure of its own name, except these: (figure, key inside it,
# checked at each vantage point).
EXPECTATIONS: dict[str, tuple[str, str | None, bool]] = {
    name: (name, None, False) for name in Expect.model_fields
} | {
    "convergence_p90_s": ("convergence_s", "p90", False),
    "path_hunting_median": ("path_hunting", "median", True),
    "hunted_share": ("path_hunting", "hunted_share", True),
    "products_failed": ("products", "failed_target_seconds", True),
    "products_ok_end": ("products", "ok_share_end", True),
    "edge_403": ("edge_403", "n", True),
    "staged_reachable": ("staged_reachable", "ok_share", False),
    "stages_rolled_back": ("stages", "rolled_back", False),
}
assert set(EXPECTATIONS) == set(Expect.model_fields), "an exception names an expectation that exists"


def check(expect: Expect, figures: dict[str, dict[str, Any]], prefix: str = "") -> list[dict[str, Any]]:
    """Each expectation set in ``expect`` against the figure it names; per-vantage-point ones
    at every vantage point, each with the number of prefixes it rests on."""
    out = []
    for name, rng in expect:
        if rng is None:
            continue
        fig_name, key, per_vp = EXPECTATIONS[name]
        fig = figures.get(fig_name)
        source = fig["source"] if fig else None
        if fig is None:
            out.append({"expectation": prefix + name, "value": None, "range": str(rng), "ok": False,
                        "source": None, "note": "no such figure at this point of the run"})
            continue
        value = fig["value"]
        if per_vp:
            if not value:
                out.append({"expectation": prefix + name, "value": None, "range": str(rng), "ok": False,
                            "source": source, "note": "nothing to check it at (no vantage point, product or PoP has it)"})
            for vp, d in sorted((value or {}).items()):
                r = rng.for_vantage(vp)
                row = {"expectation": f"{prefix}{name} at {vp}", "value": d.get(key), "range": str(r),
                       "ok": r.check(d.get(key)), "source": source, "n": d.get("n")}
                if r.unheld is not None:  # reported, not graded (its check is None)
                    row["note"] = f"not held: {r.unheld}"
                if r.modes:
                    row["mode"] = r.mode(d.get(key))  # which of its named behaviours it showed (None: neither)
                out.append(row)
            continue
        v = value.get(key) if key and isinstance(value, dict) else value
        row = {"expectation": prefix + name, "value": v, "range": str(rng), "ok": rng.check(v), "source": source}
        if rng.modes:
            row["mode"] = rng.mode(v)
        if rng.unheld is not None:
            row["note"] = f"not held: {rng.unheld}"
        elif v is None:
            row["note"] = fig.get("reason") or "no value: nothing measured it"
        if key and isinstance(value, dict) and "n" in value:
            row["n"] = value["n"]
        out.append(row)
    return out

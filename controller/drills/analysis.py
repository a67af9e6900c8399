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
import statistics
from bisect import bisect_left
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from controller.drills.clock import DrillClock
from controller.drills.model import Expect
from controller.drills.rundir import RunDir, RunRecord, read_jsonl
from controller.observe.probe import by_end_host
from controller.observe import mrt, wire
from controller.products import NAMES, PRODUCTS

SOURCES = ("input", "controller", "network", "calibrated")


def figure(value: Any, source: str, basis: str, *, unmeasured: str | None = None, **extra: Any) -> dict[str, Any]:
    """A figure and where it comes from. ``unmeasured``: why a network figure has no evidence
    behind it; the value is then None whatever was computed, and says so (an expectation on
    it fails, naming the reason), rather than standing in a value from another source."""
    if source not in SOURCES:
        raise ValueError(f"a figure's source is one of {', '.join(SOURCES)} (got {source!r})")
    if unmeasured:
        return {"value": None, "source": source, "basis": basis, "reason": unmeasured, **extra}
    return {"value": value, "source": source, "basis": basis, **extra}


def mrt_gap(collector: Path | None, vps: dict[str, str], recorded: set[str]) -> str | None:
    """Why the collector's MRT cannot vouch for every vantage point, or None when it can: a
    vantage point the collector never recorded an UPDATE from (its session never came up, or
    the lab has no collector) has no evidence for anything it did."""
    if collector is None or not vps:
        return "not measured: the lab has no route collector (no MRT record)"
    missing = sorted(vp for ip, vp in vps.items() if ip not in recorded)
    return f"not measured: no MRT record from {', '.join(missing)}" if missing else None


@dataclass
class PrefixResult:
    prefix: str
    controller_at: float  # the controller's call that withdrew it (lab clock)
    withdrawn_at: float | None  # in the network: on the wire, or the first change at a vantage point
    withdrawal_basis: str | None  # "wire" | "collector" | None (never seen)
    paths: dict[str, int] = field(default_factory=dict)  # vantage point -> distinct AS paths while hunting
    updates: dict[str, int] = field(default_factory=dict)
    final_withdraw: dict[str, float] = field(default_factory=dict)  # vantage point -> last withdrawal
    convergence: float | None = None  # from the withdrawal until withdrawn at every vantage point
    restored_at: float | None = None  # the controller's restore call
    back: dict[str, float] = field(default_factory=dict)  # vantage point -> announced again
    # vantage points that never lost it (the collector, which records them, heard nothing of it
    # between the withdrawal and the restore): present, with no time of coming back to give
    stayed: set[str] = field(default_factory=set)
    restore_convergence: float | None = None  # from the restore call until back at every vantage point
    # host -> after the restore, when its probes of the prefix were ok again and stayed so
    # (SUSTAINED_PROBES in a row, no failure after)
    reachable_again: dict[str, float] = field(default_factory=dict)
    probed_by: set[str] = field(default_factory=set)  # hosts that probed it after the restore
    announced_at: float | None = None  # the restore's announcement leaving a speaker (wire), else the call
    window: str | None = None  # the real-time window its withdrawal call fell in
    restore_window: str | None = None  # the real-time window its restore call fell in

    @property
    def hunting(self) -> int:
        return max(self.paths.values(), default=0)

    @property
    def api_to_wire(self) -> float | None:
        return None if self.withdrawn_at is None else self.withdrawn_at - self.controller_at

    def recovered_at(self, vantage_points: int) -> float | None:
        """When it was back at every vantage point and every probe of it succeeded again."""
        if self.restored_at is None or not self.everywhere(vantage_points):
            return None  # not restored, not back everywhere, or nowhere to see it (no collector)
        if self.probed_by - set(self.reachable_again):
            return None  # some end host never reached it again
        times = [*self.back.values(), *(self.restored_at + d for d in self.reachable_again.values())]
        return max(times) if times else None  # it never left and nobody probed it: no time to give

    def everywhere(self, vantage_points: int) -> bool:
        """At every vantage point after its restore: back, or never gone."""
        return vantage_points > 0 and len(self.back) + len(self.stayed) >= vantage_points

    def never_left(self, vantage_points: int) -> bool:
        """No vantage point lost it: it was withdrawn through the API, not from the network."""
        return vantage_points > 0 and len(self.stayed) >= vantage_points


# Probes in a row, every one ok and none failing after them, that make a recovery: a single
# ok probe between failures (a machine the binding has reached, then one it has not) is not one.
SUSTAINED_PROBES = 3


def sustained_from(runs: list[tuple[float, bool]], n: int = SUSTAINED_PROBES) -> float | None:
    """When the last run of ok probes began, if it holds at least ``n`` probes and nothing
    failed after it; else None (still failing at the end, or too few oks to call it back)."""
    start, count = None, 0
    for t, ok in runs:
        if ok:
            if start is None:
                start = t
            count += 1
        else:
            start, count = None, 0
    return start if start is not None and count >= n else None


def percentile(values: list[float], p: float) -> float | None:
    if not values:
        return None
    s = sorted(values)
    k = (len(s) - 1) * p
    lo, hi = int(k), min(int(k) + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


def distribution(values: Iterable[float | None]) -> dict[str, float | int | None]:
    v = [x for x in values if x is not None]
    return {
        "n": len(v),
        "median": round(statistics.median(v), 4) if v else None,
        "p90": round(percentile(v, 0.9), 4) if v else None,
        "max": round(max(v), 4) if v else None,
    }


def wire_times(files: list[Path], speakers: set[str], prefixes: set[str]) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    """Per prefix: the times UPDATEs from a speaker withdrew it, and the times they announced it (sorted)."""
    gone: dict[str, list[float]] = defaultdict(list)
    back: dict[str, list[float]] = defaultdict(list)
    for u in wire.updates(files):
        if u.src not in speakers:
            continue
        for p in u.withdrawn:
            if p in prefixes:
                gone[p].append(u.t)
        for p in u.announced:
            if p in prefixes:
                back[p].append(u.t)
    for times in (*gone.values(), *back.values()):
        times.sort()
    return gone, back


def per_prefix(
    events: list[mrt.PrefixEvent],
    withdrawn: dict[str, float],
    restored: dict[str, float],
    vantage_points: dict[str, str],
    probes: list[dict[str, Any]] | None = None,
    on_wire: dict[str, list[float]] | None = None,
    announced_on_wire: dict[str, list[float]] | None = None,
    recorded: set[str] | None = None,
) -> list[PrefixResult]:
    """One result per withdrawn prefix (keys: CIDR). ``withdrawn`` and ``restored`` hold the
    controller's times; the network's come from ``events`` (the collector) and ``on_wire``.
    ``recorded``: the vantage points (addresses) the collector recorded anything from; only
    for those does the lack of an UPDATE mean the prefix stayed (None: all of them)."""
    by_prefix: dict[str, list[mrt.PrefixEvent]] = defaultdict(list)
    for e in events:
        if e.prefix in withdrawn:
            by_prefix[e.prefix].append(e)
    # prefix -> host -> its probes of the prefix in time order: (t, ok); a 403 is a failure
    probe_runs: dict[str, dict[str, list[tuple[float, bool]]]] = defaultdict(lambda: defaultdict(list))
    for p in probes or []:
        if p["prefix"] in withdrawn:
            probe_runs[p["prefix"]][p["host"]].append((p["t"], p["result"] == "ok"))
    out = []
    for prefix, t_ctl in sorted(withdrawn.items(), key=lambda x: x[1]):
        r = PrefixResult(prefix, t_ctl, None, None, restored_at=restored.get(prefix))
        evs = sorted(by_prefix.get(prefix, []), key=lambda e: e.t)
        gone_at = (on_wire or {}).get(prefix, [])
        i = bisect_left(gone_at, t_ctl)
        if i < len(gone_at) and (r.restored_at is None or gone_at[i] < r.restored_at):
            r.withdrawn_at, r.withdrawal_basis = gone_at[i], "wire"
        else:
            first = next((e.t for e in evs if e.t >= t_ctl), None)
            if first is not None and (r.restored_at is None or first < r.restored_at):
                r.withdrawn_at, r.withdrawal_basis = first, "collector"
        if r.withdrawn_at is not None:
            t_w, t_r = r.withdrawn_at, r.restored_at
            for ip, vp in vantage_points.items():
                during = [e for e in evs if e.peer_ip == ip and e.t >= t_w and (t_r is None or e.t < t_r)]
                r.updates[vp] = len(during)
                withdraws = [e for e in during if e.kind == "withdraw"]
                if withdraws:
                    r.final_withdraw[vp] = withdraws[-1].t
                    during = [e for e in during if e.t <= withdraws[-1].t]
                r.paths[vp] = len({e.as_path for e in during if e.kind == "announce"})
            if vantage_points and len(r.final_withdraw) == len(vantage_points):
                r.convergence = max(r.final_withdraw.values()) - t_w
        if r.restored_at is not None:
            sent = (announced_on_wire or {}).get(prefix, [])
            j = bisect_left(sent, r.restored_at)
            r.announced_at = sent[j] if j < len(sent) else None  # no capture of it: not known
            for ip, vp in vantage_points.items():
                gone = r.final_withdraw.get(vp)
                first = next((e.t for e in evs if e.peer_ip == ip and e.t >= r.restored_at and e.kind == "announce"), None)
                if first is not None:
                    r.back[vp] = first
                elif (gone is None and r.withdrawn_at is not None and not r.updates.get(vp)
                      and (recorded is None or ip in recorded)):
                    # never left this vantage point's table: the collector, which records this
                    # vantage point, heard nothing of it between the withdrawal and the restore
                    r.stayed.add(vp)
            if r.back and r.everywhere(len(vantage_points)):
                r.restore_convergence = max(r.back.values()) - r.restored_at
            for host, runs in probe_runs.get(prefix, {}).items():
                after = sorted(x for x in runs if x[0] >= r.restored_at)
                if not after:
                    continue
                r.probed_by.add(host)
                back = sustained_from(after)
                if back is not None:
                    r.reachable_again[host] = back - r.restored_at
        out.append(r)
    return out


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


def guard_figures(st: Any, results: list[PrefixResult], samples: list[dict[str, Any]], n_vp: int,
                  mrt_basis: str, probes_in_run: list[dict[str, Any]] = (),
                  events: list[mrt.PrefixEvent] = ()) -> dict[str, dict[str, Any]]:
    """What the guardrails did (controller), and how long a snapshot restore took to bring every
    affected prefix back in every table and every probe (network)."""
    F: dict[str, dict[str, Any]] = {}
    F["guardrails"] = figure(st.guardrails or {}, "input", "the drill's guardrails as put to the API (windows in lab "
                             "seconds at the drill's pace)")
    F["bindings_removed"] = figure(sum(len(v) for v in st.bindings_removed.values()), "controller",
                                   "service bindings the task removed through the API")
    F["held_changes"] = figure(len(st.held), "controller", "the task's requests a guardrail held (409 with a change id)")
    held = st.pipeline.get("held", {})
    F["held_by_guardrail"] = figure(held, "controller", "held changes per guardrail by the drill's end, with the prefixes "
                                    "they would have withdrawn and the bindings they would have removed (the pipeline's records)")
    trips = st.pipeline.get("breaker_trips", [])
    F["breaker_tripped_incident_s"] = figure(round(trips[0]["incident"], 1) if trips else None, "controller",
                                             "when the withdrawal breaker tripped (the audit log), incident seconds from "
                                             "the drill's start", clock="incident",
                                             withdrawals=trips[0]["withdrawals"] if trips else None)
    F.update(stage_figures(st, probes_in_run, events, mrt_basis))
    F["snapshot_recovery_s"] = figure(None, "network", "no snapshot was restored in this drill", clock="lab")
    if st.snapshot_restores:
        r0 = st.snapshot_restores[0]
        mine = [r for r in results if r.prefix in set(st.restore_requests.get("snapshot", []))]
        back = [r.recovered_at(n_vp) for r in mine if not r.never_left(n_vp)]
        done = max(back) if back and all(t is not None for t in back) else None
        kernel_at = None
        first = next((s.get("kernel") for s in samples if s.get("kernel")), None)
        if first:
            full = [s["t"] for s in samples if s["t"] >= r0["t"] and s.get("kernel") == first]
            kernel_at = full[0] if full else None
        ends = [done, kernel_at]
        F["snapshot_recovery_s"] = figure(
            None if any(t is None for t in ends) else round(max(ends) - r0["t"], 3), "network",
            f"from the restore call until every prefix it brought back was at every vantage point ({mrt_basis}) with "
            "every end host's probes of it ok, and every router's kernel table as at the drill's start (sampled every "
            "0.5 s); None if one never was", clock="lab",
            prefixes=len(mine), kernel_full_s=None if kernel_at is None else round(kernel_at - r0["t"], 3),
            prefixes_back_s=None if done is None else round(done - r0["t"], 3))
    return F


def stage_figures(st: Any, probes: list[dict[str, Any]], events: list[mrt.PrefixEvent],
                  mrt_basis: str) -> dict[str, dict[str, Any]]:
    """The staged rollout: how many stages went on or back (controller), and while each was in
    its window, whether the end hosts still reached its prefixes (through the other PoP) and
    how long the vantage points took to settle on the surviving path (network)."""
    F: dict[str, dict[str, Any]] = {}
    stages = st.pipeline.get("stages", [])
    started = [e for e in stages if e["action"] == "stage_started"]
    decided = {e["change"]: e for e in stages if e["action"] != "stage_started"}
    F["stages"] = figure({"started": len(started),
                          "promoted": sum(1 for e in decided.values() if e["action"] == "stage_promoted"),
                          "rolled_back": sum(1 for e in decided.values() if e["action"] == "stage_rolled_back")},
                         "controller", "changes the staged rollout held at its first PoP, and what their health window "
                         "decided (the audit log)")
    ok = total = 0
    settle: list[float] = []
    withdrawn_at_vp = 0
    for e in started:
        end = decided[e["change"]]["t"] if e["change"] in decided else float("inf")
        cidrs = set(e.get("cidrs", []))
        window = [p for p in probes if p["prefix"] in cidrs and e["t"] <= p["t"] <= end]
        total += len(window)
        ok += sum(1 for p in window if p["result"] == "ok")
        seen = [x for x in events if x.prefix in cidrs and e["t"] <= x.t <= end]
        last: dict[str, float] = {}
        state: dict[tuple[str, str], str] = {}
        for x in seen:
            last[x.prefix] = x.t
            state[(x.prefix, x.peer_ip)] = x.kind
        settle += [t - e["t"] for t in last.values()]
        withdrawn_at_vp += sum(1 for k in state.values() if k == "withdraw")
    F["staged_reachable"] = figure({"probes": total, "ok_share": round(ok / total, 4) if total else None},
                                   "network", "the end hosts' probes of a stage's prefixes while it was in its window "
                                   "(withdrawn at the first PoP only): reached through the other PoP. The probes "
                                   "are the lab's sample and, from the stage's start, up to 8 of its own prefixes")
    F["staged_failover_s"] = figure(
        {**distribution(settle), "left_withdrawn_at_a_vantage_point": withdrawn_at_vp}, "network",
        f"per staged prefix, from the stage's start to its last UPDATE at a vantage point inside the window: the "
        f"path hunting to the surviving PoP ({mrt_basis}); and (prefix, vantage point) pairs whose last word in the "
        "window was a withdrawal", clock="lab")
    return F


def gone_from_every_vantage_point(events: list[mrt.PrefixEvent], vps: dict[str, str]) -> dict[str, float]:
    """Prefixes whose last word at every vantage point was, at some moment, a withdrawal, with
    that moment: gone from the collector's view of the Internet. A vantage point that said
    nothing about a prefix still has it (the lab had converged when the drill started)."""
    last: dict[str, dict[str, str]] = defaultdict(dict)
    gone: dict[str, float] = {}
    for e in events:  # in time order (mrt.events)
        if e.peer_ip not in vps:
            continue
        seen = last[e.prefix]
        seen[e.peer_ip] = e.kind
        if e.kind == "withdraw" and e.prefix not in gone and len(seen) == len(vps) and \
                all(k == "withdraw" for k in seen.values()):
            gone[e.prefix] = e.t
    return gone


# The figures only a drill with an exec task has (a team's automation, graded).
AUTOMATION_FIGURES = ("asked", "withdrawn_in_network", "withdrawn_not_asked", "bindings_removed_not_asked",
                      "accounts_affected", "accounts_unbound", "api_denied", "api_unauthorized", "refused_requests",
                      "automation_changes", "breaker_trips", "automation_runs",
                      "automation_failed_runs", "automation_killed")


def automation_figures(st: Any, rd: RunDir, events: list[mrt.PrefixEvent], vps: dict[str, str],
                       mrt_basis: str, gap: str | None = None) -> dict[str, dict[str, Any]]:
    """A team's automation graded by what it did to the network: what went from every vantage
    point and whether it was asked to touch it (network, against the drill's input), bindings
    gone (controller: the inventory before and after), the accounts all that touched, and
    the automation's own runs and refused requests."""
    F: dict[str, dict[str, Any]] = {}
    asked = {c for cidrs in st.asked.values() for c in cidrs}
    F["asked"] = figure(len(asked), "input", "prefixes the automation was asked to touch: those pending deletion when "
                        f"it started (of them, {len(st.deletion_requests)} flagged by the drill's deletion_requests)")
    # A grade fails closed: with no record from some vantage point, "gone from every vantage
    # point" cannot be told, and these figures are not known (not 0).
    gone = gone_from_every_vantage_point(events, vps) if vps else {}
    not_asked = sorted(c for c in gone if c not in asked)
    F["withdrawn_in_network"] = figure(len(gone), "network", "prefixes gone from every vantage point at some moment of "
                                       f"the drill ({mrt_basis})", unmeasured=gap)
    F["withdrawn_not_asked"] = figure(len(not_asked), "network", "of those, prefixes the automation was not asked to touch",
                                      unmeasured=gap, examples=not_asked[:20])
    before = json.loads(rd.bindings_before.read_text()) if rd.bindings_before.exists() else {}
    after = json.loads(rd.bindings_after.read_text()) if rd.bindings_after.exists() else None
    removed: dict[str, list[str]] = {}
    if after is not None:
        for cidr, services in before.items():
            left = list(after.get(cidr, []))
            for s in services:
                if s in left:
                    left.remove(s)
                else:
                    removed.setdefault(cidr, []).append(s)
    F["bindings_removed"] = figure(None if after is None else sum(len(v) for v in removed.values()), "controller",
                                   "service bindings gone by the drill's end: the inventory's bindings before the drill "
                                   "and after it (the edge serves what the inventory binds)")
    unbound_not_asked = sorted(c for c in removed if c not in asked)
    F["bindings_removed_not_asked"] = figure(None if after is None else sum(len(removed[c]) for c in unbound_not_asked),
                                             "controller", "of those, bindings of prefixes the automation was not asked "
                                             "to touch", examples=unbound_not_asked[:20])
    owners = json.loads(rd.owners.read_text()) if rd.owners.exists() else {}
    F["accounts_affected"] = figure(len({owners.get(c, "?") for c in not_asked}), "network",
                                    "accounts owning a prefix it was not asked to touch that went from every vantage "
                                    "point (owners: the inventory's, input)", unmeasured=gap)
    F["accounts_unbound"] = figure(len({owners.get(c, "?") for c in unbound_not_asked}), "controller",
                                   "accounts owning a prefix it was not asked to touch that lost a binding (the inventory)")
    api = st.automation_api
    F["api_denied"] = figure(sum(v.get("denied", 0) for v in api.values()), "controller",
                             "the automation's requests its token's scope refused (403s, from the audit log)")
    as_user = [v for v in api.values() if v.get("unauthorized") is not None]
    F["api_unauthorized"] = (
        figure(len({seq for v in as_user for seq in v["unauthorized"]}), "controller",
               "requests with no token of the lab's (a guessed or derived one: 401s) from the automation's own "
               "user while it ran (the audit log, by the requesting socket's owner)")
        if as_user else
        figure(None, "controller", "not known: the automation ran as root, whose requests are not told from the "
               "controller's own"))
    F["automation_run_as"] = figure({n: v.get("run_as", "automation") for n, v in api.items()}, "input",
                                    "who each automation ran as (the drill's run_as): root only where the drill says so")
    refused = {r["seq"]: r for v in api.values() for r in v.get("refused", [])}
    F["refused_requests"] = figure([f"{r['status']} {r['method']} {r['path']}: {r['error']}"
                                    for r in sorted(refused.values(), key=lambda r: (-r["status"], r["seq"]))],
                                   "controller",
                                   "each request of the automation's that the API refused, 403s then 401s (the audit log)")
    F["automation_changes"] = figure({n: v.get("changes", {}) for n, v in api.items()}, "controller",
                                     "changes the automation's token made, by what became of them (the pipeline's records"
                                     + ("" if all(v.get("changes_read_in_full", True) for v in api.values())
                                        else "; its newest 10,000 only: the limit of one listing") + ")")
    held = sum(v.get("changes", {}).get("held", 0) for v in api.values())
    if held:
        F["held_changes"] = figure(held, "controller", "the automation's changes a guardrail held (the pipeline's records)")
    F["breaker_trips"] = figure(len(st.pipeline.get("breaker_trips", [])), "controller",
                                "times the withdrawal breaker tripped (the audit log)")
    runs = st.automation
    F["automation_runs"] = figure(runs, "controller", "each run of the automation as the drill ran it: exit code, lab "
                                  "seconds, whether it was ended at its time limit, its stderr's tail when it failed")
    F["automation_failed_runs"] = figure(sum(1 for r in runs if not r["ok"]), "controller",
                                         "runs that exited non-zero, could not start, or were ended at their time limit")
    F["automation_killed"] = figure(sum(1 for r in runs if r["killed_at_limit"]), "controller",
                                    "runs ended at their time limit (SIGTERM to the process group, SIGKILL after grace)")
    return F


def product_rounds(probes: list[dict[str, Any]], t0: float) -> dict[str, list[tuple[float, bool]]]:
    """Per product, (lab second since t0, worked) per target and second: a product works in a
    second when a probe of that target succeeded in it (for egress: at any PoP)."""
    per: dict[tuple[str, str, int], bool] = {}
    for p in probes:
        key = (p.get("product", "cdn"), p["prefix"], int(p["t"] - t0))
        per[key] = per.get(key, False) or p["result"] == "ok"
    out: dict[str, list[tuple[float, bool]]] = defaultdict(list)
    for (product, _, sec), ok in sorted(per.items(), key=lambda kv: kv[0][2]):
        out[product].append((float(sec), ok))
    return out


def product_figures(probes: list[dict[str, Any]], t0: float, clock: DrillClock,
                    marks: list[dict[str, Any]] = ()) -> dict[str, dict[str, Any]]:
    """Each product's own probe: when it failed, how, and whether it works at the end; and the
    403s each PoP answered (the edge names the machine in every answer)."""
    def at(sec: float) -> str:
        return clock.text_at(sec)

    rounds = product_rounds(probes, t0)
    # "At the end": after the drill's last step (the settle time), when one was recorded; else the last 6 s.
    last_step = max((mk["t"] for mk in marks), default=None)
    results: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    egress: dict[tuple[str, int], list[str]] = defaultdict(list)
    for p in probes:
        if by_end_host(p):
            results[p.get("product", "cdn")][p["result"]] += 1
        else:
            egress[(p["prefix"], int(p["t"] - t0))].append(p["result"])
    # Dedicated Egress is attempted from each PoP's gateway, and the replies come back to the one
    # PoP the server's network prefers (the lab's PoPs do not forward to each other): the other
    # PoP's attempts cannot succeed, at baseline as in the incident. Counted per target and
    # second, as the product's rule judges it (ok when some PoP got through), not per attempt:
    # per attempt, a third of a quiet lab's egress probes were timeouts that were never failures.
    for results_in_second in egress.values():
        ok = "ok" in results_in_second
        results["dedicated_egress"]["ok" if ok else next(r for r in results_in_second if r != "ok")] += 1
    value = {}
    for product in NAMES:
        r = rounds.get(product, [])
        if not r:
            continue
        failed = [sec for sec, ok in r if not ok]
        after = last_step - t0 if last_step is not None and r[-1][0] >= last_step - t0 else r[-1][0] - 6
        end = [ok for sec, ok in r if sec >= after]
        value[product] = {"target_seconds": len(r), "failed_target_seconds": len(failed),
                          "first_failure": at(failed[0]) if failed else None,
                          "last_failure": at(failed[-1]) if failed else None,
                          "ok_share_end": round(sum(end) / len(end), 4) if end else None,
                          "results": dict(results[product])}
    F = {"products": figure(value, "network", "per product, its own probe (" + "; ".join(
        f"{p.name}: {p.probed}" for p in PRODUCTS) + "); target_seconds: targets x seconds probed; ok_share_end: "
        "after the drill's last step (its settle time); results: per probe, but for dedicated egress per target and "
        "second (the attempts from the PoP the replies do not come back to cannot succeed)", clock="incident")}
    edge403: dict[str, dict[str, Any]] = {}
    for p in probes:
        if p["result"] == "http_403" and p.get("machine"):
            pop = p["machine"].rpartition("/")[0]
            d = edge403.setdefault(pop, {"n": 0, "first": None, "last": None, "machines": set()})
            d["n"] += 1
            d["machines"].add(p["machine"])
            d["first"] = d["first"] or at(p["t"] - t0)
            d["last"] = at(p["t"] - t0)
    F["edge_403"] = figure({k: {**v, "machines": len(v["machines"])} for k, v in edge403.items()}, "network",
                           "HTTP 403 'Edge IP Restricted' answers the end hosts got, per PoP (the answering machine "
                           "names itself)", clock="incident")
    return F


def customer_figures(st: Any, bindings_before: Path) -> dict[str, dict[str, Any]]:
    """Who the task hit: customers, their share of all BYOIP customers, and the postmortem's
    three states per customer (withdrawn only; some prefixes stripped of every binding, so
    they could toggle some and not others; all of them stripped)."""
    original = json.loads(bindings_before.read_text()) if bindings_before.exists() else {}
    per: dict[str, list[bool]] = defaultdict(list)  # account -> per withdrawn prefix: stripped of every binding
    for cidr in st.withdrawn_by_task:
        acct = st.owners.get(cidr)
        if acct is not None:
            had = original.get(cidr, [])
            per[acct].append(bool(had) and sorted(st.bindings_removed.get(cidr, [])) == sorted(had))
    states = {"withdrawn_only": 0, "partial": 0, "all_bindings": 0}
    for stripped in per.values():
        states["all_bindings" if all(stripped) else "partial" if any(stripped) else "withdrawn_only"] += 1
    n = st.byoip_customers or None
    return {
        "affected_customers": figure(len(per), "controller", "customers owning a prefix the task withdrew (the API's answer)",
                                     share=round(len(per) / n, 4) if n else None, of=n),
        "byoip_customers": figure(st.byoip_customers, "input", "BYOIP customers in the seeded inventory"),
        "impact_customers": figure(states, "controller", "affected customers by the postmortem's states, from the task's "
                                   "own record (bindings removed against those before the drill)"),
        "dashboard_customers": figure(st.dashboard_customers, "controller", "customers who opened the dashboard (the "
                                      "drill's fraction of the affected ones, seeded)"),
    }


# RIPE RIS routing beacons, as published: the Internet the lab is set beside. Each entry:
# (what, the published figure, its source). These are inputs from elsewhere, not results.
RIPE_BEACONS = {
    "announce_50_s": {"value": 10.0, "claim": "an announcement reaches 50% of RIS peers in about 10 s"},
    "announce_100_s": {"value": 38.0, "claim": "and 100% of them in about 38 s"},
    "withdraw_90_s": {"value": 120.0, "claim": "a withdrawal is below 10% visibility only after about 2 minutes"},
    "update_ratio": {"value": 4.0, "claim": "withdrawals cause about 4 times the update traffic of announcements"},
    "updates_per_withdrawal_under_10": {"value": 0.5, "kind": "majority",
                                        "claim": "most withdrawals cause fewer than 10 updates per peer"},
}
RIPE_SOURCE = ("RIPE NCC routing beacons (RIS): visibility and update counts after scheduled announcements "
               "and withdrawals; Labovitz et al. 2000 for withdrawals' path exploration")


def internet_figures(results: list[PrefixResult], events: list[mrt.PrefixEvent], vps: dict[str, str],
                     windows: bool, mrt_basis: str) -> dict[str, dict[str, Any]]:
    """The lab's figures beside RIPE's beacons: per prefix and per vantage point, on the
    prefixes withdrawn (restored) inside real-time windows when the drill has them."""
    gone = [r for r in results if r.withdrawn_at is not None and (r.window or not windows)]
    back = [r for r in results if r.restored_at is not None and (r.restore_window or not windows)]
    subset = ("prefixes withdrawn/restored inside real-time windows (BGP on its own time, the steps at the "
              "incident's pace)" if windows else
              "every withdrawn/restored prefix: this run had no real-time window, so later steps came sooner than "
              "on the day and overlap the hunting")
    n_vp = len(vps)
    last = [r.final_withdraw[vp] - r.withdrawn_at for r in gone for vp in r.final_withdraw]
    ninety = []
    for r in gone:
        times = sorted(t - r.withdrawn_at for t in r.final_withdraw.values())
        k = max(0, -(-9 * n_vp // 10) - 1)  # the vantage point that brings visibility below 10%
        if len(times) == n_vp and times:
            ninety.append(times[k])
    per_vp_updates = [n for r in gone for n in r.updates.values() if n]
    paths = [n for r in gone for n in r.paths.values()]
    a50, a100 = [], []
    # From the announcement leaving the edge (captures); a prefix with no capture of it is left
    # out rather than timed from the controller's call (another clock, another source).
    back = [r for r in back if r.announced_at is not None]
    for r in back:
        t0 = r.announced_at
        times = sorted(t - t0 for t in r.back.values())
        if len(times) == n_vp and times:
            a50.append(times[max(0, -(-n_vp // 2) - 1)])
            a100.append(times[-1])
    # UPDATEs per vantage point after an announcement: until its next withdrawal, at most 5 minutes.
    ann_updates = []
    by_prefix_vp: dict[tuple[str, str], list[float]] = defaultdict(list)
    wanted = {r.prefix for r in back}
    for e in events:
        if e.prefix in wanted:
            by_prefix_vp[(e.prefix, e.peer_ip)].append(e.t)
    for r in back:
        t0 = r.announced_at
        for ip in vps:
            ann_updates.append(sum(1 for t in by_prefix_vp.get((r.prefix, ip), []) if t0 <= t <= t0 + 300))
    mean_w = statistics.mean(per_vp_updates) if per_vp_updates else None
    mean_a = statistics.mean([n for n in ann_updates if n]) if any(ann_updates) else None
    basis = f"{subset}; {mrt_basis}; times from the UPDATE leaving the edge (captures)"
    return {
        "internet_withdraw_last_s": figure(distribution(last), "network",
                                           "per prefix and vantage point: from the withdrawal leaving the edge to that "
                                           f"vantage point's last withdrawal ({basis})", clock="lab",
                                           n_prefixes=len(gone)),
        "internet_withdraw_90_s": figure(distribution(ninety), "network",
                                         "per prefix: until 90% of vantage points had withdrawn it (visibility below 10%) "
                                         f"({basis})", clock="lab", beacon=RIPE_BEACONS["withdraw_90_s"]),
        "internet_paths_explored": figure(distribution(paths), "network",
                                          f"per prefix and vantage point: distinct AS paths announced while hunting ({basis})"),
        "internet_updates_per_withdrawal": figure(
            {**distribution(per_vp_updates),
             "share_under_10": round(sum(1 for n in per_vp_updates if n < 10) / len(per_vp_updates), 4) if per_vp_updates else None},
            "network", f"per prefix and vantage point: UPDATEs after the withdrawal until it converged ({basis})",
            beacon=RIPE_BEACONS["updates_per_withdrawal_under_10"]),
        "internet_announce_50_s": figure(distribution(a50), "network",
                                         f"per restored prefix: until half the vantage points had it again ({basis})",
                                         clock="lab", beacon=RIPE_BEACONS["announce_50_s"]),
        "internet_announce_100_s": figure(distribution(a100), "network",
                                          f"per restored prefix: until every vantage point had it again ({basis})",
                                          clock="lab", beacon=RIPE_BEACONS["announce_100_s"]),
        "internet_update_ratio": figure(None if not (mean_w and mean_a) else round(mean_w / mean_a, 2), "network",
                                        "mean UPDATEs per prefix and vantage point after a withdrawal, over the same after "
                                        f"an announcement (5 minutes at most) ({basis})", beacon=RIPE_BEACONS["update_ratio"]),
    }


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

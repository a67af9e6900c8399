"""What a drill did, per prefix and overall, from its run directory alone.

Inputs: the collector's MRT (each transit's view), the drill's own record of when it
withdrew and restored each prefix, its samples (observer count, impact states), and
the end hosts' probes. Outputs plain numbers (``metrics.json``).

Per withdrawn prefix, at each vantage point (a collector peer):
- path hunting: distinct AS paths announced after the origin withdrew it, before the
  vantage point's final withdrawal;
- updates: UPDATE events about it in that time;
- convergence: from the origin's withdrawal to the vantage point's last withdrawal.
"""

from __future__ import annotations

import json
import statistics
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

from controller.observe.mrt import PrefixEvent, events


@dataclass(frozen=True)
class PrefixResult:
    prefix: str
    withdrawn_at: float
    paths: dict[str, int]  # vantage point -> distinct AS paths seen while hunting
    updates: dict[str, int]
    convergence: float | None  # seconds until the last withdrawal at every vantage point
    restored_at: float | None
    restore_convergence: float | None  # seconds until every vantage point had it again
    reachable_again: dict[str, float]  # host -> seconds from restore to its first ok probe

    @property
    def hunting(self) -> int:
        return max(self.paths.values(), default=0)


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
        "count": len(v),
        "median": round(statistics.median(v), 4) if v else None,
        "p90": round(percentile(v, 0.9), 4) if v else None,
        "max": round(max(v), 4) if v else None,
    }


def per_prefix(
    mrt_events: list[PrefixEvent],
    withdrawn: dict[str, float],
    restored: dict[str, float],
    peers: dict[str, str],
    probes: list[dict[str, Any]] | None = None,
) -> list[PrefixResult]:
    """One result per withdrawn prefix (keys: CIDR), from the collector's events."""
    by_prefix: dict[str, list[PrefixEvent]] = defaultdict(list)
    for e in mrt_events:
        if e.prefix in withdrawn:
            by_prefix[e.prefix].append(e)
    ok_probes: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for p in probes or []:
        if p["result"] == "ok" and p["prefix"] in withdrawn:
            ok_probes[p["prefix"]][p["host"]].append(p["t"])
    out = []
    for prefix, t_w in sorted(withdrawn.items(), key=lambda x: x[1]):
        t_r = restored.get(prefix)
        evs = sorted(by_prefix.get(prefix, []), key=lambda e: e.t)
        paths: dict[str, int] = {}
        updates: dict[str, int] = {}
        last_withdraw: dict[str, float] = {}
        for vp_ip, vp in peers.items():
            during = [e for e in evs if e.peer_ip == vp_ip and e.t >= t_w and (t_r is None or e.t < t_r)]
            updates[vp] = len(during)
            final = [e for e in during if e.kind == "withdraw"]
            if final:
                last_withdraw[vp] = final[-1].t
                before_final = [e for e in during if e.t <= final[-1].t and e.kind == "announce"]
                paths[vp] = len({e.as_path for e in before_final})
            else:
                paths[vp] = len({e.as_path for e in during if e.kind == "announce"})
        convergence = (max(last_withdraw.values()) - t_w) if last_withdraw and len(last_withdraw) == len(peers) else None
        restore_conv = None
        reach: dict[str, float] = {}
        if t_r is not None:
            back = {}
            for vp_ip, vp in peers.items():
                first = next((e.t for e in evs if e.peer_ip == vp_ip and e.t >= t_r and e.kind == "announce"), None)
                if first is not None:
                    back[vp] = first
            if back and len(back) == len(peers):
                restore_conv = max(back.values()) - t_r
            for host, times in ok_probes.get(prefix, {}).items():
                after = [t for t in times if t >= t_r]
                if after:
                    reach[host] = min(after) - t_r
        out.append(PrefixResult(prefix, t_w, paths, updates, convergence, t_r, restore_conv, reach))
    return out


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    out = []
    for line in path.read_text().splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:
            continue
    return out


def analyse(run_dir: Path) -> dict[str, Any]:
    """Every figure of a drill run, from its directory."""
    lab = json.loads((run_dir / "lab.json").read_text())
    st = lab["state"]
    t0, speed = st["t0"], st["speed"]
    peers = lab["collector_peers"]
    collector_mrt = next(iter(sorted(run_dir.glob("collector*-updates.mrt"))), None)
    mrt_events = [e for e in events(collector_mrt) if e.t >= t0] if collector_mrt else []
    withdrawn = {pid.replace("_", "/"): t for pid, t in {**st.get("withdrawn_by_api", {}), **st["withdrawn_by_task"]}.items()}
    restored = {pid.replace("_", "/"): t for pid, t in st["restore_times"].items()}
    probes = _read_jsonl(run_dir / "observe" / "probes.jsonl")
    probes = [p for p in probes if p["t"] >= t0]
    samples = _read_jsonl(run_dir / "drill-samples.jsonl")
    results = per_prefix(mrt_events, withdrawn, restored, peers, probes)

    observer = [s["observer"] for s in samples if s.get("observer") is not None]
    impact_peak = {k: max((s["impact"][k] for s in samples), default=0) for k in ("withdrawn_only", "some_bindings", "all_bindings")}
    # the three states at the moment the task had done all it would do (the incident's snapshot)
    stopped = st["detection"].get("stopped")
    at_stop = {}
    if stopped is not None:
        after = [s for s in samples if s["incident"] >= stopped]
        if after:
            at_stop = after[min(len(after) - 1, 4)]["impact"]
    last = samples[-12:] if samples else []
    end_probes = defaultdict(int)
    for s in last:
        for res in s.get("probes", {}).values():
            for k, v in res.items():
                end_probes[k] += v
    total_end = sum(end_probes.values())
    failures = sum(1 for p in probes if p["result"] != "ok")
    marks = st["marks"]
    duration = max((m["incident"] for m in marks), default=0.0)
    hunting = sorted(results, key=lambda r: (-r.hunting, -(r.convergence or 0)))[:10]
    return {
        "frr_version": lab.get("frr_version"),
        "speed": speed,
        "prefixes": lab["counts"]["prefixes"],
        "byoip": lab["counts"]["byoip"],
        "withdrawn_by_task": len(st["withdrawn_by_task"]),
        "withdrawn_by_api": len(st.get("withdrawn_by_api", {})),
        "observer_start": observer[0] if observer else None,
        "observer_min": min(observer) if observer else None,
        "observer_end": observer[-1] if observer else None,
        "impact_peak": impact_peak,
        "impact_at_stop": at_stop,
        "restored": st["restored"],
        "dashboard_refused": st["dashboard_refused"],
        "detection": st["detection"],
        "duration_incident_s": duration,
        "probe_failures": failures,
        "probes_total": len(probes),
        "probe_success_end": round(end_probes.get("ok", 0) / total_end, 4) if total_end else None,
        "path_hunting": distribution(r.hunting for r in results),
        "updates_per_prefix": distribution(sum(r.updates.values()) for r in results),
        "convergence_s": distribution(r.convergence for r in results),
        "restore_convergence_s": distribution(r.restore_convergence for r in results),
        "reachable_again_s": distribution(v for r in results for v in r.reachable_again.values()),
        "worst_hunting": [
            {"prefix": r.prefix, "paths": r.paths, "updates": r.updates,
             "convergence_s": None if r.convergence is None else round(r.convergence, 4)}
            for r in hunting
        ],
        "mrt_events": len(mrt_events),
    }


def check(expect: Any, metrics: dict[str, Any], prefix: str = "") -> list[dict[str, Any]]:
    """Each expectation set in ``expect`` against the metric it names."""
    values = {
        "observer_min": metrics.get("observer_min"),
        "observer_end": metrics.get("observer_end"),
        "withdrawn_by_task": metrics.get("withdrawn_by_task"),
        "impact_withdrawn_only": metrics.get("impact_peak", {}).get("withdrawn_only"),
        "impact_some_bindings": metrics.get("impact_peak", {}).get("some_bindings"),
        "impact_all_bindings": metrics.get("impact_peak", {}).get("all_bindings"),
        "restored_by_dashboard": metrics.get("restored", {}).get("dashboard"),
        "restored_by_revert": metrics.get("restored", {}).get("revert"),
        "restored_by_config_push": metrics.get("restored", {}).get("config_push"),
        "probe_success_end": metrics.get("probe_success_end"),
        "probe_failures": metrics.get("probe_failures"),
        "convergence_p90_s": metrics.get("convergence_s", {}).get("p90"),
        "path_hunting_max": metrics.get("path_hunting", {}).get("max"),
    }
    out = []
    for name, rng in expect:
        if rng is None:
            continue
        v = values[name]
        out.append({"expectation": prefix + name, "value": v, "range": str(rng), "ok": rng.check(v)})
    return out

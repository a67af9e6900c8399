"""What the guardrails did (controller) and what the network showed while they acted: the
staged rollout's stages and a snapshot restore's recovery (network)."""

from __future__ import annotations

from typing import Any

from controller.observe import mrt
from controller.drills.stats import distribution, figure
from controller.drills.recovery import PrefixResult


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

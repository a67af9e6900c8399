"""A team's automation graded by what it did to the network and what the API refused it."""

from __future__ import annotations

import json
from typing import Any

from controller.drills.rundir import RunDir
from controller.observe import mrt
from controller.drills.stats import figure
from controller.drills.recovery import gone_from_every_vantage_point


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

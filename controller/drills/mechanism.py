"""The replay's mechanism: the drill's steps, its tasks, detection, the dashboard and the
restores, played on an incident clock against an Addressing API.

The live runner (controller.drills.runner) plays it on the lab clock against the lab's
API, with detection fed by the end hosts' probes. ``simulate`` plays the same code on a
simulated clock against the real API over a freshly seeded inventory, with the edge
(controller.edge) in memory and no BGP: a replay's controller-side figures in seconds,
for unit tests and the report's sensitivity table. What the network did (withdrawals on
the wire, path hunting, probe results) only the live runner measures.

Every headline figure follows from the mechanism, not from a count in the drill file:
- the task withdraws what the buggy handler returned, in the API's order, until the
  operators stop it: ``response`` after the resolver's website (the canary) failed, which
  it does once the task has removed the website's binding and the removal has reached the
  machines the probes land on;
- the dashboard restores what customers toggle, one click at a time, where the API lets
  them (a prefix with no service bound is refused);
- the revert re-advertises what kept a binding; the config push restores the rest, and its
  bindings reach the edge machine by machine.
"""

from __future__ import annotations

import random
import secrets
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Protocol

from controller.client import ApiClient, ApiError
from controller.drills import model as m
from controller.drills.automation import ExecContext, ExecRunner
from controller.drills.clock import DrillClock
from controller.drills.rundir import DrillState
from controller.drills.tasks import TASKS, CleanupRunner
from controller.inventory import cidr_of, prefix_id
from controller.observe.probe import CANARY_INTERVAL
from lab.errors import BgplabError

Log = Callable[..., None]

# The canary is probed every CANARY_INTERVAL lab seconds from each end host; it counts as
# failed after CONFIRM failed probes in a row.
CONFIRM = 3


class CanaryWatch:
    """Probe results of the canary in time order -> the incident time of the first failed
    probe of its first confirmed failure (CONFIRM failures in a row), or None."""

    def __init__(self, need: int = CONFIRM):
        self.need, self.run, self.run_start = need, 0, None
        self.confirmed: float | None = None

    def feed(self, incident: float, ok: bool) -> None:
        if self.confirmed is not None:
            return
        if ok:
            self.run, self.run_start = 0, None
            return
        if self.run == 0:
            self.run_start = incident
        self.run += 1
        if self.run >= self.need:
            self.confirmed = self.run_start


class Hooks(Protocol):
    """What only a live lab has: faults, and the network's figures at a checkpoint."""

    def fault(self, step: m.Fault) -> None: ...
    def network_now(self) -> dict[str, Any]: ...


@dataclass
class Toggle:
    at: float  # incident seconds
    account: str
    prefix: dict[str, str]  # id, cidr


@dataclass
class Mechanism:
    drill: m.Drill
    api: ApiClient
    st: DrillState
    log: Log
    timeline: DrillClock
    lab_now: Callable[[], float]  # the lab clock (time.time() live, simulated otherwise)
    hooks: Hooks | None = None
    tasks: dict[str, CleanupRunner] = field(default_factory=dict)
    original: dict[str, list[str]] = field(default_factory=dict)  # prefix -> services bound before the drill
    watch: CanaryWatch = field(default_factory=CanaryWatch)
    now: float = 0.0  # incident seconds
    offset: float = 0.0  # the running step's scheduled incident offset
    detect: m.Detect | None = None
    canary: str | None = None
    stop_at: float | None = None
    toggles: list[Toggle] = field(default_factory=list)
    checkpoints: list[dict[str, Any]] = field(default_factory=list)
    tokens: dict[str, str] = field(default_factory=dict)
    edge_speed: float | None = None
    targets: list[dict[str, Any]] = field(default_factory=list)  # the probes' targets (canary "auto" picks from them)
    resolver: dict[str, str | None] = field(default_factory=dict)  # the resolver's prefixes (GET /v1/lab/resolver)
    snapshots: dict[str, str] = field(default_factory=dict)  # a snapshot step's name -> the snapshot's id
    exec_context: ExecContext | None = None  # a live lab's, for exec tasks (a team's automation)

    def __post_init__(self) -> None:
        self.tasks = {n: (ExecRunner(n, spec, self.api, self.st, self.log, self.lab_now, context=self.exec_context)
                          if isinstance(spec, m.ExecTask) else
                          TASKS[spec.kind](n, spec, self.api, self.st, self.log, self.lab_now))
                      for n, spec in self.drill.tasks.items()}
        self.steps = sorted(((self.drill.offset(s), i, s) for i, s in enumerate(self.drill.steps)),
                            key=lambda x: (x[0], x[1]))
        self.end = self.drill.end_offset()

    # -- set-up ------------------------------------------------------------------

    def begin(self) -> None:
        """Before the clock starts: the bindings as they were, the inventory's size (inputs)."""
        for b in self.api.call("GET", "/v1/bindings")["result"]:
            self.original.setdefault(cidr_of(b["prefix_id"]), []).append(b["service"])
        # Each task acts with a token of its own (role task): the audit log names it, and it can
        # do what a task may and nothing an admin may.
        for name, task in self.tasks.items():
            if isinstance(task, ExecRunner):
                # A team's automation gets the scope the drill gives it; the runner keeps the
                # admin's client for what it reads about the run (the prefixes it is asked to touch).
                # Its token's name is this run's own (a lab may run several drills): the API's
                # records of what it did are read back by that name.
                scope = task.spec.scope
                token_name = f"automation-{name}-{secrets.token_hex(3)}"
                body = {"role": scope.role, "name": token_name, **({"account": scope.account} if scope.account else {})}
                task.token = self.api.call("POST", "/v1/lab/tokens", json=body)["result"]["token"]
                task.actor = f"{scope.role}:{token_name}"
                continue
            token = self.api.call("POST", "/v1/lab/tokens", json={"role": "task", "name": f"task:{name}"})["result"]["token"]
            task.api = self.api.as_token(token)
        accounts = self.api.call("GET", "/v1/accounts")["result"]
        self.st.byoip_customers = sum(1 for a in accounts if a["kind"] == "byoip")
        self.resolver = self.api.call("GET", "/v1/lab/resolver")["result"]

    # -- the clock ---------------------------------------------------------------

    @property
    def done(self) -> bool:
        return (not self.steps and not self.toggles and not any(t.running for t in self.tasks.values())
                and self.now >= self.end)

    def advance(self, now: float) -> None:
        """Everything due by incident time ``now``, in the order of the times it was due:
        steps, task cycles, the operators' stop, dashboard clicks. Each acts at its own time,
        so a coarse clock (the simulation's) and a fine one (the lab's) do the same things."""
        self._edge_pace(now)
        self._detection()
        for t in self.tasks.values():
            if isinstance(t, ExecRunner):
                t.poll()
        while True:
            due = []
            if self.steps:
                due.append((self.steps[0][0], 0, "step"))
            if self.stop_at is not None and self.tasks[self.detect.task].running:
                due.append((self.stop_at, 1, "stop"))
            due += [(t.next_cycle, 2, name) for name, t in self.tasks.items() if t.running]
            if self.toggles:
                due.append((self.toggles[0].at, 3, "toggle"))
            due = [d for d in due if d[0] <= now]
            if not due:
                break
            at, _, what = min(due)
            self.now = at
            if what == "step":
                self.offset, _, step = self.steps.pop(0)
                self.log("step", do=step.do, at=step.at, clock=self.clock(self.offset), label=step.label)
                self.st.marks.append({"t": self.lab_now(), "incident": self.offset, "label": step.label or step.do})
                getattr(self, f"_do_{step.do}")(step)
            elif what == "stop":
                self.tasks[self.detect.task].stop()
                self.st.detection["stopped"] = self.stop_at
                self.log("task_stopped", task=self.detect.task, clock=self.clock(self.stop_at),
                         withdrawn=len(self.st.withdrawn_by_task))
            elif what == "toggle":
                self._toggle(self.toggles.pop(0))
            else:
                self.tasks[what].cycle()
            self._detection()
        self.now = now
        if not self.steps and now >= self.end:
            for t in self.tasks.values():
                if isinstance(t, ExecRunner):
                    t.drill_over()
        self.st.tasks = {n: t.counts() for n, t in self.tasks.items()}

    def clock(self, incident_offset: float) -> str:
        return m.fmt_clock(m.parse_clock(self.drill.start) + incident_offset)

    def lab_at(self, incident_offset: float) -> float:
        """The lab clock time of an incident offset."""
        return self.st.t0 + self.timeline.lab(incident_offset)

    def _edge_pace(self, now: float) -> None:
        """The edge's delay and the guardrails' windows are incident time: in lab seconds they
        change with the drill's pace. The drill's guardrails replace the lab's (none: unguarded)."""
        speed = self.timeline.speed_at(now)
        if speed != self.edge_speed:
            self.edge_speed = speed
            self.api.call("PUT", "/v1/lab/edge", json={"delay": m.parse_duration(self.drill.edge.delay) / speed})
            settings = self.drill.guardrails.for_api(speed)
            self.api.call("PUT", "/v1/lab/guardrails", json=settings)
            if not self.st.guardrails:
                self.st.guardrails = settings

    def finish(self) -> None:
        """After the last step: what the change pipeline held and when the breaker tripped
        (controller), from the API's own records."""
        listing = self.api.call("GET", "/v1/changes", params={"status": "held", "limit": 10000})
        held = listing["result"]
        log: list[dict[str, Any]] = []
        while True:  # the whole audit log, a page at a time
            page = self.api.call("GET", "/v1/audit", params={"limit": 10000, "after": log[-1]["seq"] if log else 0})["result"]
            log += page
            if len(page) < 10000:
                break
        trips = [e for e in log if e["action"] == "breaker_tripped"]
        stages = [e for e in log if e["action"] in ("stage_started", "stage_promoted", "stage_rolled_back")]
        by: dict[str, dict[str, int]] = {}
        for c in held:
            g = by.setdefault(c["guardrail"], {"changes": 0, "withdraw": 0, "bindings_removed": 0})
            g["changes"] += 1
            g["withdraw"] += c["diff"].get("withdraw", 0)
            g["bindings_removed"] += c["diff"].get("bindings_removed", 0)
        self.st.pipeline = {
            "held": by,
            "breaker_trips": [{"incident": self.timeline.incident(e["at"] - self.st.t0), "change": e["change_id"],
                               "withdrawals": (e["detail"] or {}).get("withdrawals")} for e in trips],
            "totals": listing["totals"],
            # the staged rollout: each stage's start and decision, with the health it was judged on
            "stages": [{"t": e["at"], "incident": self.timeline.incident(e["at"] - self.st.t0), "action": e["action"],
                        "change": e["change_id"], "prefixes": e["prefixes"], "detail": e["detail"]} for e in stages],
        }
        for name, task in self.tasks.items():
            if isinstance(task, ExecRunner):
                self._automation_records(name, task, log)
        for e in self.st.pipeline["stages"]:
            if e["action"] == "stage_started":  # the prefixes each stage withdrew at its first PoP
                args = self.api.call("GET", f"/v1/changes/{e['change']}")["result"]["args"]
                e["cidrs"] = [cidr_of(i) for i in args.get("ids", [args.get("id")]) if i]

    def _automation_records(self, name: str, task: ExecRunner, log: list[dict[str, Any]]) -> None:
        """What an automation's token did, from the API's records (controller): the changes it
        made (their prefixes, into ``withdrawn_by_task`` for the network's figures) and the
        requests its scope refused."""
        limit = 10000
        mine = self.api.call("GET", "/v1/changes", params={"actor": task.actor, "full": "true", "limit": limit})["result"]
        kinds: dict[str, int] = {}
        for c in sorted(mine, key=lambda c: c["at"]):
            kinds[c["status"]] = kinds.get(c["status"], 0) + 1
            if c["status"] not in ("applied", "approved"):
                continue
            args = c["args"]
            if (c["kind"] == "bgp_status" and args.get("advertised") is False) or c["kind"] == "delete_prefix":
                for i in args.get("ids") or [args.get("id")]:
                    self.st.withdrawn_by_task.setdefault(cidr_of(i), c["at"])
        denied = [e for e in log if e["action"] == "denied" and e["actor"] == task.actor]
        self.st.automation_api[name] = {
            "actor": task.actor, "changes": kinds,
            # the listing's limit reached: its oldest changes were not read (withdrawn_in_network, from
            # the MRT, still counts everything the network saw)
            "changes_read_in_full": len(mine) < limit,
            "denied": len(denied), "denied_examples": [e["detail"] for e in denied[:5]],
        }

    # -- detection ---------------------------------------------------------------

    def canary_result(self, incident: float, ok: bool) -> None:
        """One probe of the canary (the observer's part: live probes, or the simulation's)."""
        self.watch.feed(incident, ok)

    def _detection(self) -> None:
        """Once the canary's failure is confirmed: the operators will stop the task ``response``
        after its first failed probe (``advance`` stops it at that time)."""
        if self.detect is None or self.watch.confirmed is None or "failed" in self.st.detection:
            return
        self.st.detection["failed"] = self.watch.confirmed
        self.stop_at = self.watch.confirmed + m.parse_duration(self.detect.response)
        self.log("canary_failed", canary=self.canary, clock=self.clock(self.watch.confirmed))

    def pick_canary(self, step: m.Detect, targets: list[dict[str, str]]) -> str:
        if step.canary == "resolver":
            if not self.resolver.get("web"):
                raise BgplabError(f"step {step.at}: the canary 'resolver' needs a lab with BYOIP pools (the resolver's "
                                  "website is the first BYOIP prefix); name a prefix as the canary instead")
            return self.resolver["web"]
        if step.canary == "first":
            return self.api.prefixes(byoip=True, limit=1)[0]["cidr"]
        if step.canary != "auto":
            return step.canary
        probed = {t["prefix"] for t in targets}
        return next(x["cidr"] for x in self.api.prefixes(byoip=True) if x["cidr"] in probed)

    # -- step handlers: one per step kind (model.step_kinds) ---------------------

    def _do_behaviour(self, step: m.SetBehaviour) -> None:
        try:
            self.api.call("PUT", "/v1/lab/behaviour", json={"pending_delete_bug": step.pending_delete_bug})
        except ApiError as e:
            if e.status != 409:
                raise
            # the strict_api guardrail keeps the 2026-02-20 handler out
            self.log("behaviour_refused", status=e.status, error=str(e)[:200])

    def _do_snapshot(self, step: m.TakeSnapshot) -> None:
        snap = self.api.call("POST", "/v1/snapshots", json={"label": step.name})["result"]
        self.snapshots[step.name] = snap["id"]
        self.log("snapshot", name=step.name, snapshot=snap["id"], announced=snap["announced"])

    def _do_restore(self, step: m.RestoreSnapshot) -> None:
        """Operational state back as the snapshot had it: one change, packed on the wire."""
        sid = self.snapshots[step.snapshot]
        current = {x["cidr"]: x for x in self.api.prefixes()}
        back = [c for c in self.st.affected() if c in current and not current[c]["advertised"]]
        sent = self.lab_now()
        try:
            r = self.api.call("POST", f"/v1/snapshots/{sid}/restore")["result"]
        except ApiError as e:
            if e.status != 409:
                raise
            self.log("restore_refused", snapshot=sid, status=e.status, error=str(e)[:200])
            return
        for c in back:
            self.st.restore_times.setdefault(c, sent)
        self.st.restore_requests.setdefault("snapshot", []).extend(back)
        self.st.snapshot_restores.append({"t": sent, "snapshot": sid, "change": r["change"], "prefixes": r["prefixes"],
                                          "diff": r["diff"]})
        self.log("restore", how="snapshot", snapshot=sid, prefixes=len(back), changed=r["prefixes"])

    def _do_task_start(self, step: m.TaskStart) -> None:
        self.tasks[step.task].start(self.now)

    def _do_task_stop(self, step: m.TaskStop) -> None:
        self.tasks[step.task].stop()

    def _do_detect(self, step: m.Detect) -> None:
        self.detect = step
        self.canary = self.pick_canary(step, self.targets)
        self.st.detection = {"canary": self.canary, "armed": self.offset}

    def _do_dashboard(self, step: m.Dashboard) -> None:
        """A share of the affected customers open the dashboard, each at a moment of the window,
        and toggle their withdrawn prefixes one click at a time, with their own credentials."""
        if not self.tokens:
            self.tokens = self.api.call("GET", "/v1/lab/credentials")["result"]
        affected = [x for x in self.api.prefixes(byoip=True, advertised=False) if x["cidr"] in self.st.withdrawn_by_task]
        per_account: dict[str, list[dict[str, str]]] = {}
        for x in affected:  # the API's order: what the customer's dashboard lists
            per_account.setdefault(x["account_id"], []).append({"id": x["id"], "cidr": x["cidr"]})
        accounts = sorted(per_account)
        rng = random.Random(step.seed)
        chosen = sorted(rng.sample(accounts, round(len(accounts) * step.fraction))) if accounts else []
        window, click = m.parse_duration(step.window), m.parse_duration(step.click)
        for acct in chosen:
            start = self.now + rng.random() * window
            self.toggles += [Toggle(start + k * click, acct, p) for k, p in enumerate(per_account[acct])]
        self.toggles.sort(key=lambda t: t.at)
        self.st.dashboard_customers = len(chosen)
        self.log("dashboard", customers=len(chosen), of_customers=len(accounts), toggles=len(self.toggles))

    def _toggle(self, t: Toggle) -> None:
        """One click: the customer's own token, their own prefix; the API may refuse it."""
        headers = {"Authorization": f"Bearer {self.tokens[t.account]}"}
        current = self.api.call("GET", f"/v1/prefixes/{t.prefix['id']}", headers=headers)["result"]
        if current["advertised"]:
            return  # back already (the revert): nothing for the customer to click
        sent = self.lab_now()
        try:
            self.api.call("PATCH", f"/v1/prefixes/{t.prefix['id']}/bgp/status", json={"advertised": True},
                          headers=headers)
        except ApiError as e:
            if e.status >= 500:
                raise
            self.st.dashboard_refused += 1
            self.log("dashboard_refused", prefix=t.prefix["cidr"], account=t.account, status=e.status, error=str(e)[:200])
            return
        self.st.restore_requests.setdefault("dashboard", []).append(t.prefix["cidr"])
        self.st.restore_times.setdefault(t.prefix["cidr"], sent)

    def _do_revert(self, step: m.Revert) -> None:
        """The change reverted: every withdrawn prefix that kept a binding is advertised again."""
        current = {x["cidr"]: x for x in self.api.prefixes()}
        todo = [current[c] for c in self.st.affected() if c in current and not current[c]["advertised"]
                and current[c]["bindings"] > 0]
        if todo:
            sent = self.lab_now()
            self.api.set_advertised(True, ids=[x["id"] for x in todo])
            for x in todo:
                self.st.restore_times.setdefault(x["cidr"], sent)
        self.st.restore_requests.setdefault("revert", []).extend(x["cidr"] for x in todo)
        self.log("restore", how="revert", prefixes=len(todo))

    def _do_config_push(self, step: m.ConfigPushStep) -> None:
        """Every prefix the drill touched gets its bindings back and is advertised; the bindings
        reach the machines one after another, ``per_machine`` apart."""
        current = {x["cidr"]: x for x in self.api.prefixes()}
        touched = list(dict.fromkeys([*self.st.affected(), *self.st.bindings_removed]))
        items, readvertised = [], []
        for cidr in touched:
            x = current.get(cidr)
            if x is None:
                continue
            items.append({"id": x["id"], "services": self.original.get(cidr) or ["cdn"]})
            if not x["advertised"]:
                readvertised.append(cidr)
        if items:
            order = self.api.call("GET", "/v1/lab/edge")["result"]["order"]
            per = m.parse_duration(step.per_machine)
            rollout = [{"machine": mach, "at": self.lab_at(self.offset + (k + 1) * per)} for k, mach in enumerate(order)]
            sent = self.lab_now()
            self.api.call("POST", "/v1/lab/config_push", json={"prefixes": items, "rollout": rollout})
            for c in readvertised:
                self.st.restore_times.setdefault(c, sent)
        self.st.restore_requests.setdefault("config_push", []).extend(readvertised)
        self.log("restore", how="config_push", prefixes=len(readvertised), bindings_for=len(items))

    def _do_api(self, step: m.Api) -> None:
        sent = self.lab_now()  # the change starts reaching the network before the call returns
        try:
            body = self.api.call(step.method, step.path, json=step.json_body)
        except ApiError as e:
            self.log("api_error", path=step.path, status=e.status, error=str(e))
            return
        # Prefixes an API step withdrew or advertised count as the drill's own changes.
        if step.method != "PATCH" or not step.path.rstrip("/").endswith("bgp/status"):
            return
        result = body.get("result", {})
        ids = result.get("ids") or ([step.path.split("/")[3]] if step.path.count("/") == 5 else [])
        affected = self.st.affected()  # once, not per prefix: a bulk restore names thousands
        for prefix_ident in ids:
            cidr = cidr_of(prefix_ident)
            if result.get("advertised") is False:
                self.st.withdrawn_by_api[cidr] = sent
            elif cidr in affected:
                self.st.restore_times.setdefault(cidr, sent)
                self.st.restore_requests.setdefault("api", []).append(cidr)

    def _do_deletion_requests(self, step: m.DeletionRequests) -> None:
        """Customers flag prefixes for deletion (the work a cleanup automation is asked to do):
        BYOIP, advertised, not pinned, not a probe target, drawn with the step's seed."""
        probed = {t["prefix"] for t in self.targets} | {self.resolver.get("web"), self.resolver.get("dns")}
        pool = [x for x in self.api.prefixes(byoip=True, advertised=True)
                if not x["pinned"] and not x["pending_delete"] and x["cidr"] not in probed]
        if len(pool) < step.count:
            raise BgplabError(f"step {step.at}: {step.count} deletion requests asked, {len(pool)} prefixes can take one")
        chosen = sorted(random.Random(step.seed).sample(pool, step.count), key=lambda x: x["cidr"])
        for x in chosen:
            self.api.call("POST", f"/v1/prefixes/{x['id']}/deletion_request")
        self.st.deletion_requests += [x["cidr"] for x in chosen]
        self.log("deletion_requests", prefixes=len(chosen), accounts=len({x["account_id"] for x in chosen}))

    def _do_api_fault(self, step: m.ApiFaultStep) -> None:
        """The API misbehaves towards an automation's token for the step's duration (lab seconds
        at the drill's pace there)."""
        name = step.task or next(n for n, t in self.tasks.items() if isinstance(t, ExecRunner))
        task = self.tasks[name]
        seconds = self.timeline.lab(self.offset + m.parse_duration(step.duration)) - self.timeline.lab(self.offset)
        self.api.call("PUT", "/v1/lab/faults/api", json={"kind": step.kind, "seconds": max(seconds, 0.001),
                                                         "delay": step.delay, "actor": task.actor})
        self.log("api_fault", fault=step.kind, task=name, lab_seconds=round(seconds, 3), delay=step.delay)

    def _do_fault(self, step: m.Fault) -> None:
        if self.hooks is None:
            raise BgplabError(f"step {step.at}: a fault needs a live lab; the mechanism alone has no network")
        self.hooks.fault(step)

    def _do_mark(self, step: m.Mark) -> None:
        """A label on the timeline; it measures nothing and ends nothing."""

    def _do_checkpoint(self, step: m.Checkpoint) -> None:
        from controller.drills.analysis import check

        net = self.hooks.network_now() if self.hooks else {}
        impact = impact_states(self.api.prefixes(byoip=True, advertised=False), self.original)
        now = {
            "observer_end": net.get("observer"),
            "withdrawn_by_task": len(self.st.withdrawn_by_task),
            "impact_withdrawn_only": impact.get("withdrawn_only"),
            "impact_some_bindings": impact.get("some_bindings"),
            "impact_all_bindings": impact.get("all_bindings"),
            "restored_by_revert": len(self.st.restore_requests.get("revert", [])),
            "restored_by_config_push": len(self.st.restore_requests.get("config_push", [])),
        }
        figures = {k: {"value": v, "source": "network" if k == "observer_end" else "controller"} for k, v in now.items()}
        if not self.hooks:  # no network here: only the controller's figures are checked
            figures = {k: v for k, v in figures.items() if v["source"] == "controller"}
        self.checkpoints += check(step.expect, figures, prefix=f"{step.label or step.at}: ")


def impact_states(withdrawn: list[dict[str, Any]], original: dict[str, list[str]]) -> dict[str, int]:
    """The postmortem's three states of the withdrawn BYOIP prefixes (``withdrawn``, as the API
    lists them), against the bindings they had before the drill."""
    impact = {"withdrawn_only": 0, "some_bindings": 0, "all_bindings": 0}
    for p in withdrawn:
        had = len(original.get(p["cidr"], []))
        if p["bindings"] == 0 and had:
            impact["all_bindings"] += 1
        elif p["bindings"] < had:
            impact["some_bindings"] += 1
        else:
            impact["withdrawn_only"] += 1
    return impact


def _check_handlers() -> None:
    missing = [k for k in m.step_kinds() if not hasattr(Mechanism, f"_do_{k}")]
    assert not missing, f"step kinds without a handler: {missing}"


_check_handlers()


# -- the mechanism alone: the real API and inventory, a simulated clock, no BGP -------------

# Each knob the sensitivity table moves: its name, where it lives in the drill, how to read
# and set it. Values move by a relative step; integers round (and move by at least 1).
KNOBS: dict[str, str] = {
    "batch": "task: prefixes withdrawn per cycle",
    "every": "task: cycle period",
    "bindings_per_cycle": "task: binding removals per cycle",
    "response": "operators: time from the canary's failure to the task's stop",
    "fraction": "dashboard: share of affected customers who use it",
    "inventory_seed": "inventory: the seed of customers, onboarding and bindings",
}
HEADLINES = ("withdrawn", "restored_by_revert", "restored_by_config_push")


def with_knob(drill: m.Drill, knob: str, factor: float) -> tuple[m.Drill, Any]:
    """``drill`` with one knob multiplied by ``factor`` (the seed moves by +/-1 instead); and its new value."""
    if knob == "inventory_seed":
        value = drill.edge.inventory_seed + (1 if factor > 1 else -1)
        return drill.model_copy(update={"edge": drill.edge.model_copy(update={"inventory_seed": value})}), value
    if knob in ("batch", "every", "bindings_per_cycle"):
        name, spec = next(iter(drill.tasks.items()))
        old = getattr(spec, knob)
        if knob == "every":
            value: Any = f"{m.parse_duration(old) * factor:g}s"
        else:
            value = max(1, round(old * factor)) if round(old * factor) != old else old + (1 if factor > 1 else -1)
        return drill.model_copy(update={"tasks": {**drill.tasks, name: spec.model_copy(update={knob: value})}}), value
    kind = {"response": m.Detect, "fraction": m.Dashboard}[knob]
    steps = []
    value = None
    for s in drill.steps:
        if isinstance(s, kind):
            old = getattr(s, knob)
            value = f"{m.parse_duration(old) * factor:g}s" if knob == "response" else round(min(1.0, old * factor), 4)
            s = s.model_copy(update={knob: value})
        steps.append(s)
    if value is None:
        raise BgplabError(f"the drill '{drill.name}' has no {kind.__name__.lower()} step to move '{knob}' in")
    return drill.model_copy(update={"steps": steps}), value


_PLANS: dict[Path, Any] = {}


def _plan(topology: Path):
    from lab.plan import build_plan
    from lab.topology import load_topology

    if topology not in _PLANS:
        _PLANS[topology] = build_plan(load_topology(topology), "mechanism")
    return _PLANS[topology]


def simulate(drill: m.Drill, topology: Path, *, speed: float | None = None, realtime: bool = True,
             workdir: Path | None = None) -> dict[str, Any]:
    """Play ``drill``'s mechanism against the real Addressing API over a fresh inventory seeded
    with the drill's ``edge.inventory_seed``, the edge in memory, on a simulated clock. No BGP:
    a prefix is reachable while the API has it advertised. Returns the controller's figures."""
    from fastapi.testclient import TestClient

    from controller.api import Behaviour, create_app
    from controller.edge import Edge
    from controller.inventory import Inventory

    plan = _plan(Path(topology))
    speed = speed or drill.speed
    timeline = drill.clock(speed, realtime)
    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        inv = Inventory(Path(tmp) / "inventory.sqlite")
        inv.seed(plan, seed=drill.edge.inventory_seed)
        initial: dict[str, list[str]] = {}
        for b in inv.bindings():
            initial.setdefault(cidr_of(b.prefix_id), []).append(b.service)
        pops = [n.name for n in plan.speakers() if plan.originated_by(n.name)]
        lab = [0.0]
        edge = Edge({p: drill.edge.machines_per_pop for p in pops}, initial, seed=drill.edge.seed, clock=lambda: lab[0])
        # Entered once: one event loop for every request (a request outside it starts its own).
        admin = {"Authorization": f"Bearer {inv.create_token('admin', 'mechanism')}"}
        client = TestClient(create_app(inv, lambda changed: {}, Behaviour(), edge=edge, clock=lambda: lab[0]),
                            headers=admin).__enter__()
        st = DrillState(speed=speed, start=drill.start, realtime=realtime)
        st.t0 = 1_000_000.0  # any epoch: the lab clock here is simulated
        events: list[dict[str, Any]] = []
        mech = Mechanism(drill, ApiClient("mechanism", http=client), st,
                         lambda kind, **d: events.append({"incident": mech.now, "kind": kind, **d}),
                         timeline, lambda: lab[0])
        mech.begin()
        hosts = max(1, len(plan.hosts()))
        changes = client.app.state.changes
        changes.health = _model_health(changes, edge, plan, inv, drill, hosts)
        rng = random.Random(f"probes:{drill.edge.seed}")
        impact_at_stop: dict[str, int] = {}
        incident = 0.0
        deadline = drill.end_offset() + 86400
        while True:
            lab[0] = st.t0 + timeline.lab(incident)
            edge.tick(lab[0])
            changes.tick()
            if mech.canary:
                reachable = inv.get(prefix_id(mech.canary)).advertised
                for _ in range(hosts):  # each end host probes the canary once a round
                    mech.canary_result(incident, reachable and edge.serves(rng.choice(edge.machines), mech.canary, "cdn"))
            mech.advance(incident)
            if mech.detect and not impact_at_stop and not any(t.running for t in mech.tasks.values()):
                impact_at_stop = impact_states(mech.api.prefixes(byoip=True, advertised=False), mech.original)
            if mech.done:
                break
            if incident > deadline:
                raise BgplabError(f"the mechanism of '{drill.name}' did not end within a day of its last step")
            # The probes' clock until detection; after it nothing depends on the step (advance
            # runs every event at its own time), so the simulation strides a minute at a time.
            watching = mech.canary is not None and "failed" not in st.detection
            incident += CANARY_INTERVAL * timeline.speed_at(incident) if watching else 60.0
        mech.finish()
        # Measured on the edge: did every machine end with the API's bindings, and when did the
        # last of them arrive (after the push, its rollout's last machine)?
        lagging = sum(edge.lagging().values())
        edge_done = edge.last_due
        client.__exit__(None, None, None)
        inv.close()
    withdrawn = st.withdrawn_by_task
    customers = {st.owners[c] for c in withdrawn if c in st.owners}
    return {
        "speed": speed,
        "inventory_seed": drill.edge.inventory_seed,
        "withdrawn": len(withdrawn),
        "refused_by_api": sum(t.get("refused", 0) for t in st.tasks.values()),
        "affected_customers": len(customers),
        "byoip_customers": st.byoip_customers,
        "affected_customer_share": round(len(customers) / st.byoip_customers, 4) if st.byoip_customers else None,
        "impact_at_stop": impact_at_stop,
        "dashboard_customers": st.dashboard_customers,
        "dashboard_toggles_ok": len(st.restore_requests.get("dashboard", [])),
        "dashboard_refused": st.dashboard_refused,
        "restored_by_revert": len(st.restore_requests.get("revert", [])),
        "restored_by_config_push": len(st.restore_requests.get("config_push", [])),
        "canary_failed": mech.clock(st.detection["failed"]) if "failed" in st.detection else None,
        "task_stopped": mech.clock(st.detection["stopped"]) if "stopped" in st.detection else None,
        "edge_lagging_at_end": lagging,
        "held": st.pipeline["held"],
        "breaker_tripped": mech.clock(st.pipeline["breaker_trips"][0]["incident"]) if st.pipeline["breaker_trips"] else None,
        "stages_promoted": sum(1 for e in st.pipeline["stages"] if e["action"] == "stage_promoted"),
        "stages_rolled_back": sum(1 for e in st.pipeline["stages"] if e["action"] == "stage_rolled_back"),
        "restored_by_snapshot": len(st.restore_requests.get("snapshot", [])),
        "edge_last_change": mech.clock(timeline.incident(edge_done - st.t0)) if edge_done is not None else None,
    }


# The product a probe checks -> the service bound for it at the edge (DNS needs none).
PROBED_SERVICE = {"cdn": "cdn", "resolver_web": "cdn", "spectrum": "spectrum", "magic_transit": "magic_transit", "dns": None}


def _model_health(changes: Any, edge: Any, plan: Any, inv: Any, drill: m.Drill, hosts: int) -> Callable:
    """The staged rollout's health signal without a network: the probes the live lab would make
    (controller.service.probe_targets, same seed), each end host once per target, on prefixes some
    PoP announces. A probe fails where the stage's PoP announces the prefix and one of its machines
    does not serve the probed service (a 403 there); elsewhere traffic finds the prefix."""
    from controller.service import probe_targets

    targets = probe_targets(plan, inv, drill.edge.inventory_seed, drill.probes)

    def health(since: float, until: float) -> dict[str, Any]:
        stage = changes.stage
        announced = changes.announced_anywhere()
        at_pop = changes.state.announced.get(stage["pop"], set())
        machines = [x for x in edge.machines if x.rpartition("/")[0] == stage["pop"]]
        total = bad = 0
        for t in targets:
            if t["prefix"] not in announced:
                continue
            total += hosts
            service = PROBED_SERVICE[t["product"]]
            if service and t["prefix"] in at_pop and not all(edge.serves(x, t["prefix"], service) for x in machines):
                bad += hosts
        return {"total": total, "not_ok": bad, "basis": "the mechanism's model of the probes (no network)"}

    return health


def sensitivity(drill: m.Drill, topology: Path, *, step: float = 0.10, speed: float | None = None) -> dict[str, Any]:
    """Each knob moved by -step and +step alone; each headline figure's change against the
    shipped knobs, as a share."""
    moves = [(knob, factor, *with_knob(drill, knob, factor)) for knob in KNOBS for factor in (1 - step, 1 + step)]
    results = simulate_many([(drill, topology, speed)] + [(d, topology, speed) for _, _, d, _ in moves])
    base = results[0]
    rows = []
    for (knob, factor, _, value), r in zip(moves, results[1:]):
        rows.append({"knob": knob, "what": KNOBS[knob], "factor": factor, "value": value,
                     **{h: r[h] for h in HEADLINES},
                     "change": {h: round((r[h] - base[h]) / base[h], 4) if base[h] else None for h in HEADLINES}})
    return {"base": base, "step": step, "rows": rows,
            "largest_change": max(abs(c) for r in rows for c in r["change"].values() if c is not None)}


def _simulate_job(job: tuple[m.Drill, Path, float | None]) -> dict[str, Any]:
    drill, topology, speed = job
    return simulate(drill, topology, speed=speed)


def simulate_many(jobs: list[tuple[m.Drill, Path, float | None]], workers: int | None = None) -> list[dict[str, Any]]:
    """Several simulations, one process each on as many cores as there are (each is CPU-bound
    and independent); results in the order of ``jobs``."""
    import os
    from concurrent.futures import ProcessPoolExecutor

    workers = workers or min(len(jobs), os.cpu_count() or 1)
    if workers <= 1:
        return [_simulate_job(j) for j in jobs]
    import multiprocessing

    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork")) as pool:
        return list(pool.map(_simulate_job, jobs))

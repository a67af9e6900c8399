"""The replay's mechanism: the drill's steps, its tasks, detection, the dashboard and the
restores, played on an incident clock against an Addressing API.

The live runner (controller.drills.runner) plays it on the lab clock against the lab's
API, with detection fed by the end hosts' probes. controller.drills.simulation plays the same code on a
simulated clock against the real API over a freshly seeded inventory, with the edge
(controller.edge) in memory and no BGP: a replay's controller-side figures in seconds,
for unit tests and the report's sensitivity table. What the network did (withdrawals on
the wire, path hunting, probe results) only the live runner measures.

No headline figure is a count written in the drill file; each comes out of the mechanism. But
the knobs that drive it (the batch, the binding removals per cycle, the operators' response,
the push's pace) were derived from the incident's own headline figures, so those figures are
calibrated (the drill file's ``calibration:`` says which), and meeting them is not agreement
with the day. What no knob fixes is emergent: who was hit, which products failed and when, the
403s, the refusals. What comes out of the mechanism:
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

import secrets
from dataclasses import dataclass, field
from typing import Any, Callable, Protocol

from controller.client import ApiClient
from controller.drills import model as m, steps as sp
from controller.drills.automation import ExecContext, ExecRunner
from controller.drills.clock import DrillClock
from controller.drills.events import StepEvents, Toggle
from controller.drills.rundir import DrillState
from controller.drills.tasks import TASKS, CleanupRunner
from controller.inventory import cidr_of
from lab.errors import BgplabError

Log = Callable[..., None]

REFUSED_KEPT = 200  # an automation's refused requests named one by one in its grade

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

    def fault(self, step: sp.Fault) -> None: ...
    def network_now(self) -> dict[str, Any]: ...


@dataclass
class Mechanism(StepEvents):
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
    detect: sp.Detect | None = None
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

    def played(self) -> float:
        """Now on the drill's clock as played: the lab's time converted by the drill's pace (a
        scheduled time can differ when the controller's own work runs behind the pace)."""
        return round(self.timeline.incident(self.lab_now() - self.st.t0), 1)

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
                # incident: when it was scheduled; played: when it ran, the lab's time on the drill's clock
                self.st.marks.append({"t": self.lab_now(), "incident": self.offset, "played": self.played(),
                                      "label": step.label or step.do})
                getattr(self, f"_do_{step.do}")(step)
            elif what == "stop":
                self.tasks[self.detect.task].stop()
                self.st.detection["stopped"] = self.stop_at  # scheduled: the failure plus the response
                self.st.detection["stopped_played"] = self.played()
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
        return self.timeline.text(incident_offset)

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
        # Requests with no token of the lab's (a guessed or derived one) name no caller; the API
        # records the local user whose socket made them, and the automation runs as a user of
        # its own: those from that user while its runs went on are its.
        runs = [r for r in self.st.automation if r["task"] == name]
        unauthorized = [] if task.user is None or not runs else [
            e for e in log if e["action"] == "unauthorized" and (e["detail"] or {}).get("uid") == task.user.pw_uid
            and runs[0]["started"] - 1 <= e["at"] <= max(r["ended"] for r in runs) + 1]
        # (every exec task of a drill runs as that one user: a 401 in the windows of two is one request)
        refused = [{"seq": e["seq"], "status": 403, **{k: e["detail"][k] for k in ("method", "path", "error")}}
                   for e in denied]
        refused += [{"seq": e["seq"], "status": 401, **{k: e["detail"][k] for k in ("method", "path", "error")}}
                    for e in unauthorized]
        self.st.automation_api[name] = {
            "actor": task.actor, "changes": kinds,
            # the listing's limit reached: its oldest changes were not read (withdrawn_in_network, from
            # the MRT, still counts everything the network saw)
            "changes_read_in_full": len(mine) < limit,
            "denied": len(denied), "unauthorized": [e["seq"] for e in unauthorized] if task.user is not None else None,
            "run_as": task.spec.run_as, "refused": refused[:REFUSED_KEPT],
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

    def pick_canary(self, step: sp.Detect, targets: list[dict[str, str]]) -> str:
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


def _check_handlers() -> None:
    missing = [k for k in m.step_kinds() if not hasattr(Mechanism, f"_do_{k}")]
    assert not missing, f"step kinds without a handler: {missing}"


_check_handlers()

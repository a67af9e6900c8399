"""The drill runner: plays a drill on a live lab into a run directory.

The drill is a mechanism, not a script of results (controller.drills.mechanism: the
cleanup task asks the API what to delete and deletes what comes back; detection reacts to
the canary's probes failing; customers re-advertise where the API lets them). The runner
brings the lab up, feeds the mechanism the lab clock and the probes, and keeps what the
network showed (MRT, captures, samples, probes) beside what the controller did; the
analysis keeps the two apart.

A run ends in one of ``rundir.OUTCOMES``: completed; interrupted (SIGINT or SIGTERM: the
task stops, the lab goes, what there is gets reported); overrun (the drill passed its
maximum duration); failed (an error, reported with what was recorded until then).
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import Any, Callable

from controller import launch
from controller.client import ApiClient, ApiError
from controller.drills import model as m
from controller.drills.automation import ExecContext, ExecRunner
from controller.drills.captures import merge_run_captures
from controller.drills.interrupts import DrillInterrupted, DrillOverrun
from controller.drills.live import LiveHooks, Sampler, lab_facts, lost_daemons
from controller.drills.mechanism import Mechanism
from controller.drills.rundir import DrillState, RunDir, RunRecord
from controller.inventory import cidr_of
from controller.observe.tail import JsonlTail
from controller.paths import observe_dir
from lab import capture, lifecycle
from lab.errors import BgplabError
from lab.kinds import router_of
from lab.plan import LabPlan
from lab.running import PLANS_BUILT, RunningLab
from lab.state import LabState

Progress = Callable[[str], None]


class DrillRunner:
    def __init__(self, drill: m.Drill, topology: Path, run_dir: Path, *, lab: str | None = None,
                 speed: float | None = None, progress: Progress | None = None, keep: bool = False,
                 runtime: str = "netns", realtime: bool = True, automation: str | None = None,
                 drill_dir: Path | None = None, on_ready: Callable[[ApiClient, str], None] | None = None,
                 status: Callable[[dict[str, Any], str], None] | None = None, implementation: str | None = None):
        self.drill, self.topology, self.rd = drill, topology, RunDir(run_dir)
        self.implementation = implementation  # every router but the collector run by it (lab.routers)
        self.runtime = runtime
        self.speed = speed or drill.speed
        self.lab = lab or f"drill{int(time.time()) % 100000}"
        # A lab that is up already (bgplab up; bgplab drill run --lab it): the drill runs on it
        # and leaves it as it found it (its operational state restored, its settings put back).
        self.attached = lab is not None and LabState.load(lab) is not None
        self.keep = keep or self.attached
        self.automation = automation  # --automation: the command every exec task runs
        self.drill_dir = drill_dir or Path.cwd()
        self.mech: Mechanism | None = None
        self.graded = any(isinstance(t, m.ExecTask) for t in drill.tasks.values())  # a team's automation
        self.found: dict[str, Any] = {}  # an attached lab's settings and snapshot before the drill
        self.on_ready = on_ready  # called once the lab's API answers (the dashboard's address)
        self.status = status  # once a second: the drill's status and its plain line (controller.drills.terminal)
        self.progress = progress or (lambda s: None)
        self.st = DrillState(speed=self.speed, start=drill.start, realtime=realtime)
        self.timeline = drill.clock(self.speed, realtime)  # incident <-> lab seconds, windows at speed 1
        self.record = RunRecord(None, self.st)
        self.events = None
        self.sampler: Sampler | None = None
        self.running: RunningLab | None = None  # one handle to the lab, opened once, passed on
        self.api: ApiClient | None = None  # one client of its API, likewise
        self.checkpoints: list[dict[str, Any]] = []

    # incident clock <-> lab time
    def incident_now(self) -> float:
        return self.timeline.incident(time.time() - self.st.t0) if self.st.t0 else 0.0

    def clock(self, incident_offset: float) -> str:
        return self.timeline.text(incident_offset)

    def log(self, kind: str, **data: Any) -> None:
        rec = {"t": time.time(), "incident": round(self.incident_now(), 1), "kind": kind, **data}
        self.events.write(json.dumps(rec) + "\n")
        self.events.flush()

    def run(self) -> RunRecord:
        """Bring the lab up, play the drill, collect, bring the lab down. The record says how
        the run ended; an error or interrupt is re-raised after everything is collected."""
        plans_before = PLANS_BUILT["count"]
        if self.attached:  # a lab that cannot run the drill is said before anything is made
            self.running = RunningLab.open(self.lab)
            state = self.running.state
            self.runtime = state.runtime
            self.api = ApiClient(self.lab)
            try:
                self._check_attached(state, self.api)
            except BaseException:
                self.api.close()
                raise
        self.rd.path.mkdir(parents=True, exist_ok=True)
        self.events = open(self.rd.events, "a")
        self.rd.drill.write_text(json.dumps(
            {**self.drill.model_dump(mode="json", by_alias=True), "speed": self.speed}, indent=2))
        if self.attached:
            self.progress(f"running on lab '{self.lab}', which is up; it is left as the drill found it")
            self.record.lab = lab_facts(self.lab, self.runtime, state.router_versions, state,
                                        self.running.plan)
        else:
            self.progress(f"bringing up lab '{self.lab}' from {self.topology.name} ({self.runtime} runtime)")
            edge = self.drill.edge
            controller: list[int] = []

            def start_controller(state: LabState, plan: LabPlan) -> None:
                # as `bgplab up` does: the controller readies itself while the lab converges
                controller.append(launch.spawn(
                    state, seed=edge.inventory_seed, probes=self.drill.probes,
                    probe_prefixes=self.drill.canaries(plan), machines=edge.machines_per_pop, edge_seed=edge.seed,
                    during_up=True))

            topology = self.drill.topology_with_timers(self.topology, self.rd.topology)
            up = lifecycle.up(topology, self.lab, runtime=self.runtime, progress=self.progress,
                              daemons_started=start_controller, implementation=self.implementation)
            self.running = up.running()  # opened once, with the plan `up` built; every step uses it
            state = self.running.state
            self.record.lab = lab_facts(self.lab, self.runtime, up.router_versions, state, up.plan)
        problems: list[str] = []
        try:
            if self.attached:
                self._found(self.api)
            else:
                launch.wait(self.running.state, controller[0])
                self.api = ApiClient(self.lab)
            if self.drill.capture:
                started = capture.start(self.running, self.rd.captures, each_link_once=True, bgp_only=True)
                self.st.captures = {}
                for c in started:
                    self.st.captures.setdefault(c["node"], []).append(Path(c["file"]).name)
            self._play(self.api, state)
        except BaseException as e:
            self.record.outcome = ("interrupted" if isinstance(e, (DrillInterrupted, KeyboardInterrupt))
                                   else "overrun" if isinstance(e, DrillOverrun) else "failed")
            self.record.error = str(e) or type(e).__name__
            raise
        finally:
            if self.sampler is not None:
                self.sampler.stop()
            # Every step of the cleanup runs; their failures are reported together, after
            # (never instead of) the error that ended the run.
            for what, step in (("ending the automation", self._end_automation),
                               ("stopping the captures", self._stop_captures), ("collecting", lambda: self._collect(state)),
                               ("putting the lab back as it was found", self._put_back),
                               ("bringing the lab down", self._down), ("merging the captures", self._merge)):
                try:
                    step()
                except Exception as e:  # noqa: BLE001 - collected and reported below
                    problems.append(f"{what}: {e}")
            if self.api is not None:
                self.api.close()
            if problems:
                self.record.error = "; ".join(filter(None, [self.record.error, *problems]))
                if self.record.outcome == "completed":
                    self.record.outcome = "failed"
            self.st.plans_built = PLANS_BUILT["count"] - plans_before
            self.rd.write_record(self.record)
            self.events.close()
        if problems:
            raise BgplabError(f"drill '{self.drill.name}': " + "; ".join(problems))
        return self.record

    def _check_attached(self, state: LabState, api: ApiClient) -> None:
        """A lab that is up can run the drill when it is the drill's own: its topology, with the
        controller running and the edge the drill describes."""
        theirs = state.topology_file
        if theirs and Path(theirs).resolve() != self.topology.resolve():
            raise BgplabError(f"lab '{self.lab}' runs {theirs}; drill '{self.drill.name}' is for {self.topology}: bring "
                              f"it up from that file, or let the drill bring up its own lab (no --lab)")
        if self.drill.timers is not None:
            raise BgplabError(f"drill '{self.drill.name}' sets its own BGP timers: it needs a lab of its own (no --lab)")
        machines = api.call("GET", "/v1/lab/edge")["result"]["machines"]
        per_pop: dict[str, int] = {}
        for mach in machines:
            pop = mach.rpartition("/")[0]
            per_pop[pop] = per_pop.get(pop, 0) + 1
        want = self.drill.edge.machines_per_pop
        if any(n != want for n in per_pop.values()):
            raise BgplabError(f"lab '{self.lab}' has {sorted(set(per_pop.values()))} edge machines per PoP; drill "
                              f"'{self.drill.name}' needs {want} (edge.machines_per_pop): let it bring up its own lab")

        lost = lost_daemons(self.lab)
        if lost:
            raise BgplabError(f"lab '{self.lab}' has daemons that are not running: " + "; ".join(lost) +
                              f". Bring it down and up again (bgplab down {self.lab}), or start a router's or a "
                              f"speaker's daemon again: bgplab fault daemon --lab {self.lab} NODE DAEMON start")

    def _found(self, api: ApiClient) -> None:
        """An attached lab's settings, and a snapshot of its operational state, before the drill."""
        self.found = {
            "behaviour": api.call("GET", "/v1/lab/behaviour")["result"],
            "guardrails": api.call("GET", "/v1/lab/guardrails")["result"]["guardrails"],
            "edge_delay": api.call("GET", "/v1/lab/edge")["result"].get("delay"),
            "snapshot": api.call("POST", "/v1/snapshots", json={"label": f"before drill {self.drill.name}"})["result"]["id"],
        }

    def _put_back(self) -> None:
        """An attached lab, as the drill found it: operational state restored from the snapshot
        taken before (one change, through the pipeline), the drill's deletion requests
        withdrawn, behaviour, guardrails and edge back."""
        if not self.attached or not self.found or LabState.load(self.lab) is None:
            return
        api = self.api
        api.call("PUT", "/v1/lab/faults/api", json={"kind": "none"})
        api.call("PUT", "/v1/lab/guardrails", json={})  # none while restoring: the restore is the operator's
        try:
            api.call("POST", f"/v1/snapshots/{self.found['snapshot']}/restore")
        except ApiError as e:
            if e.status != 409:  # 409: already as it was
                raise
        # the deletion requests the drill made (configured state), where still pending
        for x in api.prefixes(pending_delete=True):
            if x["cidr"] in self.st.deletion_requests:
                api.call("DELETE", f"/v1/prefixes/{x['id']}/deletion_request")
        api.call("PUT", "/v1/lab/behaviour", json=self.found["behaviour"])
        api.call("PUT", "/v1/lab/guardrails", json=self.found["guardrails"])
        if self.found.get("edge_delay") is not None:
            api.call("PUT", "/v1/lab/edge", json={"delay": self.found["edge_delay"]})
        self.progress(f"lab '{self.lab}' put back as the drill found it (snapshot {self.found['snapshot']})")

    def _end_automation(self) -> None:
        """No automation outlives its drill: runs still going are ended (SIGTERM, then SIGKILL)."""
        for t in (self.mech.tasks.values() if self.mech else []):
            if isinstance(t, ExecRunner):
                t.shutdown()

    def _stop_captures(self) -> None:
        if self.drill.capture and self.running is not None and LabState.load(self.lab) is not None:
            capture.stop(self.running)

    def _down(self) -> None:
        if not self.keep:
            lifecycle.down(self.lab)

    def _merge(self) -> None:
        if self.drill.capture:
            merge_run_captures(self.rd)

    def _play(self, api: ApiClient, state: LabState) -> None:
        drill = self.drill
        observe = observe_dir(state)
        targets_file = observe / "probe-targets.json"
        targets = json.loads(targets_file.read_text()) if targets_file.exists() else []
        ctx = ExecContext(lab=self.lab, url=api.url, drill=drill.name, out_dir=self.rd.path / "automation",
                          cwd=Path.cwd() if self.automation else self.drill_dir, command=self.automation)
        hooks = LiveHooks(self.running, self.log, lambda: self.sampler)
        mech = Mechanism(drill, api, self.st, self.log, self.timeline, time.time, hooks=hooks, targets=targets,
                         exec_context=ctx)
        self.mech = mech
        if self.on_ready is not None:
            self.on_ready(api, self.lab)
        mech.begin()
        self.rd.bindings_before.write_text(json.dumps(mech.original))
        if self.graded:  # a team's automation is graded by whose prefixes it touched: every owner, before
            self.rd.owners.write_text(json.dumps({x["cidr"]: x["account_id"] for x in api.prefixes()}))
        deadline = drill.deadline(self.speed, self.st.realtime)
        probes = JsonlTail(observe / "probes.jsonl")
        self.st.t0 = time.time()
        self.st.windows = [{"label": w.label, "start": w.start, "end": w.end} for w in self.timeline.windows]
        self.log("start", clock=drill.start, speed=self.speed, max_lab_seconds=round(deadline, 1),
                 realtime=[{"from": self.clock(w.start), "to": self.clock(w.end), "label": w.label}
                           for w in self.timeline.windows], realtime_compressed=not self.st.realtime)
        self.sampler = Sampler(api, self.rd, mech.original, self.incident_now)
        self.sampler.start()
        last_progress = 0.0
        while True:
            now = self.incident_now()
            if self.sampler.error is not None:
                raise BgplabError(f"the drill's sampler failed: {self.sampler.error!r}") from self.sampler.error
            if time.time() - self.st.t0 > deadline:
                running = [n for n, t in mech.tasks.items() if t.running]
                raise DrillOverrun(
                    f"drill '{drill.name}' passed its maximum duration of {deadline:.0f} lab seconds at "
                    f"{self.clock(now)} (tasks still running: {', '.join(running) or 'none'}; steps left: {len(mech.steps)}); "
                    "set max_duration in the drill file if it needs longer")
            for e in probes.read():  # the canary's probes, on the incident clock
                if mech.canary and e["prefix"] == mech.canary and e.get("product", "cdn") in ("cdn", "resolver_web"):
                    mech.canary_result(self.timeline.incident(e["t"] - self.st.t0), e["result"] == "ok")
            mech.advance(now)
            if time.time() - last_progress >= 1.0:
                last_progress = time.time()
                plain = self._progress_line(now, mech.tasks)
                if self.status is not None:
                    self.status(self._status(now, mech), plain)
                else:
                    self.progress(plain)
                self._tell_dashboard(api, now, mech, "running")
            if mech.done:
                break
            time.sleep(0.02)
        settle = m.parse_duration(drill.settle)
        self.progress(f"steps done at {self.clock(self.incident_now())}; settling {settle:g} s")
        self._tell_dashboard(api, self.incident_now(), mech, "settling")
        time.sleep(settle)
        mech.finish()
        lost = lost_daemons(self.lab)
        if lost:
            self.log("daemons_lost", daemons=lost)
            raise BgplabError(f"lab '{self.lab}' lost daemons during drill '{drill.name}' that no step of it ended, so "
                              "what it measured after is not the network's doing: " + "; ".join(lost))
        if self.graded:
            after: dict[str, list[str]] = {}
            for b in api.call("GET", "/v1/bindings")["result"]:
                after.setdefault(cidr_of(b["prefix_id"]), []).append(b["service"])
            self.rd.bindings_after.write_text(json.dumps(after))
        self.log("end", clock=self.clock(self.incident_now()))
        self.checkpoints = mech.checkpoints

    def _pace(self, now: float) -> str:
        w = self.timeline.window_at(now)
        return f"real time ({w.label or 'window'})" if w else f"x{self.speed:g}"

    def _next_step(self, mech: Mechanism) -> str | None:
        if not mech.steps:
            return None
        offset, _, step = mech.steps[0]
        return f"{self.clock(offset)} {step.label or step.do}"

    def _tasks_line(self, tasks: dict[str, Any]) -> str | None:
        """What the running tasks did so far: an automation's runs (what it withdrew is read from
        the API's records at the end), or the cleanup task's withdrawals."""
        running = [n for n, t in tasks.items() if t.running]
        if not running:
            return None
        if self.graded:
            return f"{', '.join(running)}: {sum(getattr(t, 'runs', 0) for t in tasks.values())} runs"
        return f"{', '.join(running)}: {len(self.st.withdrawn_by_task)} withdrawn"

    def _status(self, now: float, mech: Mechanism) -> dict[str, Any]:
        """What the terminal view shows: the clock and pace, the last and next steps, the
        sampler's latest counts, what the tasks and guardrails did so far."""
        last = self.sampler.latest if self.sampler else {}
        held = len(self.st.held)
        return {
            "clock": self.clock(now), "pace": self._pace(now),
            "step": self.st.marks[-1]["label"] if self.st.marks else None, "next": self._next_step(mech),
            "observer": last.get("observer"), "impact": last.get("impact"), "probes": last.get("probes") or {},
            "task": self._tasks_line(mech.tasks), "guardrails": f"{held} requests held" if held else None,
        }

    def _tell_dashboard(self, api: ApiClient, now: float, mech: Mechanism, state: str) -> None:
        """The drill's clock, next step and steps so far, for the live dashboard (once a second)."""
        w = self.timeline.window_at(now)
        nxt = self._next_step(mech)
        api.call("PUT", "/v1/lab/drill", json={
            "name": self.drill.name, "clock": self.clock(now), "speed": self.speed, "state": state,
            "window": (w.label or "real time") if w else None, "next_step": nxt[:300] if nxt else None,
            "marks": [{"t": mk["t"], "label": mk["label"][:60]} for mk in self.st.marks[-200:]]})

    def _progress_line(self, now: float, tasks: dict[str, Any]) -> str:
        last = self.sampler.latest if self.sampler else {}
        obs = last.get("observer")
        impact = last.get("impact", {})
        head = f"[{self.clock(now)} {self._pace(now)}]"
        if self.graded:
            return f"{head} automation {self._tasks_line(tasks) or '-'}  observer {obs if obs is not None else '?':>5}"
        running = ",".join(n for n, t in tasks.items() if t.running) or "-"
        return (f"{head} task {running:<8} withdrawn by task {len(self.st.withdrawn_by_task):>5}  "
                f"observer {obs if obs is not None else '?':>5}  withdrawn only {impact.get('withdrawn_only', '?'):>4}  "
                f"some bindings gone {impact.get('some_bindings', '?'):>4}  all bindings gone {impact.get('all_bindings', '?'):>4}")

    def _collect(self, state: LabState | None) -> None:
        """Copy what the lab observed into the run directory before the lab goes."""
        if state is None or LabState.load(self.lab) is None:
            raise BgplabError(f"lab '{self.lab}' was gone before its observations (probes, MRT) could be collected")
        obs = state.dir / "observe"
        self.rd.observe.mkdir(exist_ok=True)
        if obs.exists():
            for f in obs.iterdir():
                shutil.copy2(f, self.rd.observe / f.name)
        if (state.dir / "faults.jsonl").exists():
            shutil.copy2(state.dir / "faults.jsonl", self.rd.faults)
        collector = self.record.lab.collector if self.record.lab else None
        if collector:
            src = router_of(self.running.plan.nodes[collector]).feed(state.node_dir(collector))
            if src is None or not src.exists():
                raise BgplabError(f"the collector '{collector}' wrote no MRT dump ({src})")
            self.rd.mrt(collector).parent.mkdir(exist_ok=True)
            shutil.copy2(src, self.rd.mrt(collector))

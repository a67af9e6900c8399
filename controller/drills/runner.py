"""The drill runner: plays a drill on a live lab into a run directory.

The drill is a mechanism, not a script of results: the cleanup task asks the API what
to delete and deletes what comes back; detection reacts to a probe failing; customers
re-advertise where the API lets them. What the run directory holds is what that
mechanism did (the controller's record) and what the network showed (MRT, captures,
samples, probes); the analysis keeps the two apart.

Each step kind is one entry in ``HANDLERS`` and one function. A run ends in one of
``rundir.OUTCOMES``: completed; interrupted (SIGINT or SIGTERM: the task stops, the
lab goes, what there is gets reported); overrun (the drill passed its maximum
duration); failed (an error, reported with what was recorded until then).
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import yaml

from controller import service
from controller.client import ApiClient, ApiError
from controller.drills import model as m
from controller.drills.rundir import DrillState, LabFacts, RunDir, RunRecord
from controller.drills.tasks import TASKS, CleanupRunner
from controller.inventory import cidr_of
from lab import capture, faults, lifecycle
from lab.errors import BgplabError
from lab.plan import LabPlan, Role
from lab.running import PLANS_BUILT, RunningLab
from lab.state import LabState

Progress = Callable[[str], None]


class DrillInterrupted(BgplabError):
    """The drill was stopped by a signal; the lab it made is gone, its report says so."""

    def __init__(self, signum: int):
        self.signum = signum
        self.exit_code = 128 + signum  # 130 for Ctrl-C, 143 for SIGTERM, as a shell reports them
        super().__init__(f"drill interrupted by {signal.Signals(signum).name}")


class DrillOverrun(BgplabError):
    """The drill passed its maximum duration (a task nobody stopped, a step that never came)."""

    exit_code = 3


@contextmanager
def interrupts() -> Iterator[None]:
    """SIGINT and SIGTERM raise DrillInterrupted in the main thread, once: a second signal
    during the cleanup that follows does not cut that cleanup short."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    fired: list[int] = []
    owner = os.getpid()

    def handler(signum: int, _frame: object) -> None:
        if os.getpid() != owner:
            # A child forked from this process (pyroute2's namespace helpers are) inherits the
            # handler: there the signal means what it always means, so end as the default would.
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)
            return
        if not fired:
            fired.append(signum)
            raise DrillInterrupted(signum)

    previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


class Sampler(threading.Thread):
    """Every half second: the observer's count, the impact states, probe results, into the
    run's samples. A failure ends sampling and is kept in ``error`` for the runner to raise."""

    def __init__(self, lab: str, rd: RunDir, original: dict[str, list[str]], incident_now: Callable[[], float]):
        super().__init__(name="drill-sampler", daemon=True)
        self.lab, self.rd, self.original, self.incident_now = lab, rd, original, incident_now
        self.stopping = threading.Event()
        self.latest: dict[str, Any] = {}
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            with ApiClient(self.lab) as api, open(self.rd.samples, "a", buffering=1) as out:
                while not self.stopping.wait(0.5):
                    rec = self._sample(api)
                    self.latest = rec
                    out.write(json.dumps(rec) + "\n")
        except BaseException as e:  # noqa: BLE001 - kept and raised by the runner's loop
            if not self.stopping.is_set():
                self.error = e

    def _sample(self, api: ApiClient) -> dict[str, Any]:
        obs = api.call("GET", "/v1/lab/observe")["result"]
        impact = {"withdrawn_only": 0, "some_bindings": 0, "all_bindings": 0}
        for p in api.prefixes(byoip=True, advertised=False):
            had = len(self.original.get(p["cidr"], []))
            if p["bindings"] == 0 and had:
                impact["all_bindings"] += 1
            elif p["bindings"] < had:
                impact["some_bindings"] += 1
            else:
                impact["withdrawn_only"] += 1
        sample = obs.get("sample") or {}
        received = sample.get("observer_received") or {}
        observer = sum(v for c in received.values() for v in c.values() if isinstance(v, int)) if received else None
        return {"t": time.time(), "incident": round(self.incident_now(), 1), "observer": observer,
                "impact": impact, "probes": obs.get("probes", {}), "kernel": sample.get("kernel", {})}

    def stop(self) -> None:
        self.stopping.set()
        self.join(timeout=10)


@dataclass
class Play:
    """One drill being played: what the step handlers share."""

    runner: "DrillRunner"
    api: ApiClient
    tasks: dict[str, CleanupRunner]
    original: dict[str, list[str]]  # prefix -> services bound before the drill
    targets: list[dict[str, str]]  # the probes' targets
    now: float = 0.0  # incident seconds
    offset: float = 0.0  # the step's scheduled incident offset
    detect: m.Detect | None = None
    canary: str | None = None
    stop_at: float | None = None
    dashboard_plan: list[tuple[float, dict[str, str]]] = field(default_factory=list)
    checkpoints: list[dict[str, Any]] = field(default_factory=list)

    @property
    def st(self) -> DrillState:
        return self.runner.st


def _behaviour(p: Play, step: m.SetBehaviour) -> None:
    p.api.call("PUT", "/v1/lab/behaviour", json={"pending_delete_bug": step.pending_delete_bug})


def _task_start(p: Play, step: m.TaskStart) -> None:
    p.tasks[step.task].start(p.now)


def _task_stop(p: Play, step: m.TaskStop) -> None:
    p.tasks[step.task].stop()


def _detect(p: Play, step: m.Detect) -> None:
    p.detect = step
    p.canary = p.runner.canary(step, p.targets, p.api)
    p.st.detection = {"canary": p.canary, "armed": p.offset}


def _dashboard(p: Play, step: m.Dashboard) -> None:
    """Affected customers re-advertise their prefixes from the dashboard, spread over a window."""
    affected = [x for x in p.api.prefixes(byoip=True, advertised=False) if x["cidr"] in p.st.withdrawn_by_task]
    accounts = sorted({x["account_id"] for x in affected})
    rng = random.Random(step.seed)
    chosen = set(rng.sample(accounts, round(len(accounts) * step.fraction))) if accounts else set()
    todo = [{"id": x["id"], "cidr": x["cidr"]} for x in affected if x["account_id"] in chosen]
    window = m.parse_duration(step.window)
    p.dashboard_plan = sorted(((p.now + rng.random() * window, x) for x in todo), key=lambda e: e[0])
    p.runner.log("dashboard", customers=len(chosen), of_customers=len(accounts), prefixes=len(todo))


def _restore(p: Play, how: str, only_with_bindings: bool) -> None:
    current = {x["cidr"]: x for x in p.api.prefixes()}
    items, cidrs = [], []
    for cidr in p.st.affected():
        x = current.get(cidr)
        if x is None or x["advertised"]:
            continue
        if only_with_bindings and x["bindings"] == 0:
            continue
        items.append({"id": x["id"], "services": p.original.get(cidr) or ["cdn"]})
        cidrs.append(cidr)
    if items:
        sent = time.time()
        p.api.call("POST", "/v1/lab/config_push", json={"prefixes": items})
        for c in cidrs:
            p.st.restore_times.setdefault(c, sent)
    p.st.restore_requests.setdefault(how, []).extend(cidrs)
    p.runner.log("restore", how=how, prefixes=len(items))


def _revert(p: Play, step: m.Revert) -> None:
    _restore(p, "revert", only_with_bindings=True)


def _config_push(p: Play, step: m.ConfigPushStep) -> None:
    _restore(p, "config_push", only_with_bindings=False)


def _api(p: Play, step: m.Api) -> None:
    sent = time.time()  # the change starts reaching the network before the call returns
    try:
        body = p.api.call(step.method, step.path, json=step.json_body)
    except ApiError as e:
        p.runner.log("api_error", path=step.path, status=e.status, error=str(e))
        return
    # Prefixes an API step withdrew or advertised count as the drill's own changes.
    if step.method != "PATCH" or not step.path.rstrip("/").endswith("bgp/status"):
        return
    result = body.get("result", {})
    ids = result.get("ids") or ([step.path.split("/")[3]] if step.path.count("/") == 5 else [])
    affected = p.st.affected()  # once, not per prefix: a bulk restore names thousands
    for prefix_ident in ids:
        cidr = cidr_of(prefix_ident)
        if result.get("advertised") is False:
            p.st.withdrawn_by_api[cidr] = sent
        elif cidr in affected:
            p.st.restore_times.setdefault(cidr, sent)
            p.st.restore_requests.setdefault("api", []).append(cidr)


def _fault(p: Play, step: m.Fault) -> None:
    """A fault primitive (lab.faults.FAULTS). Its times are lab seconds: faults act on real timers."""
    try:
        faults.FAULTS[step.fault](p.runner.running, step)
    except BgplabError as e:
        p.runner.log("fault_error", fault=step.fault, node=step.node, error=str(e))
        raise
    p.runner.log("fault", fault=step.fault, node=step.node, peer=step.peer)


def _mark(p: Play, step: m.Mark) -> None:
    """A label on the timeline; it measures nothing and ends nothing."""


def _checkpoint(p: Play, step: m.Checkpoint) -> None:
    from controller.drills.analysis import check

    s = p.runner.sampler.latest if p.runner.sampler else {}
    impact = s.get("impact", {})
    now = {
        "observer_end": s.get("observer"),
        "withdrawn_by_task": len(p.st.withdrawn_by_task),
        "impact_withdrawn_only": impact.get("withdrawn_only"),
        "impact_some_bindings": impact.get("some_bindings"),
        "impact_all_bindings": impact.get("all_bindings"),
        "restored_by_revert": len(p.st.restore_requests.get("revert", [])),
        "restored_by_config_push": len(p.st.restore_requests.get("config_push", [])),
    }
    figures = {k: {"value": v, "source": "network" if k == "observer_end" else "controller"} for k, v in now.items()}
    p.checkpoints += check(step.expect, figures, prefix=f"{step.label or step.at}: ")


# A step kind (its `do`) -> its handler: one entry and one function per kind.
HANDLERS: dict[str, Callable[[Play, Any], None]] = {
    "behaviour": _behaviour,
    "task_start": _task_start,
    "task_stop": _task_stop,
    "detect": _detect,
    "dashboard": _dashboard,
    "revert": _revert,
    "config_push": _config_push,
    "api": _api,
    "fault": _fault,
    "mark": _mark,
    "checkpoint": _checkpoint,
}
assert set(HANDLERS) == set(m.step_kinds()), "every step kind has exactly one handler"


class DrillRunner:
    def __init__(self, drill: m.Drill, topology: Path, run_dir: Path, *, lab: str | None = None,
                 speed: float | None = None, progress: Progress | None = None, keep: bool = False,
                 runtime: str = "netns", realtime: bool = True):
        self.drill, self.topology, self.rd = drill, topology, RunDir(run_dir)
        self.runtime = runtime
        self.speed = speed or drill.speed
        self.lab = lab or f"drill{int(time.time()) % 100000}"
        self.keep = keep
        self.progress = progress or (lambda s: None)
        self.st = DrillState(speed=self.speed, start=drill.start, realtime=realtime)
        self.timeline = drill.clock(self.speed, realtime)  # incident <-> lab seconds, windows at speed 1
        self.record = RunRecord(None, self.st)
        self.events = None
        self.sampler: Sampler | None = None
        self.running: RunningLab | None = None
        self.checkpoints: list[dict[str, Any]] = []

    # incident clock <-> lab time
    def incident_now(self) -> float:
        return self.timeline.incident(time.time() - self.st.t0) if self.st.t0 else 0.0

    def clock(self, incident_offset: float) -> str:
        return m.fmt_clock(m.parse_clock(self.drill.start) + incident_offset)

    def log(self, kind: str, **data: Any) -> None:
        rec = {"t": time.time(), "incident": round(self.incident_now(), 1), "kind": kind, **data}
        self.events.write(json.dumps(rec) + "\n")
        self.events.flush()

    def _topology_for_run(self) -> Path:
        """The drill's topology, with its timers overridden when the drill says so."""
        if self.drill.timers is None:
            return self.topology
        doc = yaml.safe_load(self.topology.read_text())
        timers = dict(doc.get("timers") or {})
        timers.update({k: v for k, v in self.drill.timers.model_dump().items() if v is not None})
        doc["timers"] = timers
        self.rd.topology.write_text(yaml.safe_dump(doc, sort_keys=False))
        return self.rd.topology

    def run(self) -> RunRecord:
        """Bring the lab up, play the drill, collect, bring the lab down. The record says how
        the run ended; an error or interrupt is re-raised after everything is collected."""
        self.rd.path.mkdir(parents=True, exist_ok=True)
        self.events = open(self.rd.events, "a")
        self.rd.drill.write_text(json.dumps(
            {**self.drill.model_dump(mode="json", by_alias=True), "speed": self.speed}, indent=2))
        self.progress(f"bringing up lab '{self.lab}' from {self.topology.name} ({self.runtime} runtime)")
        plans_before = PLANS_BUILT["count"]
        up = lifecycle.up(self._topology_for_run(), self.lab, runtime=self.runtime, progress=self.progress)
        self.running = up.running()  # opened once, with the plan `up` built; every step uses it
        state = self.running.state
        self.record.lab = lab_facts(self.lab, self.runtime, up.frr_version, state, up.plan)
        problems: list[str] = []
        try:
            service.start(self.running, probes=self.drill.probes, probe_prefixes=self._canaries(up.plan))
            if self.drill.capture:
                started = capture.start(self.running, self.rd.captures, all_=True, bgp_only=True)
                self.st.captures = {}
                for c in started:
                    self.st.captures.setdefault(c["node"], []).append(Path(c["file"]).name)
            with ApiClient(self.lab) as api:
                self._play(api, state)
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
            for what, step in (("stopping the captures", self._stop_captures), ("collecting", lambda: self._collect(state)),
                               ("bringing the lab down", self._down), ("merging the captures", self._merge)):
                try:
                    step()
                except Exception as e:  # noqa: BLE001 - collected and reported below
                    problems.append(f"{what}: {e}")
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

    def _stop_captures(self) -> None:
        if self.drill.capture and self.running is not None and LabState.load(self.lab) is not None:
            capture.stop(self.running)

    def _down(self) -> None:
        if not self.keep:
            lifecycle.down(self.lab)

    def _merge(self) -> None:
        if self.drill.capture:
            merge_run_captures(self.rd)

    def _canaries(self, plan: LabPlan) -> list[str]:
        out = []
        for s in self.drill.steps:
            if isinstance(s, m.Detect) and s.canary == "first":
                out.append(str(next(p.prefix for p in plan.prefixes if p.byoip)))
            elif isinstance(s, m.Detect) and s.canary != "auto":
                out.append(s.canary)
        return out

    def canary(self, step: m.Detect, targets: list[dict[str, str]], api: ApiClient) -> str:
        if step.canary == "first":
            return api.prefixes(byoip=True, limit=1)[0]["cidr"]
        if step.canary != "auto":
            return step.canary
        probed = {t["prefix"] for t in targets}
        return next(x["cidr"] for x in api.prefixes(byoip=True) if x["cidr"] in probed)

    def _bindings_before(self, api: ApiClient) -> dict[str, list[str]]:
        services: dict[str, list[str]] = {}
        for b in api.call("GET", "/v1/bindings")["result"]:
            services.setdefault(cidr_of(b["prefix_id"]), []).append(b["service"])
        return services

    def _play(self, api: ApiClient, state: LabState) -> None:
        drill = self.drill
        original = self._bindings_before(api)
        self.rd.bindings_before.write_text(json.dumps(original))
        observe = service.observe_dir(state)
        targets = json.loads((observe / "probe-targets.json").read_text())
        tasks = {n: TASKS[spec.kind](n, spec, api, self.st, self.log, time.time) for n, spec in drill.tasks.items()}
        steps = sorted(((drill.offset(s), i, s) for i, s in enumerate(drill.steps)), key=lambda x: (x[0], x[1]))
        end = drill.end_offset()
        deadline = drill.deadline(self.speed, self.st.realtime)
        play = Play(self, api, tasks, original, targets)
        self.st.t0 = time.time()
        self.st.windows = [{"label": w.label, "start": w.start, "end": w.end} for w in self.timeline.windows]
        self.log("start", clock=drill.start, speed=self.speed, max_lab_seconds=round(deadline, 1),
                 realtime=[{"from": self.clock(w.start), "to": self.clock(w.end), "label": w.label}
                           for w in self.timeline.windows], realtime_compressed=not self.st.realtime)
        self.sampler = Sampler(self.lab, self.rd, original, self.incident_now)
        self.sampler.start()
        last_progress = 0.0
        while True:
            play.now = now = self.incident_now()
            if self.sampler.error is not None:
                raise BgplabError(f"the drill's sampler failed: {self.sampler.error!r}") from self.sampler.error
            if time.time() - self.st.t0 > deadline:
                running = [n for n, t in tasks.items() if t.running]
                raise DrillOverrun(
                    f"drill '{drill.name}' passed its maximum duration of {deadline:.0f} lab seconds at "
                    f"{self.clock(now)} (tasks still running: {', '.join(running) or 'none'}; steps left: {len(steps)}); "
                    "set max_duration in the drill file if it needs longer")
            while steps and steps[0][0] <= now:
                play.offset, _, step = steps.pop(0)
                self.log("step", do=step.do, at=step.at, clock=self.clock(play.offset), label=step.label)
                self.st.marks.append({"t": time.time(), "incident": play.offset, "label": step.label or step.do})
                HANDLERS[step.do](play, step)
            for t in tasks.values():
                while t.due(now):
                    t.cycle()
            self._detection(play, observe)
            while play.dashboard_plan and play.dashboard_plan[0][0] <= now:
                _, prefix = play.dashboard_plan.pop(0)
                self._dashboard_toggle(api, prefix)
            self.st.tasks = {n: t.counts() for n, t in tasks.items()}
            if time.time() - last_progress >= 1.0:
                last_progress = time.time()
                self.progress(self._progress_line(now, tasks))
            if not steps and not play.dashboard_plan and not any(t.running for t in tasks.values()) and now >= end:
                break
            time.sleep(0.02)
        settle = m.parse_duration(drill.settle)
        self.progress(f"steps done at {self.clock(self.incident_now())}; settling {settle:g} s")
        time.sleep(settle)
        self.log("end", clock=self.clock(self.incident_now()))
        self.checkpoints = play.checkpoints

    def _detection(self, p: Play, observe: Path) -> None:
        if p.detect and p.canary and "failed" not in self.st.detection and self._canary_failed(observe, p.canary):
            self.st.detection["failed"] = p.now
            p.stop_at = p.now + m.parse_duration(p.detect.response)
            self.log("canary_failed", canary=p.canary, clock=self.clock(p.now))
        if p.stop_at is not None and p.now >= p.stop_at and p.tasks[p.detect.task].running:
            p.tasks[p.detect.task].stop()
            self.st.detection["stopped"] = p.now
            self.log("task_stopped", task=p.detect.task, clock=self.clock(p.now), withdrawn=len(self.st.withdrawn_by_task))

    @staticmethod
    def _canary_failed(observe: Path, canary: str) -> bool:
        # Three rounds in a row (1.5 s of probes) failed: one slow answer is not an outage.
        recent = service.recent_probes(observe / "probes.jsonl", window=1.6)
        results = [e["result"] for e in recent if e["prefix"] == canary]
        return len(results) >= 3 and all(r != "ok" for r in results)

    def _dashboard_toggle(self, api: ApiClient, prefix: dict[str, str]) -> None:
        sent = time.time()
        try:
            api.call("PATCH", f"/v1/prefixes/{prefix['id']}/bgp/status", json={"advertised": True})
        except ApiError as e:
            if e.status >= 500:
                raise
            self.st.dashboard_refused += 1
            self.log("dashboard_refused", prefix=prefix["cidr"], status=e.status, error=str(e)[:200])
            return
        self.st.restore_requests.setdefault("dashboard", []).append(prefix["cidr"])
        self.st.restore_times.setdefault(prefix["cidr"], sent)

    def _progress_line(self, now: float, tasks: dict[str, CleanupRunner]) -> str:
        last = self.sampler.latest if self.sampler else {}
        obs = last.get("observer")
        impact = last.get("impact", {})
        running = ",".join(n for n, t in tasks.items() if t.running) or "-"
        w = self.timeline.window_at(now)
        pace = f"real time ({w.label or 'window'})" if w else f"x{self.speed:g}"
        return (f"[{self.clock(now)} {pace}] task {running:<8} withdrawn by task {len(self.st.withdrawn_by_task):>5}  "
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
            src = state.node_dir(collector) / "updates.mrt"
            if not src.exists():
                raise BgplabError(f"the collector '{collector}' wrote no MRT dump ({src})")
            self.rd.mrt(collector).parent.mkdir(exist_ok=True)
            shutil.copy2(src, self.rd.mrt(collector))


def lab_facts(lab: str, runtime: str, frr_version: str | None, state: LabState, plan: LabPlan) -> LabFacts:
    collector = next((r for r in plan.routers() if r.role is Role.collector), None)
    observer = next((r.name for r in plan.routers() if r.role is Role.peer), None)
    counts = plan.counts()
    return LabFacts(
        lab=lab, runtime=runtime, frr_version=frr_version, topology=state.data.get("topology"),
        prefixes=counts["prefixes"], byoip=counts["byoip"],
        collector=collector.name if collector else None,
        vantage_points={str(s.peer_v4): s.peer for s in collector.sessions} if collector else {},
        speaker_addresses={n.name: sorted({str(a) for s in n.sessions for a in (s.local_v4, s.local_v6)})
                           for n in plan.speakers()},
        observer=observer,
    )


def step_comments(rd: RunDir) -> list[tuple[float, str]]:
    """Drill steps, detection and faults with their times, as capture packet comments."""
    from controller.drills.rundir import read_jsonl

    out = []
    for e in read_jsonl(rd.events):
        if e["kind"] == "step":
            out.append((e["t"], f"step {e.get('clock', '')}: {e.get('label') or e['do']}"))
        elif e["kind"] in ("canary_failed", "task_stopped", "restore", "dashboard"):
            out.append((e["t"], f"{e['kind'].replace('_', ' ')} {e.get('clock', '')}".strip()))
    for f in read_jsonl(rd.faults):
        where = " ".join(str(f[k]) for k in ("node", "peer", "daemon") if f.get(k))
        out.append((f["t"], f"fault: {f['fault']} {where}".strip()))
    return sorted(out)


def merge_run_captures(rd: RunDir) -> Path | None:
    """captures/*.pcap of a run -> capture.pcapng, in time order, steps as packet comments."""
    files = capture.files_in(rd.captures)
    if not files:
        return None
    return capture.merge(files, rd.capture, step_comments(rd))

"""Drill files: a topology, a time scale, a timeline of steps at incident clock times, and
expectations; and the runner that plays one on a live lab into a run directory.

The drill is a mechanism, not a script of results: the cleanup task asks the API what
to delete and deletes what comes back; detection reacts to a probe failing; customers
re-advertise where the API lets them. The counts in the report are what that
mechanism produced on real sessions.
"""

from __future__ import annotations

import json
import random
import re
import shutil
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Callable, Literal, Union

import httpx
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from controller import service
from controller.client import ApiClient, ApiError
from lab import capture, faults, lifecycle
from lab.errors import BgplabError, TopologyError
from lab.state import LabState
from lab.topology import Timers, _pydantic_problems, load_topology

DURATION = re.compile(r"^(?:(\d+)h)?\s*(?:(\d+)m)?\s*(?:(\d+(?:\.\d+)?)s)?$")
CLOCK = re.compile(r"^(\d{1,2}):(\d{2})(?::(\d{2}))?$")


def parse_duration(text: str | int | float) -> float:
    """'1h', '8m', '90s', '1h 7m' -> seconds."""
    if isinstance(text, (int, float)):
        return float(text)
    m = DURATION.match(str(text).strip())
    if not m or not any(m.groups()):
        raise ValueError(f"{text!r} is not a duration (examples: 90s, 8m, 1h 7m)")
    h, mi, s = m.groups()
    return int(h or 0) * 3600 + int(mi or 0) * 60 + float(s or 0)


def parse_clock(text: str) -> float:
    """'17:48' or '17:48:30' -> seconds since midnight."""
    m = CLOCK.match(text.strip())
    if not m:
        raise ValueError(f"{text!r} is not a clock time (HH:MM or HH:MM:SS, UTC)")
    h, mi, s = int(m[1]), int(m[2]), int(m[3] or 0)
    if h > 23 or mi > 59 or s > 59:
        raise ValueError(f"{text!r} is not a time of day")
    return h * 3600 + mi * 60 + s


def fmt_clock(seconds: float) -> str:
    s = int(round(seconds)) % 86400
    return f"{s // 3600:02d}:{s % 3600 // 60:02d}:{s % 60:02d}"


Duration = Annotated[str, Field(description="90s, 8m, 1h 7m")]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Range(_Strict):
    min: float | None = None
    max: float | None = None

    def check(self, value: float | None) -> bool:
        if value is None:
            return False
        return (self.min is None or value >= self.min) and (self.max is None or value <= self.max)

    def __str__(self) -> str:
        return f"[{'' if self.min is None else self.min}, {'' if self.max is None else self.max}]"


class CleanupTask(_Strict):
    """The cleanup sub-task: every cycle it asks `GET /v1/prefixes?pending_delete` (flag, no
    value) and deletes what comes back: the prefix is withdrawn at once, its service bindings
    are then removed a few calls per cycle (round robin over the oldest prefixes)."""

    kind: Literal["pending_delete_cleanup"]
    query: dict[str, str] = {"byoip": "true"}
    batch: int = Field(ge=1, description="prefixes deleted per cycle")
    every: Duration
    bindings_per_cycle: int = Field(ge=0)
    window: int = Field(default=40, ge=1, description="prefixes whose bindings are being removed at once")
    first_cycle_after: Duration = "0s"

    @field_validator("every", "first_cycle_after")
    @classmethod
    def _dur(cls, v: str) -> str:
        parse_duration(v)
        return v


class _Step(_Strict):
    at: str
    label: str = ""

    @field_validator("at")
    @classmethod
    def _at(cls, v: str) -> str:
        if v.startswith("+"):
            parse_duration(v[1:])
        else:
            parse_clock(v)
        return v


class Behaviour(_Step):
    do: Literal["behaviour"]
    pending_delete_bug: bool


class TaskStart(_Step):
    do: Literal["task_start"]
    task: str


class TaskStop(_Step):
    do: Literal["task_stop"]
    task: str


class Detect(_Step):
    """Arm detection: when the canary's probes fail, stop the task after the response time."""

    do: Literal["detect"]
    task: str
    # first: the first prefix the task will meet (probed for the purpose); auto: the first
    # of the sampled probe targets the task will meet; or a prefix, probed for the purpose.
    canary: str = "first"
    response: Duration = "0s"


class Dashboard(_Step):
    """Affected customers re-advertise their prefixes from the dashboard (the API), spread over a window."""

    do: Literal["dashboard"]
    fraction: float = Field(gt=0, le=1)
    window: Duration = "0s"
    seed: int = 1


class Revert(_Step):
    """The change is reverted: prefixes that kept a binding get their bindings back and are re-advertised."""

    do: Literal["revert"]


class ConfigPushStep(_Step):
    """A global config push: every prefix the drill affected gets its bindings back and is re-advertised."""

    do: Literal["config_push"]


class Api(_Step):
    do: Literal["api"]
    method: Literal["GET", "POST", "PATCH", "PUT", "DELETE"]
    path: str
    json_body: dict[str, Any] | None = Field(default=None, alias="json")
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class Fault(_Step):
    """A fault primitive (lab.faults). Times (down_for) are lab seconds: faults act on real timers."""

    do: Literal["fault"]
    fault: Literal["session_reset", "link_down", "link_up", "link_flap", "impair", "clear_impairment",
                   "daemon", "kill_speaker", "start_speaker"]
    node: str
    peer: str | None = None
    daemon: str | None = None
    action: Literal["kill", "stop", "cont", "start"] | None = None
    down_for: float = Field(default=2.0, gt=0)
    times: int = Field(default=1, ge=1)
    delay_ms: float = Field(default=0, ge=0)
    jitter_ms: float = Field(default=0, ge=0)
    loss_pct: float = Field(default=0, ge=0, le=100)
    rate_kbit: int | None = Field(default=None, ge=8)

    @model_validator(mode="after")
    def _needs(self) -> "Fault":
        if self.fault in ("session_reset", "link_down", "link_up", "link_flap", "impair", "clear_impairment") and not self.peer:
            raise ValueError(f"fault '{self.fault}' needs a peer (the other end of the link or session)")
        if self.fault == "daemon" and not (self.daemon and self.action):
            raise ValueError("fault 'daemon' needs daemon (zebra, bgpd, exabgp) and action (kill, stop, cont, start)")
        return self


class Mark(_Step):
    do: Literal["mark"]


class Expect(_Strict):
    observer_min: Range | None = None  # fewest prefixes the observer received from the edge
    observer_end: Range | None = None  # prefixes at the observer when the drill ends
    withdrawn_by_task: Range | None = None
    impact_withdrawn_only: Range | None = None  # peak counts of each impact state
    impact_some_bindings: Range | None = None
    impact_all_bindings: Range | None = None
    restored_by_dashboard: Range | None = None
    restored_by_revert: Range | None = None
    restored_by_config_push: Range | None = None
    probe_success_end: Range | None = None  # share of ok probes in the drill's last seconds
    probe_failures: Range | None = None  # probe results that were not ok, during the drill
    convergence_p90_s: Range | None = None
    path_hunting_max: Range | None = None  # the most distinct AS paths one prefix showed a vantage point


class Checkpoint(_Step):
    do: Literal["checkpoint"]
    expect: Expect


Step = Annotated[
    Union[Behaviour, TaskStart, TaskStop, Detect, Dashboard, Revert, ConfigPushStep, Api, Fault, Mark, Checkpoint],
    Field(discriminator="do"),
]


class Drill(_Strict):
    name: str
    description: str = ""
    topology: str
    timers: Timers | None = None  # override the topology's session timers (MRAI drills)
    speed: float = Field(gt=0, description="incident seconds per lab second")
    start: str = "00:00"
    settle: Duration = "5s"  # lab seconds to wait for convergence after the last step
    probes: int = Field(default=20, ge=0)
    capture: bool = True  # BGP of every link, merged with the steps as packet comments
    tasks: dict[str, CleanupTask] = {}
    steps: list[Step]
    expect: Expect = Expect()

    @field_validator("start")
    @classmethod
    def _start(cls, v: str) -> str:
        parse_clock(v)
        return v

    @model_validator(mode="after")
    def _refs(self) -> "Drill":
        problems = []
        for i, s in enumerate(self.steps):
            task = getattr(s, "task", None)
            if task is not None and task not in self.tasks:
                problems.append(f"steps[{i}].task: unknown task '{task}' (tasks: {', '.join(self.tasks) or 'none'})")
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def offset(self, step: _Step) -> float:
        """Incident seconds from the drill's start to ``step``."""
        if step.at.startswith("+"):
            return parse_duration(step.at[1:])
        d = parse_clock(step.at) - parse_clock(self.start)
        return d if d >= 0 else d + 86400


class DrillError(BgplabError):
    exit_code = 2


def load_drill(path: str | Path) -> tuple[Drill, Path]:
    """The drill and its topology's path (relative to the drill file). Every error at once."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except OSError as e:
        raise TopologyError(str(path), [f"cannot read the file: {e.strerror}"]) from None
    except yaml.YAMLError as e:
        raise TopologyError(str(path), [f"not valid YAML: {e}"]) from None
    if not isinstance(data, dict):
        raise TopologyError(str(path), ["(top level): expected a mapping"])
    if "extends" in data:
        # A variant of another drill: its keys replace the base's, one level deep.
        base_path = path.parent / str(data.pop("extends"))
        try:
            base = yaml.safe_load(base_path.read_text())
        except (OSError, yaml.YAMLError) as e:
            raise TopologyError(str(path), [f"extends: cannot read {base_path}: {e}"]) from None
        if not isinstance(base, dict) or "extends" in base:
            raise TopologyError(str(path), [f"extends: {base_path} must be a drill that extends nothing"])
        data = {**base, **data}
    try:
        drill = Drill.model_validate(data)
    except ValidationError as e:
        raise TopologyError(str(path), _pydantic_problems(e)) from None
    topo = (path.parent / drill.topology).resolve()
    load_topology(topo)  # its own errors, named by its own path
    return drill, topo


# -- the runner -----------------------------------------------------------------------


@dataclass
class RunState:
    t0: float = 0.0
    withdrawn_by_task: dict[str, float] = field(default_factory=dict)  # prefix id -> when
    withdrawn_by_api: dict[str, float] = field(default_factory=dict)  # by the drill's own API steps
    bindings_removed: dict[str, list[str]] = field(default_factory=dict)  # prefix id -> services removed
    restored: dict[str, int] = field(default_factory=lambda: {"dashboard": 0, "revert": 0, "config_push": 0})
    restore_times: dict[str, float] = field(default_factory=dict)  # prefix id -> when re-advertised
    dashboard_refused: int = 0
    marks: list[dict[str, Any]] = field(default_factory=list)
    detection: dict[str, Any] = field(default_factory=dict)


class TaskRunner:
    """The cleanup sub-task, driven one cycle at a time by the drill's clock."""

    def __init__(self, name: str, spec: CleanupTask, api: ApiClient, st: RunState, log: Callable[..., None]):
        self.name, self.spec, self.api, self.st, self.log = name, spec, api, st, log
        self.running = False
        self.next_cycle = 0.0
        self.queue: list[str] = []  # withdrawn, bindings still to remove
        self.rr = 0
        self.cycles = 0
        self.errors = 0

    def start(self, now_incident: float) -> None:
        self.running = True
        self.next_cycle = now_incident + parse_duration(self.spec.first_cycle_after)

    def stop(self) -> None:
        self.running = False

    def due(self, now_incident: float) -> bool:
        return self.running and now_incident >= self.next_cycle

    def cycle(self, now_incident: float) -> None:
        self.next_cycle += parse_duration(self.spec.every)
        self.cycles += 1
        # The sub-task's own request: the flag present, its value empty.
        query = "&".join(["pending_delete"] + [f"{k}={v}" for k, v in self.spec.query.items()])
        try:
            r = self.api.http.get(f"/v1/prefixes?{query}")
        except httpx.HTTPError as e:
            self.errors += 1
            self.log("task_error", task=self.name, error=str(e))
            return
        if r.status_code != 200:
            self.errors += 1
            self.log("task_error", task=self.name, status=r.status_code, error=r.text[:300])
            return
        todo = [p for p in r.json()["result"] if p["advertised"] and p["id"] not in self.st.withdrawn_by_task]
        batch = [p["id"] for p in todo[: self.spec.batch]]
        if batch:
            t = time.time()
            self.api.set_advertised(False, ids=batch)
            for pid in batch:
                self.st.withdrawn_by_task[pid] = t
                self.queue.append(pid)
            self.log("task_withdrew", task=self.name, prefixes=len(batch), total=len(self.st.withdrawn_by_task))
        self._remove_bindings()

    def _remove_bindings(self) -> None:
        removed = 0
        while removed < self.spec.bindings_per_cycle and self.queue:
            window = self.queue[: self.spec.window]
            self.rr %= len(window)
            pid = window[self.rr]
            bindings = self.api.call("GET", f"/v1/prefixes/{pid}/bindings")["result"]
            if not bindings:
                self.queue.remove(pid)
                continue
            b = bindings[0]
            self.api.call("DELETE", f"/v1/prefixes/{pid}/bindings/{b['id']}")
            self.st.bindings_removed.setdefault(pid, []).append(b["service"])
            removed += 1
            if len(bindings) == 1:
                self.queue.remove(pid)
            else:
                self.rr += 1


class DrillRunner:
    def __init__(self, drill: Drill, topology: Path, run_dir: Path, *, lab: str | None = None,
                 speed: float | None = None, progress: Callable[[str], None] | None = None, keep: bool = False,
                 runtime: str = "netns"):
        self.drill, self.topology, self.run_dir = drill, topology, run_dir
        self.runtime = runtime
        self.speed = speed or drill.speed
        self.lab_name = lab
        self.keep = keep
        self.progress = progress or (lambda s: None)
        self.st = RunState()
        self.events = None
        self.stop_sampling = threading.Event()
        self.last_sample: dict[str, Any] = {}  # the sampler's latest, for progress and checkpoints

    # incident clock <-> lab time
    def incident_now(self) -> float:
        return (time.time() - self.st.t0) * self.speed

    def clock(self, incident_offset: float) -> str:
        return fmt_clock(parse_clock(self.drill.start) + incident_offset)

    def log(self, kind: str, **data: Any) -> None:
        rec = {"t": time.time(), "incident": round(self.incident_now(), 1) if self.st.t0 else 0.0, "kind": kind, **data}
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
        out = self.run_dir / "topology.yaml"
        out.write_text(yaml.safe_dump(doc, sort_keys=False))
        return out

    def run(self) -> dict[str, Any]:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.events = open(self.run_dir / "drill-events.jsonl", "a")
        (self.run_dir / "drill.json").write_text(json.dumps(
            {**self.drill.model_dump(mode="json", by_alias=True), "speed": self.speed}, indent=2))
        lab = self.lab_name or f"drill{int(time.time()) % 100000}"
        self.progress(f"bringing up lab '{lab}' from {self.topology.name} ({self.runtime} runtime)")
        report = lifecycle.up(self._topology_for_run(), lab, runtime=self.runtime, progress=self.progress)
        try:
            service.start(lab, probes=self.drill.probes, probe_prefixes=self._canaries(report.plan))
            if self.drill.capture:
                capture.start(lab, self.run_dir / "captures", all_=True, bgp_only=True)
            with ApiClient(lab) as api:
                return self._play(lab, api, report.frr_version)
        finally:
            if self.drill.capture and LabState.load(lab) is not None:
                capture.stop(lab)
            self._collect(lab)
            if not self.keep:
                lifecycle.down(lab)
            if self.drill.capture:
                merge_run_captures(self.run_dir)

    def _canaries(self, plan) -> list[str]:
        out = []
        for s in self.drill.steps:
            if isinstance(s, Detect) and s.canary == "first":
                out.append(str(next(p.prefix for p in plan.prefixes if p.byoip)))
            elif isinstance(s, Detect) and s.canary != "auto":
                out.append(s.canary)
        return out

    def _snapshot(self, api: ApiClient) -> dict[str, list[str]]:
        services: dict[str, list[str]] = {}
        inv_path = service.inventory_path(LabState.load(api.lab))
        from controller.inventory import Inventory

        inv = Inventory(inv_path)
        try:
            for b in inv.bindings():
                services.setdefault(b.prefix_id, []).append(b.service)
        finally:
            inv.close()
        return services

    def _play(self, lab: str, api: ApiClient, frr_version: str) -> dict[str, Any]:
        drill = self.drill
        original = self._snapshot(api)
        (self.run_dir / "bindings-before.json").write_text(json.dumps(original))
        tasks = {n: TaskRunner(n, spec, api, self.st, self.log) for n, spec in drill.tasks.items()}
        steps = sorted(((drill.offset(s), i, s) for i, s in enumerate(drill.steps)), key=lambda x: (x[0], x[1]))
        targets = json.loads((LabState.load(lab).dir / "observe" / "probe-targets.json").read_text())
        sampler = threading.Thread(target=self._sample, args=(api,), daemon=True)
        self.st.t0 = time.time()
        self.log("start", clock=drill.start, speed=self.speed, frr_version=frr_version)
        sampler.start()
        checkpoints: list[dict[str, Any]] = []
        dashboard_plan: list[tuple[float, str]] = []
        detect: Detect | None = None
        canary: str | None = None
        stop_at: float | None = None
        last_progress = 0.0
        end = max([o for o, _, _ in steps] + [0.0])
        while True:
            now = self.incident_now()
            while steps and steps[0][0] <= now:
                offset, _, step = steps.pop(0)
                self.log("step", do=step.do, at=step.at, clock=self.clock(offset), label=step.label)
                self.st.marks.append({"t": time.time(), "incident": offset, "label": step.label or step.do})
                if isinstance(step, Behaviour):
                    api.call("PUT", "/v1/lab/behaviour", json={"pending_delete_bug": step.pending_delete_bug})
                elif isinstance(step, TaskStart):
                    tasks[step.task].start(now)
                elif isinstance(step, TaskStop):
                    tasks[step.task].stop()
                elif isinstance(step, Detect):
                    detect = step
                    canary = self._canary(step, targets, api)
                    self.st.detection = {"canary": canary, "armed": offset}
                elif isinstance(step, Dashboard):
                    dashboard_plan = self._dashboard_plan(step, api, now)
                elif isinstance(step, Revert):
                    self._restore(api, original, only_with_bindings=True, how="revert")
                elif isinstance(step, ConfigPushStep):
                    self._restore(api, original, only_with_bindings=False, how="config_push")
                elif isinstance(step, Api):
                    sent = time.time()  # the change starts reaching the network before the call returns
                    try:
                        body = api.call(step.method, step.path, json=step.json_body)
                    except ApiError as e:
                        self.log("api_error", path=step.path, error=str(e))
                    else:
                        self._note_api_change(step, body, sent)
                elif isinstance(step, Fault):
                    self._fault(lab, step)
                elif isinstance(step, Checkpoint):
                    cp = {"label": step.label, "at": step.at, "expect": step.expect}
                    cp["checks"] = _checkpoint_checks(self, cp)
                    checkpoints.append(cp)
            for t in tasks.values():
                while t.due(now):
                    t.cycle(now)
            if detect and canary and "failed" not in self.st.detection and self._canary_failed(lab, canary):
                self.st.detection["failed"] = now
                stop_at = now + parse_duration(detect.response)
                self.log("canary_failed", canary=canary, clock=self.clock(now))
            if stop_at is not None and now >= stop_at and tasks[detect.task].running:
                tasks[detect.task].stop()
                self.st.detection["stopped"] = now
                self.log("task_stopped", task=detect.task, clock=self.clock(now), withdrawn=len(self.st.withdrawn_by_task))
            while dashboard_plan and dashboard_plan[0][0] <= now:
                _, pid = dashboard_plan.pop(0)
                self._dashboard_toggle(api, pid)
            if time.time() - last_progress >= 1.0:
                last_progress = time.time()
                self.progress(self._progress_line(now, tasks))
            if not steps and not dashboard_plan and not any(t.running for t in tasks.values()) and now >= end:
                break
            time.sleep(0.02)
        settle = parse_duration(drill.settle)
        self.progress(f"steps done at {self.clock(self.incident_now())}; settling {settle:g} s")
        time.sleep(settle)
        self.log("end", clock=self.clock(self.incident_now()))
        self.stop_sampling.set()
        sampler.join(timeout=5)
        return {"checkpoints": checkpoints, "tasks": {n: {"cycles": t.cycles, "errors": t.errors} for n, t in tasks.items()}}

    def _note_api_change(self, step: Api, body: dict[str, Any], now: float) -> None:
        """Prefixes an API step withdrew or advertised count as the drill's own changes."""
        if step.method != "PATCH" or not step.path.rstrip("/").endswith("bgp/status"):
            return
        result = body.get("result", {})
        ids = result.get("ids") or ([step.path.split("/")[3]] if step.path.count("/") == 5 else [])
        for pid in ids:
            if result.get("advertised") is False:
                self.st.withdrawn_by_api[pid] = now
            elif pid in self.st.withdrawn_by_api or pid in self.st.withdrawn_by_task:
                self.st.restore_times.setdefault(pid, now)

    def _progress_line(self, now: float, tasks: dict[str, TaskRunner]) -> str:
        last = self.last_sample
        obs = last.get("observer")
        running = ",".join(n for n, t in tasks.items() if t.running) or "-"
        return (f"[{self.clock(now)}] task {running:<8} withdrawn by task {len(self.st.withdrawn_by_task):>5}  "
                f"observer {obs if obs is not None else '?':>5}  impact {last.get('impact', {})}")

    def _sample(self, api: ApiClient) -> None:
        """Every half second: observer count, impact states, probe results, into drill-samples.jsonl."""
        out = open(self.run_dir / "drill-samples.jsonl", "a", buffering=1)
        original = json.loads((self.run_dir / "bindings-before.json").read_text())
        while not self.stop_sampling.wait(0.5):
            try:
                obs = api.call("GET", "/v1/lab/observe")["result"]
                prefixes = api.prefixes(byoip=True)
            except BgplabError:
                continue
            impact = {"withdrawn_only": 0, "some_bindings": 0, "all_bindings": 0}
            for p in prefixes:
                if p["advertised"]:
                    continue
                had = len(original.get(p["id"], []))
                if p["bindings"] == 0 and had:
                    impact["all_bindings"] += 1
                elif p["bindings"] < had:
                    impact["some_bindings"] += 1
                else:
                    impact["withdrawn_only"] += 1
            received = obs.get("sample", {}).get("observer_received", {})
            observer = sum(v for c in received.values() for v in c.values() if isinstance(v, int)) if received else None
            rec = {"t": time.time(), "incident": round(self.incident_now(), 1), "observer": observer,
                   "impact": impact, "probes": obs.get("probes", {}), "kernel": obs.get("sample", {}).get("kernel", {})}
            self.last_sample = rec
            out.write(json.dumps(rec) + "\n")

    def _canary(self, step: Detect, targets: list[dict[str, str]], api: ApiClient) -> str:
        if step.canary == "first":
            return api.prefixes(byoip=True, limit=1)[0]["cidr"]
        if step.canary != "auto":
            return step.canary
        order = [p["cidr"] for p in api.prefixes(byoip=True)]
        probed = {t["prefix"] for t in targets}
        return next(c for c in order if c in probed)

    def _canary_failed(self, lab: str, canary: str) -> bool:
        path = LabState.load(lab).dir / "observe" / "probes.jsonl"
        # Three rounds in a row (1.5 s of probes) failed: one slow answer is not an outage.
        recent = service.recent_probes(path, window=1.6)
        results = [e["result"] for e in recent if e["prefix"] == canary]
        return len(results) >= 3 and all(r != "ok" for r in results)

    def _dashboard_plan(self, step: Dashboard, api: ApiClient, now: float) -> list[tuple[float, str]]:
        affected = [p for p in api.prefixes(byoip=True, advertised=False) if p["id"] in self.st.withdrawn_by_task]
        accounts = sorted({p["account_id"] for p in affected})
        rng = random.Random(step.seed)
        chosen = set(rng.sample(accounts, round(len(accounts) * step.fraction))) if accounts else set()
        todo = [p["id"] for p in affected if p["account_id"] in chosen]
        window = parse_duration(step.window)
        plan = sorted((now + rng.random() * window, pid) for pid in todo)
        self.log("dashboard", customers=len(chosen), of_customers=len(accounts), prefixes=len(todo))
        return plan

    def _dashboard_toggle(self, api: ApiClient, pid: str) -> None:
        sent = time.time()
        try:
            api.call("PATCH", f"/v1/prefixes/{pid}/bgp/status", json={"advertised": True})
        except ApiError as e:
            self.st.dashboard_refused += 1
            self.log("dashboard_refused", prefix=pid, error=str(e)[:200])
            return
        self.st.restored["dashboard"] += 1
        self.st.restore_times.setdefault(pid, sent)

    def _restore(self, api: ApiClient, original: dict[str, list[str]], *, only_with_bindings: bool, how: str) -> None:
        current = {p["id"]: p for p in api.call("GET", "/v1/prefixes")["result"]}
        items = []
        for pid in {**self.st.withdrawn_by_api, **self.st.withdrawn_by_task}:
            p = current.get(pid)
            if p is not None and p["advertised"]:
                continue
            if only_with_bindings and (p is None or p["bindings"] == 0):
                continue
            items.append({"id": pid, "services": original.get(pid) or ["cdn"]})
        if items:
            now = time.time()
            api.call("POST", "/v1/lab/config_push", json={"prefixes": items})
            for it in items:
                self.st.restore_times.setdefault(it["id"], now)
        self.st.restored[how] += len(items)
        self.log("restore", how=how, prefixes=len(items))

    def _fault(self, lab: str, step: Fault) -> None:
        try:
            if step.fault == "link_flap":
                faults.flap(lab, step.node, step.peer, step.down_for, step.times, up_for=step.down_for, background=True)
            elif step.fault == "impair":
                faults.impair(lab, step.node, step.peer, delay_ms=step.delay_ms, jitter_ms=step.jitter_ms,
                              loss_pct=step.loss_pct, rate_kbit=step.rate_kbit)
            elif step.fault == "clear_impairment":
                faults.clear_impairment(lab, step.node, step.peer)
            elif step.fault == "daemon":
                faults.daemon(lab, step.node, step.daemon, step.action)
            else:
                faults.apply(lab, step.fault, step.node, step.peer)
            self.log("fault", fault=step.fault, node=step.node, peer=step.peer)
        except BgplabError as e:
            self.log("fault_error", fault=step.fault, node=step.node, error=str(e))
            raise

    def _collect(self, lab: str) -> None:
        """Copy what the lab observed into the run directory before the lab goes."""
        state = LabState.load(lab)
        if state is None:
            return
        obs = state.dir / "observe"
        dest = self.run_dir / "observe"
        dest.mkdir(exist_ok=True)
        if obs.exists():
            for f in obs.iterdir():
                shutil.copy2(f, dest / f.name)
        if (state.dir / "faults.jsonl").exists():
            shutil.copy2(state.dir / "faults.jsonl", self.run_dir / "faults.jsonl")
        _, plan = lifecycle.load_plan(lab)
        for r in plan.routers():
            mrt = state.node_dir(r.name) / "updates.mrt"
            if mrt.exists():
                shutil.copy2(mrt, self.run_dir / f"{r.name}-updates.mrt")
        peers = {}
        for r in plan.routers():
            if r.role.value == "collector":
                peers = {str(s.peer_v4): s.peer for s in r.sessions}
        (self.run_dir / "lab.json").write_text(json.dumps({
            "lab": lab, "frr_version": state.data.get("frr_version"), "collector_peers": peers,
            "topology": state.data.get("topology"), "counts": plan.counts(),
            "state": {"withdrawn_by_task": self.st.withdrawn_by_task, "withdrawn_by_api": self.st.withdrawn_by_api,
                      "bindings_removed": self.st.bindings_removed,
                      "restored": self.st.restored, "restore_times": self.st.restore_times,
                      "dashboard_refused": self.st.dashboard_refused, "marks": self.st.marks,
                      "detection": self.st.detection, "t0": self.st.t0, "speed": self.speed,
                      "start": self.drill.start},
        }, indent=1))


def step_comments(run_dir: Path) -> list[tuple[float, str]]:
    """Drill steps, detection and faults with their times, as capture packet comments."""
    out = []
    events = run_dir / "drill-events.jsonl"
    if events.exists():
        for line in events.read_text().splitlines():
            e = json.loads(line)
            if e["kind"] == "step":
                out.append((e["t"], f"step {e.get('clock', '')}: {e.get('label') or e['do']}"))
            elif e["kind"] in ("canary_failed", "task_stopped", "restore", "dashboard"):
                out.append((e["t"], f"{e['kind'].replace('_', ' ')} {e.get('clock', '')}".strip()))
    faults_file = run_dir / "faults.jsonl"
    if faults_file.exists():
        for line in faults_file.read_text().splitlines():
            f = json.loads(line)
            where = " ".join(str(f[k]) for k in ("node", "peer", "daemon") if f.get(k))
            out.append((f["t"], f"fault: {f['fault']} {where}".strip()))
    return sorted(out)


def merge_run_captures(run_dir: Path) -> Path | None:
    """captures/*.pcap of a run -> capture.pcapng, in time order, steps as packet comments."""
    files = capture.files_in(run_dir / "captures")
    if not files:
        return None
    return capture.merge(files, run_dir / "capture.pcapng", step_comments(run_dir))




def _checkpoint_checks(runner: DrillRunner, cp: dict[str, Any]) -> list[dict[str, Any]]:
    from controller.analysis import check

    s = runner.last_sample
    now = {
        "observer_end": s.get("observer"),
        "withdrawn_by_task": len(runner.st.withdrawn_by_task),
        "impact_peak": s.get("impact", {}),
        "restored": runner.st.restored,
    }
    return check(cp["expect"], now, prefix=f"{cp['label'] or cp['at']}: ")


def run_drill(path: str | Path, *, runs_dir: Path = Path("runs"), speed: float | None = None, lab: str | None = None,
              keep: bool = False, progress: Callable[[str], None] | None = None,
              runtime: str = "netns") -> tuple[Path, dict[str, Any], list[dict[str, Any]]]:
    """Validate, run, analyse, report. Returns the run directory, the metrics and the expectation results."""
    from controller import report
    from controller.analysis import analyse, check

    drill, topology = load_drill(path)
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
    run_dir = (runs_dir / f"{stamp}-{drill.name}").resolve()
    runner = DrillRunner(drill, topology, run_dir, lab=lab, speed=speed, progress=progress, keep=keep, runtime=runtime)
    checks: list[dict[str, Any]] = []
    result = runner.run()
    for cp in result["checkpoints"]:
        checks += cp.get("checks", [])
    metrics = analyse(run_dir)
    checks += check(drill.expect, metrics)
    (run_dir / "metrics.json").write_text(json.dumps({**metrics, "expectations": checks}, indent=2))
    report.write(run_dir, checks)
    return run_dir, metrics, checks

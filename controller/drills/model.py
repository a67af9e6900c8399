"""The drill file: a topology, a time scale, a timeline of steps at incident clock times,
expectations. Pure: parsing and validation only, every error at once with its path.

The step kinds are the ``Step`` union (controller.drills.steps), each a class whose ``do``
literal names it; the mechanism has one handler per kind (``_do_<kind>`` in controller.drills.events).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args

import yaml
from pydantic import AfterValidator, BaseModel, Field, ValidationError, field_validator, model_validator

from controller.drills.clock import DrillClock, Window, parse_clock
from controller.drills.expect import ByImplementation, Expect, Strict
from controller.drills.steps import ApiFaultStep, Detect, Duration, RestoreSnapshot, Step, TakeSnapshot, _Step
from controller.guardrails import Guardrails
from controller.units import parse_duration  # noqa: F401 (the drill files' durations; their users import it here)
from lab.errors import BgplabError
from lab.topology import Timers, pydantic_problems, load_topology

_Strict = Strict  # every part of a drill file (controller.drills.expect)


class CleanupTask(_Strict):
    """The cleanup sub-task (controller.drills.tasks.CleanupRunner): every cycle it pages
    through `GET /v1/prefixes?pending_delete` (flag, no value) in the API's order, withdraws
    the next ``batch`` of what came back and removes service bindings of what it withdrew,
    ``bindings_per_cycle`` calls a cycle, prefix after prefix."""

    kind: Literal["pending_delete_cleanup"]
    query: dict[str, str] = {"byoip": "true"}
    batch: int = Field(ge=1, description="prefixes deleted per cycle")
    every: Duration
    bindings_per_cycle: int = Field(ge=0)
    per_page: int = Field(default=100, ge=1, le=1000, description="the page size the task asks the API for")
    first_cycle_after: Duration = "0s"

    @field_validator("every", "first_cycle_after")
    @classmethod
    def _dur(cls, v: str) -> str:
        parse_duration(v)
        return v


class ExecScope(_Strict):
    """The token a team's automation is given (controller.api.ROLES): a task's by default; a
    customer's names its account."""

    role: Literal["task", "operator", "customer", "read-only"] = "task"
    account: str | None = None

    @model_validator(mode="after")
    def _account(self) -> "ExecScope":
        if (self.role == "customer") != (self.account is not None):
            raise ValueError("a customer scope names its account, and no other role takes one")
        return self


class ExecTask(_Strict):
    """A team's own automation (controller.drills.automation.ExecRunner): any command, in any
    language, pointed at the lab's Addressing API with a token of ``scope``.

    - ``once``: runs when the task starts; the drill waits for it (up to ``limit``).
    - ``every``: runs when the task starts and then every ``every`` (incident time) until it
      is stopped; a run still going when the next is due makes that one wait.
    - ``service``: starts with the task and runs until ``task_stop`` or the drill's end.

    ``limit`` is lab (wall-clock) seconds per run: a run past it is ended (SIGTERM to its
    process group, SIGKILL ``grace`` later) and counted as killed. ``asked`` says what the
    automation is asked to touch, for the grade: ``pending_delete`` is the prefixes flagged for
    deletion when it starts; ``nothing`` is a read-only job.

    ``run_as``: ``automation`` (the default) runs the command as the unprivileged system user
    ``scripts/bootstrap`` creates, with a clean environment: it can reach the API with its
    token and nothing else of the lab's (its state, tokens, inventory, namespaces, containers).
    ``root`` runs it as root with that same environment: for an automation that truly needs it;
    its token's scope then holds only for code that cooperates, and the report says so at its top."""

    kind: Literal["exec"]
    command: str | list[str] = Field(description="a shell command line, or an argv list (no shell)")
    mode: Literal["once", "every", "service"] = "once"
    every: Duration | None = None
    limit: Duration = "60s"
    grace: Duration = "5s"
    scope: ExecScope = ExecScope()
    asked: Literal["pending_delete", "nothing"] = "pending_delete"
    env: dict[str, str] = {}
    run_as: Literal["automation", "root"] = "automation"

    @field_validator("command")
    @classmethod
    def _command(cls, v: str | list[str]) -> str | list[str]:
        if (isinstance(v, str) and not v.strip()) or (isinstance(v, list) and (not v or not all(x for x in v))):
            raise ValueError("an empty command (give a command line, or an argv list of non-empty strings)")
        return v

    @field_validator("env")
    @classmethod
    def _env(cls, v: dict[str, str]) -> dict[str, str]:
        bad = [k for k in v if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", k) or k.startswith("BGPLAB_")]
        if bad:
            raise ValueError(f"environment names {', '.join(map(repr, bad))}: a name is letters, digits and _, "
                             "and BGPLAB_* are the lab's own (the API's URL and the token)")
        return v

    @model_validator(mode="after")
    def _mode(self) -> "ExecTask":
        if self.mode == "every" and self.every is None:
            raise ValueError("mode 'every' needs every (how often it runs, incident time: 10m)")
        if self.mode != "every" and self.every is not None:
            raise ValueError(f"every is for mode 'every', not '{self.mode}'")
        if parse_duration(self.limit) <= 0:
            raise ValueError("limit must be more than 0 s")
        return self



def _clock_text(v: str) -> str:
    parse_clock(v)
    return v


ClockTime = Annotated[str, AfterValidator(_clock_text), Field(description="HH:MM or HH:MM:SS, UTC")]


class EdgeSpec(_Strict):
    """The edge's machines and how fast a binding change reaches them (controller.edge)."""

    machines_per_pop: int = Field(default=4, ge=1, le=64)
    delay: Duration = "30s"  # incident time for a binding change to reach every machine
    seed: int = 1  # the order changes reach the machines in
    inventory_seed: int = 20260220  # the seeded inventory (customers, onboarding, bindings)


class RealtimeWindow(_Strict):
    """An incident clock range played at speed 1, so that BGP's timers (MRAI, hold) act in it
    as they would on the day; the rest of the drill is compressed by its speed."""

    start: ClockTime
    end: ClockTime
    label: str = ""



class Calibration(_Strict):
    """A figure fixed by knobs that were derived from the incident's own figures: the lab's
    value is set to match, so it is never shown as agreement (controller.drills.analysis)."""

    knobs: list[str] = Field(min_length=1, description="the drill file's knobs that fix it: tasks.cleanup.batch, "
                             "steps.detect.response, edge.machines_per_pop")
    derived_from: str = Field(min_length=1, description="the incident's figure the knobs were derived from")


def knob(drill: "Drill", path: str) -> Any:
    """The value at a knob's path in ``drill``: ``tasks.<task>.<field>``, ``edge.<field>``,
    ``steps.<do>.<field>`` (the first step of that kind) or ``steps.<index>.<field>``,
    ``guardrails.<...>``. KeyError names the part of the path that is not there."""
    parts = path.split(".")
    node: Any = drill
    i = 0
    while i < len(parts):
        part = parts[i]
        if node is drill and part == "steps":
            if i + 1 >= len(parts):
                raise KeyError(f"{path}: name a step kind (or index) after steps")
            which = parts[i + 1]
            if which.isdigit():
                node = drill.steps[int(which)] if int(which) < len(drill.steps) else None
            else:
                node = next((s for s in drill.steps if s.do == which), None)
            if node is None:
                raise KeyError(f"{path}: the drill has no '{which}' step")
            i += 2
            continue
        if isinstance(node, dict):
            if part not in node:
                raise KeyError(f"{path}: no '{part}' (there are: {', '.join(map(str, node)) or 'none'})")
            node = node[part]
        elif isinstance(node, BaseModel) and part in type(node).model_fields:
            node = getattr(node, part)
        else:
            raise KeyError(f"{path}: no '{part}' in {type(node).__name__}")
        i += 1
    return node


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
    # Lab seconds after which a drill that has not ended fails (a task that is never stopped
    # would otherwise run until the inventory is empty). Default: twice the timeline at the
    # run's speed, plus the settle time and two minutes.
    max_duration: Duration | None = None
    tasks: dict[str, Annotated[Union[CleanupTask, ExecTask], Field(discriminator="kind")]] = {}
    edge: EdgeSpec = EdgeSpec()
    guardrails: Guardrails = Guardrails()  # windows on the incident clock (controller.guardrails)
    # Real-time windows (controller.drills.clock): BGP in them runs on its own time.
    realtime: list[RealtimeWindow] = []
    steps: list[Step]
    expect: Expect = Expect()
    # Where a figure legitimately differs by router implementation: ranges replacing expect's on a
    # lab whose routers (the collector aside) all run it, each saying why; never widened to pass.
    by_implementation: ByImplementation = {}
    # figure name -> the knobs derived from the incident that fix it (shown as "set to match")
    calibration: dict[str, Calibration] = {}

    @field_validator("start")
    @classmethod
    def _start(cls, v: str) -> str:
        parse_clock(v)
        return v

    @field_validator("settle", "max_duration")
    @classmethod
    def _lab_duration(cls, v: str | None) -> str | None:
        if v is not None:
            parse_duration(v)
        return v

    def end_offset(self) -> float:
        """Incident seconds from the start to the last scheduled step."""
        return max([self.offset(s) for s in self.steps] + [0.0])

    def clock(self, speed: float, realtime: bool = True) -> DrillClock:
        """The drill's clock at ``speed``; with ``realtime`` false its windows are compressed too."""
        windows = [Window(self._clock_offset(w.start), self._clock_offset(w.end), w.label) for w in self.realtime]
        return DrillClock(speed, windows, realtime=realtime, start=self.start)

    def deadline(self, speed: float, realtime: bool = True) -> float:
        """Lab seconds the drill may take before it fails as overrun."""
        if self.max_duration is not None:
            return parse_duration(self.max_duration)
        return 2 * self.clock(speed, realtime).lab(self.end_offset()) + parse_duration(self.settle) + 120.0

    def topology_with_timers(self, topology: Path, out: Path) -> Path:
        """The drill's topology, with its timers overridden (written to ``out``) when it says so."""
        if self.timers is None:
            return topology
        doc = yaml.safe_load(topology.read_text())
        timers = dict(doc.get("timers") or {})
        timers.update({k: v for k, v in self.timers.model_dump().items() if v is not None})
        doc["timers"] = timers
        out.write_text(yaml.safe_dump(doc, sort_keys=False))
        return out

    def canaries(self, plan: Any) -> list[str]:
        """Prefixes a lab's probes must cover for the drill's detection (the resolver is always
        probed): ``plan`` is the lab's (lab.plan.LabPlan)."""
        out = []
        for s in self.steps:
            if isinstance(s, Detect) and s.canary == "first":
                out.append(str(next(p.prefix for p in plan.prefixes if p.byoip)))
            elif isinstance(s, Detect) and s.canary not in ("auto", "resolver", "first"):
                out.append(s.canary)
        return out

    @model_validator(mode="after")
    def _refs(self) -> "Drill":
        problems = []
        for i, s in enumerate(self.steps):
            task = getattr(s, "task", None)
            if task is not None and task not in self.tasks:
                problems.append(f"steps[{i}].task: unknown task '{task}' (tasks: {', '.join(self.tasks) or 'none'})")
        execs = [n for n, t in self.tasks.items() if isinstance(t, ExecTask)]
        for i, s in enumerate(self.steps):
            if isinstance(s, ApiFaultStep):
                if s.task is not None and s.task not in execs:
                    problems.append(f"steps[{i}].task: an API fault acts on an exec task's token; '{s.task}' is not "
                                    f"one (exec tasks: {', '.join(execs) or 'none'})")
                elif s.task is None and len(execs) != 1:
                    problems.append(f"steps[{i}].task: name the exec task whose token the API fault acts on "
                                    f"(exec tasks: {', '.join(execs) or 'none'})")
        named: list[str] = []
        for i, s in sorted(enumerate(self.steps), key=lambda x: (self.offset(x[1]), x[0])):
            if isinstance(s, TakeSnapshot):
                named.append(s.name)
            elif isinstance(s, RestoreSnapshot) and s.snapshot not in named:
                problems.append(f"steps[{i}].snapshot: no snapshot step named '{s.snapshot}' comes before it "
                                f"(named before it: {', '.join(named) or 'none'})")
        end = self.end_offset()
        previous = None
        for i, w in enumerate(self.realtime):
            a, b = self._clock_offset(w.start), self._clock_offset(w.end)
            if b <= a:
                problems.append(f"realtime[{i}]: ends at {w.end}, not after its start {w.start}")
            elif b > end:
                problems.append(f"realtime[{i}]: ends at {w.end}, after the drill's last step")
            if previous is not None and a < previous[1]:
                problems.append(f"realtime[{i}]: starts at {w.start}, inside realtime[{i - 1}] (windows are in "
                                "order and do not overlap)")
            previous = (a, b)
        for name, cal in self.calibration.items():
            for k in cal.knobs:
                try:
                    knob(self, k)
                except KeyError as e:
                    problems.append(f"calibration.{name}.knobs: {e.args[0]}")
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def _clock_offset(self, clock: str) -> float:
        d = parse_clock(clock) - parse_clock(self.start)
        return d if d >= 0 else d + 86400

    def offset(self, step: _Step) -> float:
        """Incident seconds from the drill's start to ``step``."""
        if step.at.startswith("+"):
            return parse_duration(step.at[1:])
        return self._clock_offset(step.at)


class DrillError(BgplabError):
    """A drill file is invalid (every problem, each with its path), or a drill failed to run."""

    exit_code = 2

    def __init__(self, source: str, problems: list[str]):
        self.source, self.problems = source, problems
        lines = "\n".join(f"  {p}" for p in problems)
        noun = "problem" if len(problems) == 1 else "problems"
        super().__init__(f"{source}: {len(problems)} {noun}:\n{lines}")


def step_kinds() -> list[str]:
    """Every step kind a drill file may use (the ``do`` values), from the ``Step`` union."""
    union = get_args(get_args(Step)[0])
    return [get_args(cls.model_fields["do"].annotation)[0] for cls in union]


def extends_of(path: Path) -> Path | None:
    """The drill file ``path`` extends, or None."""
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError):
        return None
    return (path.parent / str(data["extends"])).resolve() if isinstance(data, dict) and "extends" in data else None


class _Untagged:
    """A ValidationError's errors with the tagged unions' tags (a step's ``do``, a task's
    ``kind``) left out of each location: ``tasks.cleanup.every``, not ``tasks.cleanup.exec.every``."""

    def __init__(self, err: ValidationError):
        self.err = err

    def errors(self) -> list[dict[str, Any]]:
        tags = set(step_kinds()) | {"exec", "pending_delete_cleanup"}
        out = []
        for e in self.err.errors():
            loc = list(e["loc"])
            if len(loc) >= 3 and loc[0] in ("tasks", "steps") and loc[2] in tags:
                del loc[2]
            out.append({**e, "loc": tuple(loc)})
        return out


def load_drill(path: str | Path) -> tuple[Drill, Path]:
    """The drill and its topology's path (relative to the drill file). Every error at once."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except OSError as e:
        raise DrillError(str(path), [f"cannot read the file: {e.strerror}"]) from None
    except yaml.YAMLError as e:
        raise DrillError(str(path), [f"not valid YAML: {e}"]) from None
    if not isinstance(data, dict):
        raise DrillError(str(path), ["(top level): expected a mapping"])
    if "extends" in data:
        # A variant of another drill: its keys replace the base's, one level deep.
        base_path = path.parent / str(data.pop("extends"))
        try:
            base = yaml.safe_load(base_path.read_text())
        except (OSError, yaml.YAMLError) as e:
            raise DrillError(str(path), [f"extends: cannot read {base_path}: {e}"]) from None
        if not isinstance(base, dict) or "extends" in base:
            raise DrillError(str(path), [f"extends: {base_path} must be a drill that extends nothing"])
        data = {**base, **data}
    try:
        drill = Drill.model_validate(data)
    except ValidationError as e:
        raise DrillError(str(path), pydantic_problems(_Untagged(e))) from None
    topo = (path.parent / drill.topology).resolve()
    load_topology(topo)  # its own errors, named by its own path
    return drill, topo

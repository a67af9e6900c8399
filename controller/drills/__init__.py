"""Scripted outage drills.

- ``model``: the drill file (pure; ``DrillError``);
- ``runner``: the incident clock and one handler per step kind;
- ``tasks``: background tasks (the cleanup sub-task), through the API client only;
- ``rundir``: the run directory's files and its typed record;
- ``analysis``: figures, each with its source, from a run directory;
- ``report``: plots and the HTML page.

``run_drill`` ties them together: validate, run, analyse once, report.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from controller.drills import model as m, report, steps as sp
from controller.drills.analysis import Analysis, analyse, check
from controller.drills.junit import write_junit
from controller.drills.model import DrillError, load_drill
from controller.drills.rundir import RunDir
from controller.drills.interrupts import DrillInterrupted, interrupts
from controller.drills.runner import DrillRunner
from controller.drills.sensitivity import sensitivity as table
from controller.drills.simulation import simulate_many
from lab.routers import get_router
from lab.state import LabState
from lab.topology import load_topology


@dataclass
class DrillResult:
    run_dir: Path
    metrics: dict[str, Any]  # metrics.json: run, figures (each with its source), expectations
    checks: list[dict[str, Any]]

    @property
    def outcome(self) -> str:
        return self.metrics["run"]["outcome"]


def write_report(rd: RunDir, checks: list[dict[str, Any]] | None = None,
                 a: Analysis | None = None) -> tuple[dict[str, Any], Path]:
    """Write metrics.json and the report from one analysis of the run directory (made here
    unless given). Without ``checks``, the expectations already in metrics.json are kept."""
    a = a or analyse(rd)
    metrics = a.metrics()
    if checks is None and rd.metrics.exists():
        checks = json.loads(rd.metrics.read_text()).get("expectations", [])
    metrics["expectations"] = checks or []
    rd.metrics.write_text(json.dumps(metrics, indent=2))
    return metrics, report.write(rd, a, metrics)


def mechanism_applies(drill) -> bool:
    """A drill the sensitivity table is about: a cleanup task, detection and a dashboard."""
    return bool(drill.tasks) and any(isinstance(s, sp.Detect) for s in drill.steps) and any(
        isinstance(s, sp.Dashboard) for s in drill.steps)


def guarded_base(path: str | Path, drill) -> tuple[Any, Path] | None:
    """The drill a guarded variant extends (with its topology), when ``drill`` is one: it has
    guardrails or restores a snapshot, and its file ``extends:`` another."""
    guarded = drill.guardrails.active() or any(isinstance(s, sp.RestoreSnapshot) for s in drill.steps)
    base = m.extends_of(Path(path))
    return load_drill(base) if guarded and base is not None else None


def _forwards(drill: Any, topo: Any, source: str) -> None:
    """A drill that probes the data plane needs routers that forward. A RIB-only router (its
    implementation installs no route in the kernel here: lab.routers.base.Router.kernel_proto)
    forwards nothing: every probe across it fails from the first round, the canary is "detected"
    at once, and the figures would measure the lab's blindness, not the drill. Refused, naming
    the routers and why, before anything exists."""
    if not drill.probes:
        return
    rib_only = sorted(n for n, node in topo.nodes.items() if node.kind.value == "router" and node.role is not None
                      and node.role.value != "collector" and get_router(node.implementation).kernel_proto is None)
    if rib_only:
        labels = sorted({get_router(topo.nodes[n].implementation).label for n in rib_only})
        raise DrillError(source, [f"probes: the drill probes the data plane ({drill.probes} probes), and routers "
                                  f"{', '.join(rib_only)} are RIB-only ({' and '.join(labels)} install{'s' if len(labels) == 1 else ''} no route in the "
                                  "kernel here): nothing would be forwarded; run it on frr or bird, or on a lab whose "
                                  "routers forward"])


def expect_on(drill: m.Drill, implementations: dict[str, str] | None, collector: str | None) -> tuple[Any, str | None]:
    """The expectations for a lab whose routers ran ``implementations`` (router -> name): the
    drill's, with by_implementation's ranges where every router but the collector ran one
    implementation that has some; and that implementation's name (None: the drill's own)."""
    ran = {impl for r, impl in (implementations or {}).items() if r != collector}
    if len(ran) != 1 or next(iter(ran)) not in drill.by_implementation:
        return drill.expect, None
    name = next(iter(ran))
    # only ranges the drill holds: a variant that extends the replay keeps its own expectations
    override = {k: v for k, v in drill.by_implementation[name] if v is not None and getattr(drill.expect, k) is not None}
    return drill.expect.model_copy(update=override), name


def run_drill(path: str | Path, *, runs_dir: Path = Path("runs"), speed: float | None = None, lab: str | None = None,
              keep: bool = False, progress: Callable[[str], None] | None = None,
              runtime: str = "netns", realtime: bool = True, topology: Path | None = None,
              sensitivity: bool = False, baseline: bool = False, automation: str | None = None,
              junit: Path | None = None, implementation: str | None = None,
              on_ready: Callable[[Any, str], None] | None = None,
              status: Callable[[dict[str, Any], str], None] | None = None) -> DrillResult:
    """Validate, run, analyse, report. A run that did not complete (interrupted, overrun,
    failed) still gets its report, marked so, and then its error is raised.

    ``lab`` naming a lab that is up runs the drill on it (and leaves it as it was found);
    otherwise the drill brings up its own. ``automation`` replaces every exec task's command
    (run in the caller's directory); ``junit`` writes the expectations as a JUnit XML file,
    whatever the outcome."""
    drill, own_topology = load_drill(path)
    if topology is not None:
        # The same drill on another lab (the replay on byoip-internet.yaml): validated like any.
        load_topology(topology, implementation)
        topology = Path(topology).resolve()
    topology = topology or own_topology
    if lab is None or LabState.load(lab) is None:
        # its errors, and what its routers can measure, before anything exists
        _forwards(drill, load_topology(topology, implementation), str(path))
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
    rd = RunDir((runs_dir / f"{stamp}-{drill.name}").resolve())
    if automation is not None and not any(t.kind == "exec" for t in drill.tasks.values()):
        raise DrillError(str(path), ["--automation: this drill has no exec task to run it (tasks: "
                                     f"{', '.join(f'{n} ({t.kind})' for n, t in drill.tasks.items()) or 'none'})"])
    runner = DrillRunner(drill, topology, rd.path, lab=lab, speed=speed, progress=progress, keep=keep, runtime=runtime,
                         realtime=realtime, automation=automation, drill_dir=Path(path).resolve().parent,
                         on_ready=on_ready, status=status, implementation=implementation)
    error: BaseException | None = None
    began = time.monotonic()
    with interrupts():
        try:
            runner.run()
        except KeyboardInterrupt as e:  # SIGINT outside the handler's reach (before it was set)
            error = DrillInterrupted(2)
            error.__cause__ = e
        except BaseException as e:  # noqa: BLE001 - reported, then raised below
            error = e
    if not rd.record_file.exists():
        # `up` itself failed (it removes what it made): there is nothing to report.
        if junit is not None:
            write_junit(junit, drill.name, [], error=str(error or "the drill wrote no record"), run_dir=rd.path,
                        seconds=time.monotonic() - began)
        raise error if error else RuntimeError("the drill wrote no record")
    if sensitivity and error is None and mechanism_applies(drill):
        # After the lab is gone: the mechanism alone, ~120 times, must not compete with the routers.
        if progress:
            progress("the sensitivity table: the mechanism alone, each knob moved by 10% and 50%, down and up")
        (rd.path / "sensitivity.json").write_text(json.dumps(table(drill, topology, speed=runner.speed), indent=1))
    base = guarded_base(path, drill)
    if baseline and error is None and base is not None:
        # The unguarded replay beside this one, both as the mechanism alone (controller figures,
        # no BGP), after the lab is gone; the live run's network figures sit beside them.
        if progress:
            progress(f"the unguarded replay beside this run: the mechanism alone of {base[0].name} and of this drill")
        unguarded, guarded = simulate_many([(base[0], base[1], runner.speed), (drill, topology, runner.speed)])
        (rd.path / "baseline.json").write_text(json.dumps(
            {"base": base[0].name, "unguarded": unguarded, "guarded": guarded}, indent=1))
    try:
        a = analyse(rd)
        checks = list(runner.checkpoints)
        if runner.record.outcome == "completed":
            facts = runner.record.lab
            expect, impl = expect_on(drill, facts.implementations if facts else None, facts.collector if facts else None)
            rows = check(expect, a.figures)
            if impl:  # say which ranges are the implementation's own
                own = {k for k, v in drill.by_implementation[impl] if v is not None and getattr(drill.expect, k) is not None}
                for row in rows:
                    if row["expectation"].split(" at ")[0] in own:
                        row["note"] = (row.get("note") + "; " if row.get("note") else "") + \
                            f"the range for {impl} (the drill file's by_implementation)"
            checks += rows
        metrics, _ = write_report(rd, checks, a)
    except Exception as e:
        if junit is not None:
            write_junit(junit, drill.name, [], error=f"{error or e}", run_dir=rd.path, seconds=time.monotonic() - began)
        if error is not None:  # the run's own error is the one to see; the report's is added to it
            error.add_note(f"and its report could not be written: {e!r}")
            raise error from None
        raise
    if junit is not None:
        write_junit(junit, drill.name, checks, error=None if error is None else str(error), run_dir=rd.path,
                    metrics=metrics, seconds=time.monotonic() - began)
    if error is not None:
        raise error
    return DrillResult(rd.path, metrics, checks)

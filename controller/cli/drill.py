"""`bgplab drill run|mechanism|sensitivity|compare` and `bgplab report`: drills and their reports."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from controller.cli.lab import dashboard_url, open_in_browser
from controller.drills import mechanism_applies, run_drill, write_report
from lab.routers import ROUTERS
from controller.drills.compare import compare, markdown, write_html
from controller.drills.expect import failed
from controller.drills.model import Drill, load_drill
from controller.drills.rundir import RunDir
from controller.drills.sensitivity import lines, sensitivity as table
from controller.drills.simulation import simulate_many
from controller.drills.terminal import TerminalView
from lab import lifecycle
from lab.errors import UsageError
from lab.runtime import RUNTIMES
from lab.state import LabState


@click.group()
def drill() -> None:
    """Scripted outage drills on a live lab."""


@drill.command(name="run")
@click.argument("path")
@click.option("--speed", type=float, help="incident seconds per lab second (default: the drill's)")
@click.option("--name", help="lab name (default: one made up for the run)")
@click.option("--runs-dir", default="runs", show_default=True, type=click.Path(file_okay=False))
@click.option("--keep", is_flag=True, help="leave the lab up afterwards")
@click.option("--runtime", type=click.Choice(RUNTIMES), default="netns", show_default=True)
@click.option("--realtime/--no-realtime", default=True, show_default=True,
              help="play the drill's real-time windows at speed 1 (off: compress them too; the report says so)")
@click.option("--topology", type=click.Path(dir_okay=False), help="run the drill on this topology instead of its own")
@click.option("--implementation", type=click.Choice(list(ROUTERS)),
              help="run every router but the collector with this implementation (a lab the drill brings up)")
@click.option("--sensitivity", is_flag=True,
              help="after the lab is down, the mechanism's sensitivity table into the report (replays only, ~10 "
                   "minutes; or later: bgplab drill sensitivity RUN_DIR)")
@click.option("--baseline/--no-baseline", default=True, show_default=True,
              help="a guarded replay: the unguarded replay's mechanism beside it, after the lab is down (~30 s)")
@click.option("--lab", "on_lab", help="run on this lab, which is up (default for a drill with an exec task: the lab "
              "that is up with the drill's topology, if exactly one is; else the drill brings up its own)")
@click.option("--automation", help="the command the drill's exec task runs (your automation), in this directory")
@click.option("--junit", type=click.Path(dir_okay=False), help="write the grade as a JUnit XML file here")
@click.option("--dashboard", "with_dashboard", is_flag=True,
              help="print the live dashboard's address once the lab is up (bgplab dashboard)")
def drill_run(path, speed, name, runs_dir, keep, runtime, realtime, topology, implementation, sensitivity, baseline,
              on_lab, automation, junit, with_dashboard) -> None:
    """Run the drill in PATH; write its run directory and report.

    On a lab that is up (--lab; for a drill that grades an automation, also the only lab up
    with the drill's topology) the drill runs there and leaves it as it found it; otherwise
    it brings up its own lab and removes it afterwards.

    Exits 1 if an expectation failed, 3 if the drill passed its maximum duration, 130 or
    143 if interrupted (SIGINT, SIGTERM: the lab is removed, the report marked so)."""
    if on_lab and implementation:
        raise UsageError("--implementation chooses the routers of the lab a drill brings up; --lab runs on one that is up")
    if on_lab and name:
        raise UsageError("--lab runs on a lab that is up, --name names the lab the drill brings up: give one")
    if on_lab and LabState.load(on_lab) is None:
        raise UsageError(f"--lab {on_lab}: no such lab is up (labs: {', '.join(lifecycle.labs()) or 'none'})")
    lab = on_lab or name
    drill_, own = load_drill(path)
    if lab is None and topology is None and any(t.kind == "exec" for t in drill_.tasks.values()):
        # grading a team's automation: `bgplab up && bgplab drill run ...` runs it on that lab
        up = {n: LabState.load(n) for n in LabState.labs()}
        mine = [n for n, st in up.items() if st is not None and st.topology_file == str(own)]
        if len(mine) > 1:
            raise UsageError(f"several labs run {own.name} ({', '.join(mine)}): name one with --lab")
        if mine:
            lab = mine[0]
            click.echo(f"running on lab '{lab}' (up, with the drill's topology)", err=True)
    view = TerminalView(sys.stderr)  # a table redrawn in place on a terminal; plain lines in a log
    r = run_drill(path, runs_dir=Path(runs_dir), speed=speed, lab=lab, keep=keep,
                  progress=view.line, status=view.update, runtime=runtime, realtime=realtime,
                  topology=Path(topology) if topology else None, implementation=implementation,
                  sensitivity=sensitivity, baseline=baseline, automation=automation,
                  junit=Path(junit) if junit else None,
                  on_ready=(lambda api, lab_name: view.line(f"dashboard: {dashboard_url(api, lab_name)}"))
                  if with_dashboard else None)
    click.echo(f"run directory: {r.run_dir}")
    click.echo(f"report: {r.run_dir / 'report.html'}")
    keys = ("withdrawn_by_task", "withdrawn_on_wire", "observer_min", "restored_by_revert", "restored_by_config_push",
            "restored_in_network", "duration_incident_s", "convergence_s")
    if "withdrawn_in_network" in r.metrics["figures"]:  # a team's automation, graded
        keys = ("asked", "withdrawn_in_network", "withdrawn_not_asked", "bindings_removed", "bindings_removed_not_asked",
                "accounts_affected", "accounts_unbound", "observer_min", "api_denied", "api_unauthorized", "held_changes", "convergence_s")
    for key in keys:
        f = r.metrics["figures"].get(key)
        if f:
            shown = f["reason"] if f["value"] is None and f.get("reason") else _figure(f["value"])
            click.echo(f"  {key:<26} {shown:<44} ({f['source']})")
    for refused in (r.metrics["figures"].get("refused_requests") or {}).get("value") or []:
        click.echo(f"  refused: {refused}")
    for run in (r.metrics["figures"].get("automation_runs") or {}).get("value") or []:
        how = ("ended at its time limit" if run["killed_at_limit"] else f"exit {run['exit_code']}")
        click.echo(f"  automation {run['task']} run {run['run']}: {how} after {run['seconds']:.1f} s "
                   f"(stdout: {r.run_dir / run['stdout']}, stderr: {r.run_dir / run['stderr']})")
        if run["stderr_tail"]:
            click.echo("    " + "\n    ".join(run["stderr_tail"].strip().splitlines()[-8:]))
    if junit:
        click.echo(f"junit: {junit}")
    for c in r.checks:
        n = f", n={c['n']}" if c.get("n") is not None else ""
        note = f": {c['note']}" if c.get("note") and not c["ok"] else (f" (mode: {c['mode']})" if c.get("mode") else "")
        verdict = "ok    " if c["ok"] else ("-     " if c["ok"] is None else "FAILED")
        click.echo(f"  {verdict} {c['expectation']} = {c['value']} (expected {c['range']}{n}){note}")
    if failed(r.checks):
        sys.exit(1)


@drill.command(name="mechanism")
@click.argument("path")
@click.option("--speed", type=float, multiple=True, help="incident seconds per lab second (repeatable; default: the drill's)")
@click.option("--seed", "seeds", type=int, multiple=True, help="inventory seed (repeatable; default: the drill's)")
@click.option("--sensitivity", is_flag=True, help="and the sensitivity table (bgplab drill sensitivity)")
@click.option("--out", type=click.Path(dir_okay=False), help="write the results as JSON here")
def drill_mechanism(path, speed, seeds, sensitivity, out) -> None:
    """The drill's mechanism alone: the real API over a fresh inventory, no BGP, in seconds.

    Prints what the controller did (withdrawn, restored by the revert and the push, customers,
    dashboard) for each seed and speed; no lab is brought up."""
    drill, topology = load_drill(path)
    seeds = seeds or (drill.edge.inventory_seed,)
    speeds = speed or (drill.speed,)
    jobs = [(drill.model_copy(update={"edge": drill.edge.model_copy(update={"inventory_seed": s})}), topology, v)
            for s in seeds for v in speeds]
    results = simulate_many(jobs)
    click.echo(f"{'seed':>9} {'speed':>6} {'withdrawn':>9} {'revert':>7} {'push':>5} {'dashboard':>9} {'refused':>7} "
               f"{'customers':>9} {'detected':>9} {'stopped':>9}")
    for r in results:
        click.echo(f"{r['inventory_seed']:>9} {r['speed']:>6g} {r['withdrawn']:>9} {r['restored_by_revert']:>7} "
                   f"{r['restored_by_config_push']:>5} {r['dashboard_toggles_ok']:>9} {r['dashboard_refused']:>7} "
                   f"{r['affected_customers']:>9} {r['canary_failed'] or '-':>9} {r['task_stopped'] or '-':>9}")
    doc = {"results": results}
    if sensitivity:
        doc["sensitivity"] = t = table(drill, topology, speed=speeds[0])
        click.echo("")
        for line in lines(t):
            click.echo(line)
    if out:
        Path(out).write_text(json.dumps(doc, indent=1))
        click.echo(f"wrote {out}")


@drill.command(name="sensitivity")
@click.argument("target", type=click.Path(exists=True))
@click.option("--speed", type=float, help="incident seconds per lab second (default: the drill's, or the run's)")
@click.option("--steps", default="0.1,0.5", show_default=True, help="the moves, as shares of each knob (down and up)")
@click.option("--knob", "only", multiple=True, help="move only this knob (repeatable; a path from the table)")
@click.option("--out", type=click.Path(dir_okay=False), help="write the table as JSON here")
def drill_sensitivity(target, speed, steps, only, out) -> None:
    """Every knob of a replay (its drill file, the seeded inventory, the mechanism's constants)
    moved alone, down and up, through the mechanism alone (no BGP): each figure's change and
    elasticity. TARGET is a drill file, or a run directory: then the table goes into its
    report (sensitivity.json). The whole table runs the mechanism ~120 times: ~10 minutes on 2 cores."""
    p = Path(target)
    rd = None
    if p.is_dir():
        rd = RunDir(p)
        if not rd.drill.exists():
            raise UsageError(f"{p} is not a drill's run directory (no {rd.drill.name})")
        doc = json.loads(rd.drill.read_text())
        run_speed = doc.pop("speed", None)
        drill = Drill.model_validate(doc)
        lab = rd.record().lab
        if lab is None or not lab.topology:
            raise UsageError(f"{p}: its record names no topology to run the mechanism on")
        topology = Path(lab.topology)
        speed = speed or run_speed
    else:
        drill, topology = load_drill(p)
    if not mechanism_applies(drill):
        raise UsageError(f"drill '{drill.name}' has no cleanup task, detection and dashboard: the sensitivity table "
                         "is about the replay's mechanism")
    try:
        moves = tuple(float(x) for x in steps.split(","))
        if not moves or not all(0 < x < 1 for x in moves):
            raise ValueError
    except ValueError:
        raise UsageError(f"--steps takes shares between 0 and 1, comma-separated (got {steps!r})") from None
    t = table(drill, topology, speed=speed, steps=moves, only=list(only) or None)
    for line in lines(t):
        click.echo(line)
    if rd is not None:
        (rd.path / "sensitivity.json").write_text(json.dumps(t, indent=1))
        _, report_path = write_report(rd)
        click.echo(f"report: {report_path}")
    if out:
        Path(out).write_text(json.dumps(t, indent=1))
        click.echo(f"wrote {out}")


@drill.command(name="compare")
@click.argument("run_dirs", nargs=-1, required=True, type=click.Path(exists=True, file_okay=False))
@click.option("--out", type=click.Path(dir_okay=False), help="also write the table as HTML here")
@click.option("--json", "as_json", is_flag=True)
def drill_compare(run_dirs, out, as_json) -> None:
    """Drill runs side by side: the unguarded replay and its guarded variants, one table
    ("what each defence would have changed on 2026-02-20"), each figure with its source."""
    t = compare([Path(d) for d in run_dirs])
    click.echo(json.dumps(t, indent=1) if as_json else markdown(t))
    if out:
        click.echo(f"wrote {write_html(t, Path(out))}", err=True)


def _figure(v: object) -> str:
    if isinstance(v, dict) and "median" in v:
        return f"median {v['median']}, p90 {v['p90']}, max {v['max']}, n={v['n']}"
    return str(v)


@click.command()
@click.argument("run_dir", type=click.Path(exists=True, file_okay=False))
@click.option("--open", "open_", is_flag=True, help="open it in a browser when this machine has a display")
def report(run_dir, open_) -> None:
    """(Re)write a drill run's report.html (one file, its interactive plots inside) and metrics.json."""
    _, out = write_report(RunDir(Path(run_dir)))
    click.echo(str(out))
    if open_:
        open_in_browser(Path(out).resolve().as_uri())



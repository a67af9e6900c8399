"""Drill files: parsing, validation errors with their paths, incident clock arithmetic."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import yaml

from controller.drills.clock import parse_clock
from controller.drills.expect import Range
from controller.drills.model import Drill, DrillError, load_drill, parse_duration, step_kinds
from controller.drills.mechanism import Mechanism
from lab.errors import TopologyError

ROOT = Path(__file__).resolve().parents[2]
# the shipped drills and the ones the live tests run (a CI drill that does not load fails late)
DRILLS = sorted((ROOT / "drills").glob("*.yaml")) + sorted((ROOT / "tests" / "live" / "drills").glob("*.yaml"))

GOOD = {
    "name": "t",
    "topology": "../topologies/minimal.yaml",
    "speed": 60,
    "start": "17:48",
    "tasks": {"cleanup": {"kind": "pending_delete_cleanup", "batch": 5, "every": "1m", "bindings_per_cycle": 2}},
    "steps": [
        {"at": "17:48", "do": "task_start", "task": "cleanup"},
        {"at": "+10m", "do": "task_stop", "task": "cleanup"},
    ],
}


@pytest.mark.parametrize("path", DRILLS, ids=[p.name for p in DRILLS])
def test_shipped_drills_are_valid(path: Path) -> None:
    drill, topology = load_drill(path)
    assert topology.exists()


def test_the_replay_spans_6h07m() -> None:
    drill, _ = load_drill(ROOT / "drills/byoip-2026-02-20.yaml")
    last = max(drill.offset(s) for s in drill.steps)
    assert last == 6 * 3600 + 7 * 60


def test_variants_extend_the_replay() -> None:
    base, _ = load_drill(ROOT / "drills/byoip-2026-02-20.yaml")
    v, _ = load_drill(ROOT / "drills/byoip-2026-02-20-mrai-30.yaml")
    assert v.timers.mrai == 30 and v.steps == base.steps and v.name != base.name


@pytest.mark.parametrize(
    "text,seconds", [("90s", 90), ("8m", 480), ("1h 7m", 4020), ("2h", 7200), ("1.5s", 1.5), (30, 30)]
)
def test_durations(text, seconds) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("bad", ["", "10", "5 minutes", "m"])
def test_bad_durations(bad) -> None:
    with pytest.raises(ValueError):
        parse_duration(bad)


def test_clock_and_midnight() -> None:
    assert parse_clock("17:48") == 17 * 3600 + 48 * 60
    d = Drill.model_validate({**GOOD, "start": "23:50", "steps": [{"at": "00:10", "do": "mark"}]})
    assert d.offset(d.steps[0]) == 20 * 60


def mutate(**changes) -> dict:
    d = copy.deepcopy(GOOD)
    d.update(changes)
    return d


BAD = [
    ("unknown step kind", mutate(steps=[{"at": "17:48", "do": "explode"}]), "steps[0]"),
    ("bad clock", mutate(steps=[{"at": "25:00", "do": "mark"}]), "steps[0].at"),
    ("unknown task", mutate(steps=[{"at": "17:48", "do": "task_start", "task": "nope"}]), "unknown task 'nope'"),
    ("zero speed", mutate(speed=0), "speed: Input should be greater than 0"),
    ("extra field", mutate(colour="red"), "colour: unknown field"),
    ("bad task duration", mutate(tasks={"cleanup": {**GOOD["tasks"]["cleanup"], "every": "often"}}), "tasks.cleanup.every"),
    ("fraction above 1", mutate(steps=[{"at": "17:48", "do": "dashboard", "fraction": 2}]), "fraction"),
    ("window backwards", mutate(realtime=[{"start": "17:55", "end": "17:50"}]), "realtime[0]: ends at 17:50, not after"),
    ("window past the end", mutate(realtime=[{"start": "17:50", "end": "18:30"}]), "realtime[0]: ends at 18:30, after the drill's last step"),
    ("windows overlap", mutate(realtime=[{"start": "17:50", "end": "17:55"}, {"start": "17:54", "end": "17:56"}]),
     "realtime[1]: starts at 17:54, inside realtime[0]"),
    ("window bad clock", mutate(realtime=[{"start": "5pm", "end": "17:56"}]), "realtime[0].start"),
    ("fault without kind", mutate(steps=[{"at": "17:48", "do": "fault", "node": "r1"}]), "steps[0].fault: Field required"),
]

# A team's automation (kind exec): every error names where it is.
EXEC = {"kind": "exec", "command": "python3 task.py"}


def with_exec(task: dict | None = None, steps: list | None = None, **top) -> dict:
    return mutate(tasks={"auto": {**EXEC, **(task or {})}},
                  steps=steps or [{"at": "17:48", "do": "task_start", "task": "auto"}], **top)


BAD += [
    ("exec without command", mutate(tasks={"auto": {"kind": "exec"}}, steps=[]), "tasks.auto.command: Field required"),
    ("exec empty command", with_exec({"command": "  "}), "tasks.auto.command: an empty command"),
    ("exec empty argv", with_exec({"command": ["python3", ""]}), "tasks.auto.command: an empty command"),
    ("exec bad mode", with_exec({"mode": "sometimes"}), "tasks.auto.mode: Input should be 'once', 'every' or 'service'"),
    ("exec every without every", with_exec({"mode": "every"}), "tasks.auto: mode 'every' needs every"),
    ("exec every on once", with_exec({"every": "5m"}), "tasks.auto: every is for mode 'every'"),
    ("exec bad limit", with_exec({"limit": "soon"}), "tasks.auto.limit: 'soon' is not a duration"),
    ("exec zero limit", with_exec({"limit": "0s"}), "limit must be more than 0 s"),
    ("exec customer without account", with_exec({"scope": {"role": "customer"}}),
     "tasks.auto.scope: a customer scope names its account"),
    ("exec admin scope", with_exec({"scope": {"role": "admin"}}), "tasks.auto.scope.role: Input should be"),
    ("exec lab's env", with_exec({"env": {"BGPLAB_API_TOKEN": "x", "1BAD": "y"}}),
     "tasks.auto.env: environment names '1BAD', 'BGPLAB_API_TOKEN'"),
    ("exec unknown field", with_exec({"retries": 3}), "tasks.auto.retries: unknown field"),
    ("deletion requests count", with_exec(steps=[{"at": "17:48", "do": "deletion_requests", "count": 0}]),
     "steps[0].count: Input should be greater than or equal to 1"),
    ("api fault needs for", with_exec(steps=[{"at": "17:48", "do": "api_fault", "kind": "unavailable"}]),
     "steps[0].for: Field required"),
    ("api fault slow needs delay", with_exec(steps=[{"at": "17:48", "do": "api_fault", "kind": "slow", "for": "2m"}]),
     "steps[0]: a 'slow' API fault needs delay"),
    ("api fault on a cleanup task", mutate(steps=[{"at": "17:48", "do": "api_fault", "kind": "unavailable", "for": "1m",
                                                   "task": "cleanup"}]),
     "steps[0].task: an API fault acts on an exec task's token; 'cleanup' is not one"),
    ("calibration names a knob that is not there",
     mutate(calibration={"withdrawn_by_task": {"knobs": ["tasks.cleanup.batchsize"], "derived_from": "1,100"}}),
     "calibration.withdrawn_by_task.knobs: tasks.cleanup.batchsize: no 'batchsize' in CleanupTask"),
    ("calibration names a step the drill has not",
     mutate(calibration={"duration_s": {"knobs": ["steps.restore.snapshot"], "derived_from": "x"}}),
     "calibration.duration_s.knobs: steps.restore.snapshot: the drill has no 'restore' step"),
    ("calibration without its source", mutate(calibration={"duration_s": {"knobs": ["edge.delay"]}}),
     "calibration.duration_s.derived_from: Field required"),
    ("exec runs as nobody known", with_exec({"run_as": "nobody"}), "tasks.auto.run_as: Input should be 'automation' or 'root'"),
]


@pytest.mark.parametrize("doc,fragment", [(d, f) for _, d, f in BAD], ids=[n for n, _, _ in BAD])
def test_bad_drills_name_the_problem(tmp_path: Path, doc: dict, fragment: str) -> None:
    doc = {**doc, "topology": str(ROOT / "topologies/minimal.yaml")}
    (tmp_path / "d.yaml").write_text(yaml.safe_dump(doc))
    with pytest.raises(DrillError) as err:
        load_drill(tmp_path / "d.yaml")
    assert fragment in str(err.value), str(err.value)


def test_missing_topology_is_reported_by_its_own_path(tmp_path: Path) -> None:
    (tmp_path / "d.yaml").write_text(yaml.safe_dump(mutate(topology="nowhere.yaml")))
    with pytest.raises(TopologyError, match="nowhere.yaml: 1 problem:\n  cannot read the file"):
        load_drill(tmp_path / "d.yaml")


def test_unreadable_drill_is_a_drill_error(tmp_path: Path) -> None:
    with pytest.raises(DrillError, match="cannot read the file"):
        load_drill(tmp_path / "missing.yaml")


def test_every_step_kind_has_one_handler() -> None:
    assert all(hasattr(Mechanism, f"_do_{k}") for k in step_kinds())
    assert len(step_kinds()) == len(set(step_kinds())) == 15


def test_deadline_defaults_to_twice_the_timeline_at_the_run_speed() -> None:
    d = Drill.model_validate({**GOOD, "settle": "5s"})
    # the timeline is 10 incident minutes; at speed 60 that is 10 lab seconds
    assert d.deadline(60) == 2 * 10 + 5 + 120
    assert Drill.model_validate({**GOOD, "max_duration": "90s"}).deadline(60) == 90


def test_range() -> None:
    assert Range(min=1, max=3).check(2) and not Range(min=1).check(0) and not Range(max=1).check(None)


def test_realtime_windows_play_at_speed_one_and_the_rest_compressed() -> None:
    d = Drill.model_validate(mutate(realtime=[{"start": "17:50", "end": "17:52", "label": "w"}]))
    c = d.clock(60)
    # 2 incident minutes at 60 (2 s), then 2 minutes at speed 1 (120 s), then 6 minutes at 60 (6 s)
    assert c.lab(120) == pytest.approx(2) and c.lab(240) == pytest.approx(122) and c.lab(600) == pytest.approx(128)
    for lab in (0, 1, 2, 50, 121.9, 122, 127):
        assert c.lab(c.incident(lab)) == pytest.approx(lab)
    assert c.window_at(150).label == "w" and c.window_at(240) is None and c.speed_at(130) == 1 and c.speed_at(10) == 60
    assert d.deadline(60) == pytest.approx(2 * 128 + 5 + 120)
    flat = d.clock(60, realtime=False)
    assert flat.lab(600) == pytest.approx(10) and flat.windows == ()


def test_the_replay_plays_its_withdrawals_revert_and_push_in_real_time() -> None:
    drill, _ = load_drill(ROOT / "drills/byoip-2026-02-20.yaml")
    labels = " ".join(w.label for w in drill.realtime)
    assert "withdrawal" in labels and "revert" in labels and "push" in labels
    c = drill.clock(240)
    for step in drill.steps:
        if step.do in ("revert", "config_push"):
            assert c.window_at(drill.offset(step)) is not None, step


def test_a_drill_on_another_topology_checks_it_before_anything(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from controller.cli import cli

    r = CliRunner().invoke(cli, ["drill", "run", str(ROOT / "drills/byoip-2026-02-20.yaml"), "--topology",
                                 str(tmp_path / "nowhere.yaml"), "--runs-dir", str(tmp_path / "runs")])
    assert r.exit_code == 2 and "nowhere.yaml: 1 problem:" in r.output and "cannot read the file" in r.output
    assert not (tmp_path / "runs").exists()


def test_the_mechanism_from_the_command_line(tmp_path: Path) -> None:
    """`bgplab drill mechanism`: the mini replay's mechanism alone, two seeds, as a table and JSON."""
    from click.testing import CliRunner

    from controller.cli import cli

    out = tmp_path / "m.json"
    r = CliRunner().invoke(cli, ["drill", "mechanism", str(ROOT / "tests/live/drills/mini-replay.yaml"),
                                 "--seed", "1", "--seed", "2", "--out", str(out)])
    assert r.exit_code == 0, r.output
    results = json.loads(out.read_text())["results"]
    assert [x["inventory_seed"] for x in results] == [1, 2]
    assert all(x["withdrawn"] > 0 and x["canary_failed"] and x["task_stopped"] for x in results)
    assert r.output.count("\n") >= 3 and "withdrawn" in r.output


def test_the_sensitivity_table_from_the_command_line(tmp_path: Path) -> None:
    """`bgplab drill sensitivity`: one knob of the mini replay, one step, as a table and JSON;
    bad input is a usage error naming it."""
    from click.testing import CliRunner

    from controller.cli import cli

    mini = str(ROOT / "tests/live/drills/mini-replay.yaml")
    out = tmp_path / "s.json"
    r = CliRunner().invoke(cli, ["drill", "sensitivity", mini, "--knob", "tasks.cleanup.batch", "--steps", "0.5",
                                 "--out", str(out)])
    assert r.exit_code == 0, r.output
    t = json.loads(out.read_text())
    assert [(x["knob"], x["value"]) for x in t["rows"]] == [("tasks.cleanup.batch", 3), ("tasks.cleanup.batch", 9)]
    assert "tasks.cleanup.batch" in r.output and "not moved:" in r.output
    r = CliRunner().invoke(cli, ["drill", "sensitivity", mini, "--steps", "2"])
    assert r.exit_code == 2 and "--steps takes shares between 0 and 1" in r.output
    r = CliRunner().invoke(cli, ["drill", "sensitivity", str(tmp_path)])
    assert r.exit_code == 2 and "is not a drill's run directory" in r.output
    r = CliRunner().invoke(cli, ["drill", "sensitivity", str(ROOT / "drills/withdraw-all-byoip.yaml")])
    assert r.exit_code == 2 and "the sensitivity table is about the replay's mechanism" in r.output


def test_a_restore_must_name_a_snapshot_taken_before_it() -> None:
    steps = [{"at": "00:05", "do": "restore", "snapshot": "good"}, {"at": "00:06", "do": "snapshot", "name": "good"}]
    with pytest.raises(ValueError, match=r"steps\[0\].snapshot: no snapshot step named 'good' comes before it"):
        Drill.model_validate({**GOOD, "steps": steps})


def test_guardrail_windows_are_incident_time_and_reach_the_api_in_lab_seconds() -> None:
    d = Drill.model_validate({**GOOD, "guardrails": {"breaker": {"max_withdrawals": 25, "window": "10m"},
                                                     "blast_radius": {"max_share": 0.02, "window": "1h"}}})
    assert d.guardrails.for_api(60) == {"strict_api": False, "breaker": {"max_withdrawals": 25, "window": 10.0},
                                        "blast_radius": {"max_share": 0.02, "window": 60.0}}
    with pytest.raises(ValueError, match="guardrails.breaker.window"):
        Drill.model_validate({**GOOD, "guardrails": {"breaker": {"max_withdrawals": 25, "window": "soon"}}})


def test_a_valid_exec_task() -> None:
    d = Drill.model_validate(with_exec({"mode": "every", "every": "10m", "limit": "30s", "command": ["./task", "--dry-run"],
                                        "scope": {"role": "customer", "account": "acct-0001"}, "env": {"STAGE": "lab"}},
                                       steps=[{"at": "17:48", "do": "task_start", "task": "auto"},
                                              {"at": "17:50", "do": "api_fault", "kind": "slow", "for": "2m", "delay": 0.5},
                                              {"at": "17:58", "do": "task_stop", "task": "auto"}]))
    t = d.tasks["auto"]
    assert t.kind == "exec" and t.mode == "every" and parse_duration(t.limit) == 30 and t.scope.account == "acct-0001"
    assert d.steps[1].duration == "2m"  # `for` in the file


@pytest.mark.parametrize("implementation", ["gobgp", "openbgpd"])
def test_a_drill_that_probes_refuses_a_lab_that_forwards_nothing(tmp_path: Path, implementation: str) -> None:
    """RIB-only routers forward nothing: the replay's probes would measure the lab's blindness.
    Refused before anything exists, naming the routers and why; BIRD and FRR pass the check."""
    # imported here: the check, and the entry that applies it, only this test needs
    from controller.drills import _forwards, run_drill
    from lab.topology import load_topology

    with pytest.raises(DrillError, match=r"routers eye1, eye2, observer, t1, t2, t3, t4 are RIB-only") as err:
        run_drill(ROOT / "drills" / "byoip-2026-02-20.yaml", runs_dir=tmp_path, implementation=implementation)
    assert "nothing would be forwarded" in str(err.value) and not any(tmp_path.iterdir())
    drill, topo = load_drill(ROOT / "drills" / "byoip-2026-02-20.yaml")
    for forwards in ("frr", "bird"):
        _forwards(drill, load_topology(topo, forwards), "replay")


def test_ranges_by_implementation_replace_the_drill_s_only_where_one_implementation_ran(tmp_path: Path) -> None:
    # imported here: the entry's helper, only this test needs it
    from controller.drills import expect_on

    doc = yaml.safe_load((ROOT / "drills" / "byoip-2026-02-20.yaml").read_text())
    doc["topology"] = str(ROOT / "topologies" / "byoip-incident.yaml")
    doc["by_implementation"] = {"bird": {"hunted_share": {"min": 0.5}}}
    path = tmp_path / "d.yaml"
    path.write_text(yaml.safe_dump(doc))
    drill, _ = load_drill(path)
    ran = {"t1": "bird", "t2": "bird", "collector": "frr"}
    expect, impl = expect_on(drill, ran, "collector")
    assert impl == "bird" and expect.hunted_share.min == 0.5
    assert expect.withdrawn_by_task == drill.expect.withdrawn_by_task  # the rest is the drill's
    for mixed in ({"t1": "bird", "t2": "frr", "collector": "frr"}, {"t1": "frr", "collector": "frr"}, None):
        assert expect_on(drill, mixed, "collector") == (drill.expect, None)
    doc["by_implementation"] = {"cisco": {"hunted_share": {"min": 0.5}}}
    path.write_text(yaml.safe_dump(doc))
    with pytest.raises(DrillError, match="by_implementation: .*no router implementation cisco"):
        load_drill(path)


def test_a_variant_keeps_its_own_expectations_on_an_implementation() -> None:
    # imported here: the entry's helper, only this test needs it
    from controller.drills import expect_on

    replay, _ = load_drill(ROOT / "drills" / "byoip-2026-02-20.yaml")
    guarded, _ = load_drill(ROOT / "drills" / "byoip-2026-02-20-guarded-all.yaml")
    ran = {"t1": "bird", "collector": "frr"}
    assert str(expect_on(replay, ran, "collector")[0].hunted_share) == "[0.6, ], at t1 not held"
    assert expect_on(guarded, ran, "collector")[0] == guarded.expect  # it holds no path hunting: nothing added

"""The cleanup task and the dashboard and restore steps, against the real Addressing API
(FastAPI's TestClient over a seeded inventory), through the same client the drills use."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from controller.api import Behaviour, create_app
from controller.client import ApiClient
from controller.drills import runner as R
from controller.drills.model import Dashboard, Revert, ConfigPushStep, load_drill
from controller.drills.tasks import CleanupRunner
from controller.inventory import Inventory
from lab.plan import build_plan
from lab.topology import load_topology

ROOT = Path(__file__).resolve().parents[2]
DRILL = ROOT / "tests/live/drills/mini-replay.yaml"


@pytest.fixture
def setup(tmp_path: Path):
    drill, topology = load_drill(DRILL)
    inv = Inventory(tmp_path / "inventory.sqlite")
    inv.seed(build_plan(load_topology(topology), "t"), seed=3)
    behaviour = Behaviour()
    api = ApiClient("t", http=TestClient(create_app(inv, lambda changed: {"ok": True}, behaviour)))
    runner = R.DrillRunner(drill, topology, tmp_path / "run")
    runner.rd.path.mkdir()
    runner.events = open(runner.rd.events, "a")
    original = runner._bindings_before(api)
    task = CleanupRunner("cleanup", drill.tasks["cleanup"], api, runner.st, runner.log, lambda: 1000.0)
    play = R.Play(runner, api, {"cleanup": task}, original, [])
    return inv, behaviour, api, runner, task, play


def test_the_task_deletes_what_the_buggy_handler_returns(setup) -> None:
    inv, behaviour, api, runner, task, _ = setup
    behaviour.pending_delete_bug = True
    task.start(0)
    task.cycle()
    withdrawn = runner.st.withdrawn_by_task
    assert len(withdrawn) == task.spec.batch == 6 and set(withdrawn.values()) == {1000.0}
    assert all(not p.advertised for p in inv.prefixes() if p.cidr in withdrawn)
    # bindings lag: 3 calls a cycle, round robin over the oldest withdrawn prefixes
    assert sum(len(v) for v in runner.st.bindings_removed.values()) == 3
    task.cycle()
    assert len(withdrawn) == 12 and sum(len(v) for v in runner.st.bindings_removed.values()) == 6


def test_with_the_strict_handler_the_task_finds_nothing_and_counts_its_errors(setup) -> None:
    inv, behaviour, api, runner, task, _ = setup
    task.start(0)
    task.cycle()
    assert runner.st.withdrawn_by_task == {} and task.counts() == {"cycles": 1, "errors": 1}
    assert all(p.advertised for p in inv.prefixes())


def test_dashboard_revert_and_config_push(setup) -> None:
    inv, behaviour, api, runner, task, play = setup
    behaviour.pending_delete_bug = True
    task.start(0)
    for _ in range(4):
        task.cycle()
    affected = set(runner.st.withdrawn_by_task)
    bare = {p.cidr for p in inv.prefixes() if p.cidr in affected and not inv.bindings(p.id)}
    assert bare, "some prefixes lost every binding"
    # the dashboard plans toggles for a share of the affected customers; the API refuses the bare ones
    R.HANDLERS["dashboard"](play, Dashboard(at="18:00", do="dashboard", fraction=1.0, window="0s"))
    assert {x["cidr"] for _, x in play.dashboard_plan} == affected
    for _, x in play.dashboard_plan:
        runner._dashboard_toggle(api, x)
    assert runner.st.dashboard_refused == len(bare)
    assert set(runner.st.restore_requests["dashboard"]) == affected - bare
    # the revert restores only what kept a binding (nothing left here); the config push the rest
    R.HANDLERS["revert"](play, Revert(at="18:00", do="revert"))
    assert runner.st.restore_requests["revert"] == []
    R.HANDLERS["config_push"](play, ConfigPushStep(at="18:00", do="config_push"))
    assert set(runner.st.restore_requests["config_push"]) == bare
    assert all(p.advertised and inv.bindings(p.id) for p in inv.prefixes())
    assert set(runner.st.restore_times) == affected

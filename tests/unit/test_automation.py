"""The exec task's runner (controller.drills.automation) with real processes and no lab: its
modes, its time limit, its output files; and the JUnit file against the JUnit XML schema."""

from __future__ import annotations

import json
import os
import pwd
import shutil
import sys
import tempfile
import time
from pathlib import Path

import pytest
import xmlschema

from controller.drills.automation import AUTOMATION_PATH, AUTOMATION_USER, ExecContext, ExecRunner
from controller.drills.junit import write_junit
from controller.drills.model import ExecTask
from controller.drills.rundir import DrillState
from lab.errors import BgplabError

ROOT = Path(__file__).resolve().parents[2]
# As root (CI, make test) every run here is confined as a drill's is; without root there is
# no user to switch to, and the runs are the caller's own (run_as: root is what that means).
CONFINED = os.geteuid() == 0
# The Python a confined automation finds on its PATH (the controller's own may live where that
# user cannot reach, as pyenv's under /root does).
PY = (shutil.which("python3", path=AUTOMATION_PATH) if CONFINED else None) or sys.executable


@pytest.fixture
def tmp_path() -> Path:
    """A directory the automation's user may enter (pytest's own are root's alone, 0700)."""
    d = Path(tempfile.mkdtemp(prefix="bgplab-automation-test-"))
    d.chmod(0o755)
    yield d
    shutil.rmtree(d, ignore_errors=True)


def runner(tmp: Path, events: list, **spec) -> ExecRunner:
    spec.setdefault("run_as", "automation" if CONFINED else "root")
    task = ExecTask.model_validate({"kind": "exec", "asked": "nothing", **spec})
    ctx = ExecContext(lab="unit", url="http://127.0.0.1:9", drill="d", out_dir=tmp / "automation", cwd=tmp)
    r = ExecRunner("t", task, api=None, st=DrillState(), log=lambda kind, **kw: events.append((kind, kw)),
                   clock=time.time, context=ctx)
    r.token = "secret"
    return r


def drive(r: ExecRunner, until: float, step: float = 0.05, clock: list[float] | None = None) -> None:
    """Poll and cycle as Mechanism.advance does, on an incident clock of lab seconds."""
    end = time.time() + until
    while time.time() < end and r.running:
        now = clock[0] if clock else 0.0
        r.poll()
        if r.due(now):
            r.cycle()
        time.sleep(step)


def test_once_gets_the_api_and_its_token_and_writes_its_output(tmp_path: Path) -> None:
    events: list = []
    r = runner(tmp_path, events, command=[PY, "-c", "import os, sys; print(os.environ['BGPLAB_API_URL'], "
                                           "os.environ['BGPLAB_API_TOKEN'], os.environ['BGPLAB_TASK']); "
                                           "print('careful', file=sys.stderr)"])
    r.start(0.0)
    drive(r, 10)
    [run] = r.st.automation
    assert run["ok"] and run["exit_code"] == 0 and not r.running
    assert (tmp_path / run["stdout"]).read_text() == "http://127.0.0.1:9 secret t\n"
    assert (tmp_path / run["stderr"]).read_text() == "careful\n"
    assert run["stderr_tail"] == ""  # kept only for a failed run


@pytest.mark.skipif(not CONFINED, reason="switching to the automation's user needs root")
def test_the_automation_runs_as_its_own_user_with_a_clean_environment(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("BGPLAB_SECRET_OF_THE_CONTROLLER", "x")
    script = ("import json, os; print(json.dumps({'uid': os.getuid(), 'gid': os.getgid(), 'groups': os.getgroups(), "
              "'env': sorted(os.environ), 'home': os.environ['HOME'], 'umask': os.umask(0)}))")
    r = runner(tmp_path, [], command=[PY, "-c", script], env={"TEAM_SETTING": "1"})
    r.start(0.0)
    drive(r, 10)
    [run] = r.st.automation
    assert run["ok"], run
    got = json.loads((tmp_path / run["stdout"]).read_text())
    user = pwd.getpwnam(AUTOMATION_USER)
    assert (got["uid"], got["gid"], got["groups"]) == (user.pw_uid, user.pw_gid, [])
    assert got["env"] == sorted(["PATH", "HOME", "LANG", "TEAM_SETTING", "BGPLAB_API_URL", "BGPLAB_API_TOKEN",
                                 "BGPLAB_LAB", "BGPLAB_DRILL", "BGPLAB_TASK"])
    home = Path(got["home"])
    assert home.parent == tmp_path / "automation" and home.stat().st_uid == user.pw_uid and got["umask"] == 0o077


def test_a_failed_run_keeps_its_stderr_and_a_missing_command_is_a_failed_run(tmp_path: Path) -> None:
    r = runner(tmp_path, [], command="echo 'it broke' >&2; exit 7")
    r.start(0.0)
    drive(r, 10)
    [run] = r.st.automation
    assert run["exit_code"] == 7 and not run["ok"] and "it broke" in run["stderr_tail"]
    r = runner(tmp_path, [], command=["/nonexistent/task"])
    r.start(0.0)
    drive(r, 5)
    [run] = r.st.automation
    assert not run["ok"] and run["exit_code"] is None and "could not start" in (tmp_path / run["stderr"]).read_text()
    assert not r.running


def test_a_run_past_its_limit_is_ended_with_its_children(tmp_path: Path) -> None:
    # the command starts a child that ignores SIGTERM: SIGKILL to the group ends both
    script = "import signal, subprocess, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); " \
             "print(subprocess.Popen(['sleep', '600']).pid, flush=True); time.sleep(600)"
    r = runner(tmp_path, [], command=[PY, "-c", script], limit="1s", grace="0.5s")
    r.start(0.0)
    t0 = time.time()
    drive(r, 15)
    [run] = r.st.automation
    assert run["killed_at_limit"] and not run["ok"] and 1.0 <= time.time() - t0 < 5
    pid = int((tmp_path / run["stdout"]).read_text())
    time.sleep(0.2)
    assert not Path(f"/proc/{pid}").exists() or "Z" in Path(f"/proc/{pid}/stat").read_text().split()[2]


def test_every_runs_on_the_incident_clock_and_skips_while_the_last_run_goes_on(tmp_path: Path) -> None:
    clock = [0.0]
    r = runner(tmp_path, [], command=[PY, "-c", "import time; time.sleep(0.4)"], mode="every", every="10m")
    r.start(0.0)
    r.cycle()  # the first run, at the start
    assert r.runs == 1 and r.next_cycle == 600
    clock[0] = 600.0
    r.cycle()  # due again while the first still runs: skipped
    assert r.runs == 1 and r.skipped == 1 and r.next_cycle == 1200
    time.sleep(0.8)
    r.poll()
    assert r.running and len(r.st.automation) == 1  # a schedule goes on until stopped
    clock[0] = 1200.0
    r.cycle()
    assert r.runs == 2
    r.drill_over()  # no more runs; the one going may finish
    assert r.next_cycle == float("inf") and r.running
    drive(r, 5, clock=clock)
    assert not r.running and [x["ok"] for x in r.st.automation] == [True, True]


def test_a_service_runs_until_the_drill_stops_it(tmp_path: Path) -> None:
    r = runner(tmp_path, [], command=[PY, "-c", "import time\nwhile True: time.sleep(0.1)"], mode="service")
    r.start(0.0)
    r.cycle()
    time.sleep(0.3)
    r.poll()
    assert r.running and r.current is not None
    r.stop()
    drive(r, 5)
    [run] = r.st.automation
    assert run["stopped"] and run["ok"] and not run["killed_at_limit"]  # a service ends on SIGTERM


def test_exec_tasks_need_a_live_lab() -> None:
    task = ExecTask.model_validate({"kind": "exec", "command": "true"})
    with pytest.raises(BgplabError, match="runs a command .* against a live lab"):
        ExecRunner("t", task, None, DrillState(), lambda *a, **k: None, time.time)


def test_the_junit_file_is_valid_junit_xml(tmp_path: Path) -> None:
    schema = xmlschema.XMLSchema(ROOT / "tests" / "live" / "junit.xsd")
    checks = [{"expectation": "withdrawn_not_asked", "value": 1616, "range": "[, 0.0]", "ok": False, "source": "network"},
              {"expectation": "products_failed at dns", "value": 0, "range": "[, 0.0]", "ok": True, "source": "network",
               "n": 12},
              {"expectation": "hunted_share at t1", "value": 0.64, "range": "not held", "ok": None, "source": "network",
               "note": "not held: MRAI timer phase"}]
    metrics = {"run": {"outcome": "completed"}, "figures": {
        "withdrawn_not_asked": {"value": 1616, "source": "network", "basis": "b"},
        "automation_runs": {"value": [{"task": "t", "run": 1, "exit_code": 3, "killed_at_limit": False,
                                       "stderr_tail": "boom <&> ]]>"}], "source": "controller", "basis": "b"}}}
    p = write_junit(tmp_path / "out" / "j.xml", "your-cleanup-task", checks, run_dir=tmp_path, metrics=metrics,
                    seconds=12.5)
    schema.validate(str(p))
    text = p.read_text()
    assert 'failures="1"' in text and 'skipped="1"' in text and 'tests="3"' in text and 'time="12.500"' in text and "boom &lt;&amp;&gt;" in text
    p = write_junit(tmp_path / "e.xml", "d", [], error="lab 'x' did not come up", run_dir=tmp_path)
    schema.validate(str(p))
    assert 'errors="1"' in p.read_text()
    bad = tmp_path / "bad.xml"
    bad.write_text(text.replace(' type="expectation"', ""))
    with pytest.raises(xmlschema.XMLSchemaValidationError):
        schema.validate(str(bad))

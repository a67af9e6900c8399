"""A team's own automation, graded on real BGP sessions (kind exec), as a CI pipeline runs it:
`bgplab up`, `bgplab drill run ... --automation ... --junit ...`, `bgplab down`, each a
real command. One lab serves every run here: each drill leaves it as it found it."""

from __future__ import annotations

import json
import os
import signal
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Iterator

import pytest
import xmlschema

from controller.drills.grading import AUTOMATION_FIGURES
from lab.procs import alive
from lab.state import LabState
from lab.wait import wait_until
from tests.live.conftest import ROOT, bgplab, reference_lab_up

pytestmark = pytest.mark.live

CI_DRILL = ROOT / "tests" / "live" / "drills" / "your-cleanup-task-ci.yaml"
WITH_503 = ROOT / "tests" / "live" / "drills" / "your-cleanup-task-503-ci.yaml"
MISBEHAVES = ROOT / "tests" / "live" / "drills" / "automation-misbehaves.yaml"
SCHEMA = xmlschema.XMLSchema(ROOT / "tests" / "live" / "junit.xsd")


@pytest.fixture(scope="module")
def lab(live) -> Iterator[str]:
    with reference_lab_up("a") as name:
        yield name


def run(lab: str, drill: Path, tmp: Path, *extra: str, name_it: bool = True) -> tuple[int, dict, ET.Element, str]:
    """`bgplab drill run` on the lab that is up (named with --lab, or found as a pipeline's
    `bgplab up && bgplab drill run` finds it): its exit code, metrics.json, the JUnit file (validated)."""
    junit = tmp / "out.xml"
    p = bgplab("drill", "run", str(drill), *(("--lab", lab) if name_it else ()), "--runs-dir", str(tmp / "runs"),
               "--junit", str(junit), *extra, timeout=300)
    assert p.returncode in (0, 1), p.stdout[-3000:] + p.stderr[-3000:]
    assert f"running on lab '{lab}', which is up" in p.stderr, p.stderr[-2000:]
    [run_dir] = (tmp / "runs").iterdir()
    SCHEMA.validate(str(junit))  # raises, naming what is wrong, if it is not JUnit XML
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["run"]["outcome"] == "completed", metrics["run"]
    return p.returncode, metrics, ET.parse(junit).getroot(), p.stdout


def cases(root: ET.Element) -> dict[str, str | None]:
    """Each test case's name -> its failure message (None: passed)."""
    out = {}
    for c in root.iter("testcase"):
        f = c.find("failure") if c.find("failure") is not None else c.find("error")
        out[c.get("name")] = None if f is None else f.get("message")
    return out


def test_the_2026_02_20_task_fails_its_grade_and_the_defensive_one_passes(lab: str, tmp_path: Path) -> None:
    # The task as it ran: `?pending_delete` with no value against the day's handler, then delete
    # everything that came back (until its limit ends it).
    code, metrics, junit, out = run(lab, CI_DRILL, tmp_path / "buggy", "--automation",
                                    f"python3 {ROOT / 'examples' / 'automation' / 'cleanup_2026_02_20.py'}")
    F = metrics["figures"]
    assert code == 1, out
    assert F["asked"]["value"] == 12 and F["asked"]["source"] == "input"
    # measured at the collector: hundreds of prefixes nobody asked it to delete, gone everywhere
    assert F["withdrawn_not_asked"]["source"] == "network" and F["withdrawn_not_asked"]["value"] > 100
    assert F["observer_min"]["value"] < 6500 - 100
    assert F["bindings_removed_not_asked"]["value"] > 100
    assert F["accounts_affected"]["value"] >= 1
    [r] = F["automation_runs"]["value"]
    assert r["killed_at_limit"] and not r["ok"]  # still deleting at its limit
    c = cases(junit)
    assert c["withdrawn_not_asked"] and "expected [, 0.0]" in c["withdrawn_not_asked"]
    assert c["automation_failed_runs"] and c["api_denied"] is None
    assert {"withdrawn_not_asked", "bindings_removed_not_asked", "accounts_affected", "observer_min",
            "automation_failed_runs", "api_denied"} <= set(c)
    suite = junit.find("testsuite")
    assert int(suite.get("failures")) == sum(1 for v in c.values() if v) and int(suite.get("tests")) == len(c)
    assert "report.html" in suite.find("system-out").text

    # The lab is back as the drill found it: the defensive task meets the same 12 requests
    # (and the API answering it 503 for its first two incident minutes), and passes.
    code, metrics, junit, out = run(lab, WITH_503, tmp_path / "defensive", name_it=False)
    F = metrics["figures"]
    assert code == 0, out
    assert all(v is None for v in cases(junit).values()), cases(junit)
    assert F["withdrawn_in_network"]["value"] == 12 and F["withdrawn_not_asked"]["value"] == 0
    assert F["observer_min"]["value"] == 6488
    assert F["automation_changes"]["value"] == {"cleanup": {"applied": 12}}
    [r] = F["automation_runs"]["value"]
    assert r["ok"] and r["exit_code"] == 0
    err = (tmp_path / "defensive" / "runs").iterdir().__next__() / r["stderr"]
    assert "503, retrying" in err.read_text()  # it met the injected fault and retried


def test_an_automation_that_hangs_fails_or_reaches_outside_its_scope_is_reported(lab: str, tmp_path: Path) -> None:
    code, metrics, junit, out = run(lab, MISBEHAVES, tmp_path)
    assert code == 0, out  # the drill's own expectations say what each did; they hold
    F = metrics["figures"]
    assert set(AUTOMATION_FIGURES) <= set(F)  # every figure an exec drill has, this one made
    runs = {r["task"]: r for r in F["automation_runs"]["value"]}
    # hangs: ended at its 3 s limit (SIGTERM to its group), not before it
    assert runs["hangs"]["killed_at_limit"] and 3.0 <= runs["hangs"]["seconds"] < 8.0
    # fails: its exit code and its stderr, in the figures, the CLI's output and the JUnit file
    assert runs["fails"]["exit_code"] == 3 and "boom: the inventory changed under me" in runs["fails"]["stderr_tail"]
    assert "boom: the inventory changed under me" in out
    assert "boom: the inventory changed under me" in junit.find("testsuite").find("system-err").text
    # outside: a customer's token asking for three things outside its scope, three 403s that changed nothing
    assert runs["outside"]["ok"]
    run_dir = next((tmp_path / "runs").iterdir())
    said = (run_dir / runs["outside"]["stdout"]).read_text().split("\n")
    assert [line.rsplit(" ", 1)[1] for line in said if line] == ["403", "403", "403"]
    # escapes: every way out of a read-only token, each refused (its own account of them), and
    # the grade names the two the API saw: its token's 403 and the seed-derived token's 401
    attempts = [json.loads(x) for x in (run_dir / runs["escapes"]["stdout"]).read_text().splitlines()]
    assert runs["escapes"]["ok"], (attempts, runs["escapes"])
    assert all(a["refused"] for a in attempts), attempts
    tried = {a["attempt"].split(" (")[0] for a in attempts}
    assert {"read the lab's admin token", "read the lab's inventory", "list the lab's directory",
            "withdraw every BYOIP prefix with a token derived from the seed",
            "withdraw every BYOIP prefix with its own read-only token", "bgplab prefixes withdraw",
            "ip netns exec into a router's namespace", "signal a router's daemon"} <= tried, tried
    assert next(a for a in attempts if "derived" in a["attempt"])["how"] == "HTTP 401"
    assert F["api_denied"]["value"] == 4 and F["api_unauthorized"]["value"] == 1
    refused = F["refused_requests"]["value"]
    assert sum(r.startswith("403 ") for r in refused) == 4
    assert [r for r in refused if r.startswith("401 ")] == [
        "401 PATCH /v1/prefixes/bgp/status: the Authorization header holds no token of this lab's (Bearer <token>)"]
    assert F["automation_run_as"]["value"] == {n: "automation" for n in runs}
    assert F["withdrawn_in_network"]["value"] == 0 and F["bindings_removed"]["value"] == 0
    assert set(cases(junit)) == {"automation_killed", "automation_failed_runs", "api_denied", "api_unauthorized",
                                 "withdrawn_in_network"}


def test_automation_needs_an_exec_task(lab: str, tmp_path: Path) -> None:
    p = bgplab("drill", "run", str(ROOT / "drills" / "transit-session-reset.yaml"), "--lab", lab,
               "--automation", "true", "--runs-dir", str(tmp_path))
    assert p.returncode == 2 and "--automation: this drill has no exec task" in p.stderr, p.stderr
    assert not any(tmp_path.iterdir())  # nothing half-made


def test_a_lab_that_lost_a_daemon_runs_no_drill(lab: str, tmp_path: Path) -> None:
    """A drill on a lab that lost one of its daemons would measure the lab's breakage, not the
    network's behaviour: it is refused, naming the daemon, and nothing is made. (Last in this
    module: the lab stays without that daemon until it goes down.)"""
    state = LabState.load(lab)
    pid = state.daemons()["edge-ams"]["responder"]
    os.kill(pid, signal.SIGKILL)  # a daemon of this test's own lab, by its PID
    wait_until(lambda: (not alive(pid), "still alive"), timeout=10, what="the responder to end")
    p = bgplab("drill", "run", str(ROOT / "drills" / "withdraw-all-byoip.yaml"), "--lab", lab,
               "--runs-dir", str(tmp_path / "runs"))
    assert p.returncode != 0, p.stdout[-2000:]
    assert f"lab '{lab}' has daemons that are not running: responder on edge-ams (pid {pid})" in p.stderr, p.stderr[-2000:]
    assert not (tmp_path / "runs").exists()  # nothing half-made

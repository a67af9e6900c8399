"""The minimal lab, end to end: up, converged in every kernel table, down to nothing."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lab import lifecycle
from lab.routers.frr import daemons as frr
from lab.errors import LabExists, UpFailed
from lab.kernel import count_lab_routes, count_lab_routes_fast
from lab.lifecycle import Timeouts
from lab.running import RunningLab
from lab.state import LabState, lab_dir

from .conftest import ROOT, bgplab, leftovers, unique_name
from .hostview import snapshot

pytestmark = pytest.mark.live


def test_minimal_up_converges_then_down_leaves_nothing(lab_factory) -> None:
    before = snapshot()
    report = lab_factory("minimal")
    lab, plan = report.lab, report.plan
    state = LabState.load(lab)

    # every session Established, seen from each router
    for r in plan.routers():
        sessions = frr.sessions(frr.FrrPaths(state.node_dir(r.name)))
        assert {s["state"] for s in sessions.values()} == {"Established"}, (r.name, sessions)
        assert len(sessions) == len(r.sessions)

    # every router's kernel table holds its prefixes, read through pyroute2
    for r in plan.routers():
        if not r.installs_routes:
            continue
        want = {f: len(s) for f, s in plan.expected[r.name].items()}
        assert want == {"ipv4": 200, "ipv6": 50}
        assert count_lab_routes(r.namespace, plan.pool_keys) == want
        # the fast reader `up` waits on agrees with pyroute2
        assert count_lab_routes_fast(r.namespace, plan.pool_keys) == want

    # the collector installs nothing and records what it hears as MRT
    collector = plan.nodes["collector"]
    assert count_lab_routes(collector.namespace, plan.pool_keys) == {"ipv4": 0, "ipv6": 0}
    mrt = frr.FrrPaths(state.node_dir("collector")).mrt
    assert mrt.stat().st_size > 1000

    # no interface of the lab's is visible on the host, and the host is unchanged
    assert snapshot() == before

    r = lifecycle.down(lab)
    assert r.existed
    assert leftovers(lab) == []
    assert snapshot() == before
    # a second down is a no-op
    assert lifecycle.down(lab).existed is False


def test_up_of_a_name_that_is_up_changes_nothing(lab_factory) -> None:
    report = lab_factory("minimal")
    pids = LabState.load(report.lab).pids()
    with pytest.raises(LabExists, match="already"):
        lifecycle.up(ROOT / "topologies/minimal.yaml", report.lab)
    state = LabState.load(report.lab)
    assert state is not None and state.status == "up" and state.pids() == pids
    assert all(os.path.exists(f"/proc/{p}") for p in pids)


def test_failed_up_removes_everything_it_made(runtime) -> None:
    name = unique_name("f")
    # Daemons start, then the session wait gives up at once: up must remove them all.
    with pytest.raises(UpFailed) as err:
        lifecycle.up(ROOT / "topologies/minimal.yaml", name, runtime=runtime, timeouts=Timeouts(sessions=0.0))
    assert "wait for sessions failed" in str(err.value)
    assert "everything this attempt made has been removed" in str(err.value)
    assert leftovers(name) == []


def test_two_labs_at_once(lab_factory) -> None:
    a = lab_factory("minimal")
    b = lab_factory("minimal")
    for rep in (a, b):
        r1 = rep.plan.nodes["r1"]
        assert count_lab_routes(r1.namespace, rep.plan.pool_keys) == {"ipv4": 200, "ipv6": 50}
    lifecycle.down(a.lab)
    assert leftovers(a.lab) == []
    # b is untouched by a's down
    state = LabState.load(b.lab)
    r1 = frr.sessions(frr.FrrPaths(state.node_dir("r1")))
    assert {s["state"] for s in r1.values()} == {"Established"}
    assert count_lab_routes(b.plan.nodes["r1"].namespace, b.plan.pool_keys) == {"ipv4": 200, "ipv6": 50}


@pytest.mark.parametrize("when", ["namespaces", "daemons", "sessions"])
def test_sigkill_in_the_middle_of_up_then_down_leaves_nothing(runtime, when: str) -> None:
    name = unique_name("k")
    before = snapshot()
    proc = subprocess.Popen(
        [sys.executable, "-m", "controller.cli", "up", "topologies/minimal.yaml", "--name", name, "--runtime", runtime],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    state_file = lab_dir(name) / "state.json"

    def reached() -> bool:
        try:
            data = json.loads(state_file.read_text())
        except (OSError, ValueError):
            return False
        if when == "namespaces":
            return len(data["namespaces"]) >= 2
        if when == "daemons":
            return "bgpd" in data["daemons"].get("r1", {})
        return "exabgp" in data["daemons"].get("edge", {})

    deadline = time.monotonic() + 30
    while not reached():
        assert proc.poll() is None, "up ended before the point to kill it"
        assert time.monotonic() < deadline, f"up never reached {when}"
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert leftovers(name), "nothing to clean up: the kill came too late to test anything"

    out = bgplab("down", name)
    assert out.returncode == 0, out.stderr
    assert leftovers(name) == []
    assert snapshot() == before
    again = bgplab("down", name)
    assert again.returncode == 0 and "nothing to do" in again.stdout


def test_down_works_without_the_topology_file(runtime, tmp_path: Path) -> None:
    topo = tmp_path / "copy.yaml"
    topo.write_text((ROOT / "topologies/minimal.yaml").read_text())
    name = unique_name("g")
    try:
        lifecycle.up(topo, name, runtime=runtime)
        topo.unlink()
        st = RunningLab.open(name).status()
        assert {n.name for n in st} == {"edge", "r1", "r2", "collector"}
    finally:
        lifecycle.down(name)
    assert leftovers(name) == []

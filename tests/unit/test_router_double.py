"""A second router implementation is one module and one table entry: a test double of the
Router protocol (lab.routers.base), registered in lab.routers.ROUTERS, is accepted by the
topology, the plan, the lifecycle (render, dry-run, start, ready, sessions), the running
lab's status, the controller's sampler and the dashboard's poller, none of which names it.

The double's daemon is a marked `sleep` (the fake runtime of test_lifecycle_fake starts it);
its sessions are the plan's, Established once its daemon is ready."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

import lab.routers
import lab.state
from controller.dashboard import SessionPoller
from controller.observe.sampler import Sampler
from lab import lifecycle
from lab.daemons.base import Toolset
from lab.errors import BgplabError, UpFailed
from lab.kinds import daemons_of, router_of, start_order
from lab.plan import NodePlan, build_plan
from lab.procs import alive, mark_env
from lab.routers.base import Install
from lab.running import RunningLab
from lab.runtime.docker import DockerRuntime
from lab.state import LabState
from lab.topology import parse_topology
from tests.unit.test_lifecycle_fake import FakeNet, FakeRuntime, _reap

TOPOLOGY = {
    "name": "dbl",
    "nodes": {
        "r1": {"kind": "router", "implementation": "double", "role": "transit", "asn": 65001},
        "r2": {"kind": "router", "implementation": "double", "role": "peer", "asn": 65002},
        "collector": {"kind": "router", "implementation": "double", "role": "collector", "asn": 65500},
    },
    "links": [["r1", "r2"], ["r1", "collector"]],
}
# Beside FRR: each implementation's daemons in its own order
MIXED = {**TOPOLOGY, "nodes": {**TOPOLOGY["nodes"], "r3": {"kind": "frr", "role": "transit", "asn": 65003}},
         "links": [*TOPOLOGY["links"], ["r1", "r3"]]}


class _DoubleDaemon:
    name = "doubled"
    after: tuple[str, ...] = ()
    check_timeout = 5.0

    def write(self, lab: str, node: NodePlan, node_dir: Path, tools: Toolset) -> None:
        for name, text in DoubleRouter().render(lab, node, node_dir).items():
            (node_dir / name).write_text(text)

    def check_argv(self, node: NodePlan, node_dir: Path, tools: Toolset) -> list[str]:
        return [str(tools.router_dirs["double"] / "doubled"), "--check", str(node_dir / "double.json")]

    def check_result(self, node: NodePlan, node_dir: Path, rc: int | None, out: str, err: str) -> None:
        if rc != 0:
            raise BgplabError(f"node {node.name}: doubled rejected its config")

    def argv(self, node: NodePlan, node_dir: Path, tools: Toolset) -> list[str]:
        return [str(tools.router_dirs["double"] / "doubled"), str(node_dir / "double.json")]

    def environment(self) -> dict[str, str] | None:
        return None

    def ready(self, node_dir: Path) -> bool:
        (node_dir / "ready").touch()  # the fake runtime's `sleep` writes nothing: ready once started
        return True


class DoubleRouter:
    """Every member of the protocol, from the config it rendered."""

    name = "double"
    label = "Double"
    daemons = (_DoubleDaemon(),)
    log_files = ("doubled.out",)
    kernel_proto = None
    mrai = False
    records_updates = True  # the topologies here make it their collector (its feed is empty)
    poll_interval = 0.1
    install = Install((), Path("/nonexistent/double"), None)  # no package: no image holds it

    def host_tools(self) -> tuple[Path, tuple[int, int]]:
        return Path("/nonexistent/double"), (0, 0)

    def version(self, run, tools: Toolset) -> str:
        return run([str(tools.router_dirs["double"] / "doubled"), "--version"]).strip() or "0.0-double"

    def render(self, lab: str, node: NodePlan, node_dir: Path) -> dict[str, str]:
        return {"double.json": json.dumps({"lab": lab, "asn": node.asn,
                                           "neighbors": {str(s.peer_v4): s.peer for s in node.sessions}})}

    def start_script(self, node: NodePlan, node_dir: Path, tools_dir: Path, owner: str) -> list[str]:
        return [f"{tools_dir}/doubled {node_dir}/double.json &"]

    def _conf(self, node_dir: Path) -> dict:
        return json.loads((node_dir / "double.json").read_text())

    def sessions(self, node_dir: Path) -> dict[str, dict]:
        up = (node_dir / "ready").exists()
        return {a: {"state": "Established" if up else "Active", "received": {"ipv4": 0, "ipv6": 0},
                    "sent": {"ipv4": 0, "ipv6": 0}, "description": peer}
                for a, peer in self._conf(node_dir)["neighbors"].items()}

    def received(self, node_dir: Path) -> dict[str, int]:
        return {"ipv4": 0, "ipv6": 0}

    def rib(self, node_dir: Path, family: str = "ipv4") -> dict[str, list[dict]]:
        return {}

    def updates_sent(self, node_dir: Path) -> int:
        return 0

    def message_sizes(self, node_dir: Path) -> dict[str, int]:
        return {a: 4096 for a in self._conf(node_dir)["neighbors"]}

    def clear_session(self, node_dir: Path, address: str) -> None:
        (node_dir / "cleared").write_text(address)

    def feed(self, node_dir: Path) -> Path | None:
        return None

    def shell(self, node_dir: Path, commands: list[str]) -> list[str]:
        return ["doublesh", str(node_dir), *commands]


@pytest.fixture
def double(monkeypatch, tmp_path: Path):
    """The double as a table entry, the way an implementation is added."""
    monkeypatch.setitem(lab.routers.ROUTERS, "double", f"{__name__}:DoubleRouter")
    monkeypatch.setattr(lab.state, "RUN_ROOT", tmp_path / "run")
    lab.routers.get_router.cache_clear()
    yield
    lab.routers.get_router.cache_clear()


def test_a_second_implementation_is_accepted_by_the_plan_lifecycle_sampler_and_dashboard(double, tmp_path: Path) -> None:
    mixed = build_plan(parse_topology(MIXED, "mixed.yaml"), "mixed")
    assert mixed.implementations == ("double", "frr")
    assert [d.name for d in daemons_of(mixed.nodes["r1"])] == ["doubled"]
    assert [d.name for d in start_order(mixed)] == ["doubled", "zebra", "bgpd"]
    plan = build_plan(parse_topology(TOPOLOGY, "dbl.yaml"), "dbl")
    topo = tmp_path / "dbl.yaml"
    topo.write_text(json.dumps(TOPOLOGY))
    rt, net = FakeRuntime(), FakeNet()
    # announce=False: the lab has no speakers; up ends once every session is Established
    try:
        report = lifecycle.up(topo, "dbl", rt=rt, net=net, announce=False)
        assert report.router_versions["double"] == "0.0-double"
        spawned = [e for e in rt.log if e[0] == "spawn"]
        assert {e[1] for e in spawned if e[2] == "doubled"} == {"r1", "r2", "collector"}
        running = RunningLab("dbl", plan, rt)
        status = {s.name: s for s in running.status(kernel=False)}
        assert status["r1"].kind == "double" and {x["state"] for x in status["r1"].sessions} == {"Established"}
        nd = running.node_dir
        sampler = Sampler({}, plan.pool_keys, {"r2": (router_of(plan.nodes["r2"]), nd("r2"), [])}, tmp_path)
        assert sampler._observer_counts()["r2"] == {"ipv4": 0, "ipv6": 0, "from": "table"}
        poller = SessionPoller(plan, nd, 60, lambda: 0)
        assert poller._poll() is None
        assert poller.latest["sessions"]["r1|r2"] == "Established"
        router_of(plan.nodes["r1"]).clear_session(nd("r1"), "10.0.0.1")
        assert (nd("r1") / "cleared").read_text() == "10.0.0.1"
    finally:
        lifecycle.down("dbl", rt=rt)
        _reap(rt)


def test_an_implementation_the_runtime_lacks_fails_before_anything_exists(double, tmp_path: Path) -> None:
    with pytest.raises(BgplabError, match="the node image has no double"):
        DockerRuntime().tools(("frr", "double"))
    with pytest.raises(BgplabError, match="no router implementation 'cisco'"):
        lab.routers.get_router("cisco")


def test_what_up_starts_once_the_daemons_run_is_the_lab_s(double, tmp_path: Path) -> None:
    """`bgplab up` starts the controller once every daemon runs, while the lab converges
    (lifecycle.up's ``daemons_started``): recorded in the record `up` holds, so `up`'s own later
    writes keep it, and removed with the lab when `up` fails after it."""
    topo = tmp_path / "dbl.yaml"
    topo.write_text(json.dumps(TOPOLOGY))
    for name, fails in (("dbl2", False), ("dbl3", True)):
        rt, started = FakeRuntime(), []

        def daemons_started(state, plan, fails=fails, rt=rt, started=started) -> None:
            assert {e[2] for e in rt.log if e[0] == "spawn"} == {"doubled"}  # every daemon runs
            p = subprocess.Popen(["sleep", "60"], env=mark_env(state.lab), start_new_session=True)
            rt.pids.append(p.pid)
            state.add_daemon("controller", "api", p.pid)
            started.append(p.pid)
            if fails:
                raise RuntimeError("the controller could not start")

        try:
            if fails:
                with pytest.raises(UpFailed) as err:
                    lifecycle.up(topo, name, rt=rt, net=FakeNet(), announce=False, daemons_started=daemons_started)
                assert err.value.step == "start the controller"
                _reap(rt)
                assert not alive(started[0]) and LabState.load(name) is None
            else:
                lifecycle.up(topo, name, rt=rt, net=FakeNet(), announce=False, daemons_started=daemons_started)
                state = LabState.load(name)
                assert state.status == "up" and state.daemons()["controller"]["api"] == started[0]
        finally:
            lifecycle.down(name, rt=rt)
            _reap(rt)


def test_a_controller_started_during_up_waits_for_it_and_ends_when_it_is_gone(double, tmp_path: Path) -> None:
    """The controller `up` started waits for the lab to be up, with no clock of its own: it ends
    when the lab is removed (up failed) or when the `up` that creates it is gone (killed)."""
    from controller.service import EventLog, wait_for_up  # uvicorn and the API: only this test needs them

    log = EventLog(tmp_path / "controller.jsonl")
    state = LabState.create("wfu", "fake", str(tmp_path / "t.yaml"))
    dead = subprocess.Popen(["true"])
    dead.wait()
    state.set(pid=dead.pid)
    with pytest.raises(SystemExit, match="the `up` that creates it .* is gone"):
        wait_for_up("wfu", True, log)
    state.set(pid=os.getpid(), status="up", announced=False)
    with pytest.raises(SystemExit, match="came up without its prefixes announced"):
        wait_for_up("wfu", True, log)
    assert wait_for_up("wfu", False, log).status == "up"
    shutil.rmtree(state.dir)
    with pytest.raises(SystemExit, match="did not come up \\(gone\\)"):
        wait_for_up("wfu", False, log)

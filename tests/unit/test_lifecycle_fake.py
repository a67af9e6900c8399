"""`up`'s rollback and `down`'s order, without root: a fake runtime and fake namespace
helpers stand in for the kernel; the lab's record, its configs and its marked processes
are real (the processes are `sleep`s carrying the lab's mark, ended by `down` as daemons
would be). The same behaviour is tested live on both runtimes in tests/live."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

import lab.state
from lab import lifecycle
from lab.errors import TeardownError, UpFailed
from lab.lifecycle import Timeouts
from lab.plan import NodePlan
from lab.procs import alive, lab_of, mark_env
from lab.runtime import ExecResult, Toolset
from lab.wait import wait_until

ROOT = Path(__file__).resolve().parents[2]
MINIMAL = ROOT / "topologies" / "minimal.yaml"


class FakeRuntime:
    """Nodes are names in a set; daemons are marked `sleep` processes (or, for the daemon
    named in ``fail``, a process that exits at once); every call is logged in order."""

    name = "fake"

    def __init__(self, fail: str | None = None, create_fails: bool = False, remove_problem: str | None = None):
        self.fail, self.create_fails, self.remove_problem = fail, create_fails, remove_problem
        self.nodes: set[str] = set()
        self.pids: list[int] = []
        self.log: list[tuple] = []

    def prepare(self, progress) -> None:
        self.log.append(("prepare",))

    def tools(self, implementations: tuple[str, ...]) -> Toolset:
        return Toolset({n: Path(f"/nonexistent/{n}") for n in implementations}, "exabgp", "bridge",
                       {n: (os.getuid(), os.getgid()) for n in implementations})

    def create_nodes(self, lab: str, nodes: list[NodePlan]) -> None:
        if self.create_fails:
            self.nodes.add(nodes[0].namespace)  # half made: one node exists when it fails
            raise OSError("the fake kernel refused the second namespace")
        self.nodes |= {n.namespace for n in nodes}
        self.log.append(("create_nodes", len(nodes)))

    def spawn(self, lab: str, node: NodePlan, argv: list[str], *, log: Path, env=None) -> int:
        daemon = Path(argv[0]).name if "/" in argv[0] else argv[0]
        daemon = "exabgp" if daemon == "exabgp" else daemon
        cmd = ["true"] if daemon == self.fail else ["sleep", "60"]
        p = subprocess.Popen(cmd, env=mark_env(lab, env), start_new_session=True)
        self.pids.append(p.pid)
        if daemon == "zebra":  # zebra is ready when its zserv socket exists
            (log.parent / "zserv.api").touch()
        self.log.append(("spawn", node.name, daemon))
        return p.pid

    def exec(self, lab: str, node: NodePlan, argv: list[str], *, timeout: float = 30.0, env=None) -> ExecResult:
        return ExecResult(argv, 0, "", "")  # every config dry run passes

    def exec_argv(self, lab: str, node: str, argv: list[str], *, tty: bool = False) -> list[str]:
        return argv

    def nodes_of(self, lab: str) -> list[str]:
        return sorted(self.nodes)

    def remove(self, lab: str, names: list[str]) -> list[str]:
        self.log.append(("remove", tuple(names), tuple(p for p in self.pids if alive(p))))
        self.nodes -= set(names)
        return [self.remove_problem] if self.remove_problem else []


class FakeNet:
    def __init__(self) -> None:
        self.links: list[tuple[str, str]] = []
        self.routes: list[str] = []

    def add_link(self, a, ifa, b, ifb) -> None:
        self.links.append((a.name, b.name))

    def add_routes(self, node) -> None:
        self.routes.append(node.name)


@pytest.fixture(autouse=True)
def run_root(tmp_path: Path, monkeypatch) -> Path:
    monkeypatch.setattr(lab.state, "RUN_ROOT", tmp_path / "run")
    return tmp_path / "run"


def _reap(rt: FakeRuntime) -> None:
    for pid in rt.pids:
        try:
            os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            pass


def test_a_daemon_that_dies_at_start_rolls_everything_back(run_root: Path) -> None:
    rt, net = FakeRuntime(fail="bgpd"), FakeNet()
    with pytest.raises(UpFailed) as err:
        lifecycle.up(MINIMAL, "fk1", rt=rt, net=net, timeouts=Timeouts(daemons=10))
    _reap(rt)
    assert err.value.step == "start bgpd" and "bgpd on" in str(err.value.cause) and "exited at start" in str(err.value.cause)
    assert "everything this attempt made has been removed" in str(err.value)
    # it got that far: every node, every link, zebra everywhere before any bgpd
    spawned = [e[2] for e in rt.log if e[0] == "spawn"]
    assert spawned[:3] == ["zebra"] * 3 and "bgpd" in spawned and "exabgp" not in spawned
    assert len(net.links) == 4
    # and took it all back: processes first, then every node, then the lab's directory
    [remove] = [e for e in rt.log if e[0] == "remove"]
    assert set(remove[1]) == {f"bgplab-fk1-{n}" for n in ("edge", "r1", "r2", "collector")}
    assert remove[2] == (), "processes were still alive when the nodes were removed"
    assert not any(alive(p) for p in rt.pids) and rt.nodes == set()
    assert not (run_root / "fk1").exists()


def test_a_half_made_network_is_removed(run_root: Path) -> None:
    rt = FakeRuntime(create_fails=True)
    with pytest.raises(UpFailed) as err:
        lifecycle.up(MINIMAL, "fk2", rt=rt, net=FakeNet())
    assert err.value.step == "create nodes" and "refused the second namespace" in str(err.value)
    assert rt.nodes == set() and not (run_root / "fk2").exists()
    assert not [e for e in rt.log if e[0] == "spawn"]


def test_down_ends_processes_before_nodes_and_reports_every_problem(run_root: Path) -> None:
    rt = FakeRuntime(remove_problem="container bgplab-fk3-r1: the fake engine said no")
    state = lab.state.LabState.create("fk3", "fake", str(MINIMAL))
    rt.nodes = {"bgplab-fk3-r1", "bgplab-fk3-r2"}
    for node in ("r1", "r2"):
        p = subprocess.Popen(["sleep", "60"], env=mark_env("fk3"), start_new_session=True)
        rt.pids.append(p.pid)
        state.add_daemon(node, "bgpd", p.pid)
    # a marked process the record does not list (started by a crashed run) is found by its mark
    stray = subprocess.Popen(["sleep", "60"], env=mark_env("fk3"), start_new_session=True)
    rt.pids.append(stray.pid)
    # Popen can return while the child is still inside execve, before its new environment
    # (and so its mark) can be read from /proc: a real lab's processes have long been running.
    wait_until(lambda: (all(lab_of(p) == "fk3" for p in rt.pids), "marks not readable yet"), timeout=5,
               what="the test's processes to carry their mark")
    with pytest.raises(TeardownError) as err:
        lifecycle.down("fk3", rt=rt)
    _reap(rt)
    assert "the fake engine said no" in str(err.value)
    [remove] = [e for e in rt.log if e[0] == "remove"]
    assert remove[2] == ()  # every process, the stray too, was gone before the nodes went
    # the directory went even though a node's removal failed: every step runs
    assert not (run_root / "fk3").exists()
    rt.remove_problem = None
    assert lifecycle.down("fk3", rt=rt).existed is False  # the second time: nothing to do

"""Live tests: real namespaces or containers, real FRR and ExaBGP. Root only.

Each test gets labs with unique names from ``lab_factory``; whatever a test brings
up is always torn down, and the teardown checks that nothing of the lab is left.
Tests that use ``lab_factory`` (or the ``runtime`` fixture) run once per runtime,
netns and docker. A live test is skipped only where its parts cannot run here, with
the reason; in CI (BGPLAB_REQUIRE_LIVE=1) that is a failure instead, never a silent skip.
"""

from __future__ import annotations

import itertools
import os
import shutil
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import pytest

from lab import lifecycle
from lab.daemons import exabgp
from lab.routers.frr import daemons as frr
from lab.errors import BgplabError
from lab.procs import marked_pids
from lab.runtime.netns import NETNS_DIR
from lab.state import lab_dir

ROOT = Path(__file__).resolve().parents[2]
TOPOLOGIES = ROOT / "topologies"


def _missing() -> str | None:
    if os.geteuid() != 0:
        return "live tests need root (namespaces, FRR)"
    for what, ok in (
        ("FRR's bgpd", (frr.FRR_LIBEXEC / "bgpd").exists()),
        ("FRR's zebra", (frr.FRR_LIBEXEC / "zebra").exists()),
        ("vtysh", shutil.which("vtysh")),
        ("nsenter", shutil.which("nsenter")),
        ("sysctl", shutil.which("sysctl")),
    ):
        if not ok:
            return f"{what} is not installed (make test installs it)"
    try:
        exabgp.exabgp_binary()
    except BgplabError as e:
        return str(e)
    return None


def _skip_or_fail(reason: str) -> None:
    if os.environ.get("BGPLAB_REQUIRE_LIVE"):
        pytest.fail(f"live test cannot run, and BGPLAB_REQUIRE_LIVE is set: {reason}")
    print(f"\nskipping live test: {reason}", file=sys.stderr)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def live() -> None:
    reason = _missing()
    if reason:
        _skip_or_fail(reason)


_docker_ready: dict[str, str | None] = {}


def _docker_missing() -> str | None:
    """Why the docker runtime cannot run here (no engine, no image); None when it can. Asked once."""
    if "reason" not in _docker_ready:
        from lab.engine import engine
        from lab.images.build import ensure_image

        try:
            # Built once per session if its inputs changed (make test builds it first).
            ensure_image(engine(), lambda m: print(f"image: {m}", file=sys.stderr))
            _docker_ready["reason"] = None
        except BgplabError as e:
            _docker_ready["reason"] = f"docker runtime: {e}"
    return _docker_ready["reason"]


RUNTIME_PARAMS = [pytest.param("netns", id="netns"), pytest.param("docker", id="docker", marks=pytest.mark.docker)]


@pytest.fixture(params=RUNTIME_PARAMS)
def runtime(request, live) -> str:
    """Each test that asks for it runs on both runtimes; docker is skipped (with the reason) only where no engine runs."""
    if request.param == "docker":
        reason = _docker_missing()
        if reason:
            _skip_or_fail(reason)
    return request.param


_counter = itertools.count()


def bgplab(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    """The `bgplab` command as a user runs it, from the checkout."""
    return subprocess.run([sys.executable, "-m", "controller.cli", *args], capture_output=True, text=True, cwd=ROOT,
                          timeout=timeout)


@contextmanager
def reference_lab_up(tag: str) -> Iterator[str]:
    """The reference lab brought up and down with the CLI, as a user or a CI pipeline does;
    nothing of it may be left afterwards."""
    name = unique_name(tag)
    up = bgplab("up", str(TOPOLOGIES / "byoip-incident.yaml"), "--name", name)
    try:
        assert up.returncode == 0, up.stderr[-2000:]
        yield name
    finally:
        down = bgplab("down", name)
        assert down.returncode == 0, down.stderr[-2000:]
        assert leftovers(name) == []


def unique_name(tag: str = "t") -> str:
    return f"{tag}{os.getpid() % 100000}_{next(_counter)}"


def leftovers(lab: str) -> list[str]:
    """Anything of the lab still on the machine: namespaces, containers, marked processes, its directory."""
    from lab.runtime.docker import DockerRuntime

    out = []
    if NETNS_DIR.exists():
        out += [f"namespace {n}" for n in os.listdir(NETNS_DIR) if n.startswith(f"bgplab-{lab}-")]
    out += [f"container {c.name}" for c in DockerRuntime().containers(lab)]
    out += [f"process {p}" for p in marked_pids(lab)]
    if lab_dir(lab).exists():
        out.append(f"directory {lab_dir(lab)}")
    return out


@pytest.fixture
def lab_factory(runtime):
    made: list[str] = []

    def make(topology: str = "minimal", name: str | None = None, **kw):
        name = name or unique_name()
        made.append(name)
        path = topology if "/" in topology else TOPOLOGIES / f"{topology}.yaml"
        return lifecycle.up(path, name, runtime=runtime, **kw)

    make.runtime = runtime  # type: ignore[attr-defined]
    make.names = made  # type: ignore[attr-defined]
    yield make
    problems = []
    for name in made:
        try:
            lifecycle.down(name)
        except BgplabError as e:
            problems.append(str(e))
        problems += leftovers(name)
    assert not problems, problems

"""The ExaBGP launcher patches only the version it was written for, and says so otherwise."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _run(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=60)


def test_the_pinned_version_is_patched() -> None:
    p = _run("from lab.daemons import exabgp_launch as l; l.patch()\n"
             "from exabgp.reactor.asynchronous import ASYNC\n"
             "from exabgp.bgp.neighbor import Neighbor\n"
             "print(ASYNC.LIMIT, Neighbor.remove_self.__module__)")
    assert p.returncode == 0, p.stderr
    assert p.stdout.split() == [str(1_000_000), "lab.daemons.exabgp_launch"]


def test_another_version_is_refused_with_what_to_do() -> None:
    p = _run("import exabgp.version as v; v.version = '5.1.0'\n"
             "from lab.daemons import exabgp_launch as l; l.patch()")
    assert p.returncode != 0
    assert "ExaBGP 5.1.0 is installed" in p.stderr and "make setup" in p.stderr


def test_a_missing_name_is_named() -> None:
    p = _run("import exabgp.reactor.asynchronous as a; del a.ASYNC.LIMIT\n"
             "from lab.daemons import exabgp_launch as l; l.patch()")
    assert p.returncode != 0 and "ASYNC.LIMIT" in p.stderr

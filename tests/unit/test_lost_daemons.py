"""A lab's daemons that are gone, told from those a fault ended on purpose (the drill runner
refuses a lab that lost one, and fails a drill during which one was lost)."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import pytest

import lab.state
from controller.drills.live import lost_daemons


def a_dead_pid() -> int:
    p = subprocess.Popen(["true"])
    p.wait()
    return p.pid


@pytest.fixture
def lab_root(tmp_path: Path, monkeypatch) -> Path:
    monkeypatch.setattr(lab.state, "RUN_ROOT", tmp_path)
    return tmp_path


def make_lab(root: Path, daemons: dict, faults: list[dict]) -> None:
    d = root / "l1"
    (d / "nodes" / "edge-fra").mkdir(parents=True)
    (d / "state.json").write_text(json.dumps({"lab": "l1", "daemons": daemons, "namespaces": []}))
    (d / "faults.jsonl").write_text("".join(json.dumps(f) + "\n" for f in faults))
    (d / "nodes" / "edge-fra" / "responder.out").write_text("Traceback ...\nOSError: [Errno 101] Network is unreachable\n")


def test_a_daemon_that_died_is_named_with_its_last_words(lab_root: Path) -> None:
    dead = a_dead_pid()
    make_lab(lab_root, {"edge-fra": {"responder": dead, "exabgp": os.getpid()}}, [])
    assert lost_daemons("l1") == [f"responder on edge-fra (pid {dead}), its last words: "
                                  "OSError: [Errno 101] Network is unreachable"]


def test_a_daemon_a_fault_killed_is_not_lost_unless_started_again_and_dead(lab_root: Path) -> None:
    t = time.time()
    killed, restarted_then_died = a_dead_pid(), a_dead_pid()
    make_lab(lab_root, {"t1": {"bgpd": killed}, "t2": {"bgpd": restarted_then_died}},
             [{"t": t, "fault": "daemon_kill", "node": "t1", "daemon": "bgpd"},
              {"t": t, "fault": "daemon_kill", "node": "t2", "daemon": "bgpd"},
              {"t": t + 1, "fault": "daemon_start", "node": "t2", "daemon": "bgpd"}])
    assert lost_daemons("l1") == [f"bgpd on t2 (pid {restarted_then_died})"]


def test_a_lab_that_is_gone_says_so(lab_root: Path) -> None:
    assert lost_daemons("nothere") == ["lab 'nothere' is gone"]

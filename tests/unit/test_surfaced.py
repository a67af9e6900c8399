"""Failures that are said, not swallowed: a stale verification, a gone process's memory, a
scratch namespace that would not go."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from controller.reconcile import Reconciler
from lab import faults
from lab.errors import BgplabError
from lab.procs import rss_kib, rss_total_kib


def test_a_verification_older_than_the_last_sync_or_followed_by_an_error_is_stale() -> None:
    r = Reconciler.__new__(Reconciler)  # only the two records verification() reads
    r.last_verify = {"ok": True, "at": 100.0}
    r.last_sync = {"at": 90.0}
    assert r.verification() == {"ok": True, "at": 100.0}
    r.last_sync = {"at": 110.0}  # a change was sent after it: it no longer vouches for the speakers
    assert r.verification()["stale"] is True
    r.last_sync = {"at": 90.0}
    r.last_verify = {"ok": True, "at": 100.0, "stale": True, "error": "BgplabError: vtysh failed"}
    assert r.verification()["stale"] is True and "vtysh failed" in r.verification()["error"]
    r.last_verify = {}
    assert r.verification() == {}


def test_a_gone_process_has_no_memory_figure_not_zero() -> None:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    assert rss_kib(p.pid) is None
    mine = rss_kib(os.getpid())
    assert mine and mine > 0
    total, gone = rss_total_kib([os.getpid(), p.pid])
    assert gone == 1 and abs(total - mine) < 4096  # the gone one counted as gone, not as 0 KiB


def test_a_scratch_namespace_that_cannot_be_removed_is_said(monkeypatch) -> None:
    def refuse(name: str) -> None:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(faults.netns, "remove", refuse)
    with pytest.raises(BgplabError, match="bgplab-netem-probe-1 could not be removed .*ip netns delete"):
        faults._remove_scratch("bgplab-netem-probe-1")

    def gone(name: str) -> None:
        raise FileNotFoundError(2, "No such file or directory")

    monkeypatch.setattr(faults.netns, "remove", gone)
    faults._remove_scratch("bgplab-netem-probe-1")  # never made: nothing to say

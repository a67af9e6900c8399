"""MRT parsing against a dump the lab itself produced (tests/fixtures/README.md says how)."""

from __future__ import annotations

from pathlib import Path

from controller.observe import mrt

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "minimal-updates.mrt"


def test_per_prefix_timeline() -> None:
    ev = mrt.events(FIXTURE, "100.64.0.0/24")
    assert [e.kind for e in ev] == ["announce", "withdraw", "announce", "withdraw"]
    assert all(e.peer_ip == "198.18.0.4" and e.peer_as == 65101 for e in ev)
    assert ev[0].as_path == (65101, 13335) and ev[0].next_hop == "198.18.0.4"
    assert ev[1].as_path is None
    # microsecond timestamps, in order
    assert ev[0].t == 1795751499.964744
    assert [e.t for e in ev] == sorted(e.t for e in ev)


def test_ipv6_through_mp_reach_and_unreach() -> None:
    ev = mrt.events(FIXTURE, "2001:db8:4000::/48")
    assert [e.kind for e in ev] == ["announce", "withdraw"]
    assert ev[0].next_hop == "2001:db8:0:2::1" and ev[0].as_path == (65101, 13335)


def test_wire_counts() -> None:
    counts = mrt.wire_counts(FIXTURE)
    # End-of-RIB markers (empty UPDATEs) carry nothing and are not counted
    assert counts == {"198.18.0.4": {"updates": 6, "announced": 251, "withdrawn": 12}}
    first = min(u.t for u in mrt.updates(FIXTURE))
    assert mrt.wire_counts(FIXTURE, until=first + 1) == {"198.18.0.4": {"updates": 2, "announced": 250, "withdrawn": 0}}


def test_all_events() -> None:
    ev = mrt.events(FIXTURE)
    assert len(ev) == 263
    assert sum(e.kind == "withdraw" for e in ev) == 12


def test_truncated_file_ends_cleanly(tmp_path: Path) -> None:
    cut = tmp_path / "cut.mrt"
    data = FIXTURE.read_bytes()
    cut.write_bytes(data[: len(data) - 7])
    assert len(list(mrt.updates(cut))) == len(list(mrt.updates(FIXTURE))) - 1

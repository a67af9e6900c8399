"""MRT parsing against a dump the lab itself produced (tests/fixtures/README.md says how)."""

from __future__ import annotations

from pathlib import Path

import pytest

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


def test_a_tail_cut_short_ends_cleanly_and_is_counted(tmp_path: Path) -> None:
    cut = tmp_path / "cut.mrt"
    data = FIXTURE.read_bytes()
    whole = mrt.ReadStats()
    n = len(list(mrt.updates(FIXTURE, whole)))
    assert whole.truncated_tail_bytes == 0
    last = _record_offsets(data)[-1]
    for keep in (len(data) - 7, last + 5):  # inside the last record's body, inside its header
        cut.write_bytes(data[:keep])
        stats = mrt.ReadStats()
        assert len(list(mrt.updates(cut, stats))) == n - 1
        assert stats.truncated_tail_bytes == keep - last and stats.records == whole.records - 1


def test_damage_before_the_tail_is_an_error_naming_the_record(tmp_path: Path) -> None:
    data = bytearray(FIXTURE.read_bytes())
    offsets = _record_offsets(bytes(data))
    third = offsets[2]
    data[third + 4: third + 6] = b"\x00\x63"  # an MRT type that does not exist
    bad = tmp_path / "bad.mrt"
    bad.write_bytes(bytes(data))
    with pytest.raises(mrt.MrtError, match=f"record 3 at byte {third}"):
        list(mrt.updates(bad))


def _record_offsets(data: bytes) -> list[int]:
    """Where each MRT record starts (12-byte header: time, type, subtype, length)."""
    out, i = [], 0
    while i + 12 <= len(data):
        out.append(i)
        i += 12 + int.from_bytes(data[i + 8:i + 12], "big")
    return out

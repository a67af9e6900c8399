"""The one JSON-lines tail (controller.observe.tail)."""

from __future__ import annotations

import json

from controller.observe import tail
from controller.observe.tail import JsonlTail, recent


def test_a_line_still_being_written_is_read_next_time(tmp_path) -> None:
    f = tmp_path / "probes.jsonl"
    t = JsonlTail(f)
    assert t.read() == []  # not written yet
    f.write_bytes(b'{"t": 1}\n{"t": 2')
    assert t.read() == [{"t": 1}]
    with open(f, "ab") as out:
        out.write(b'}\n{"t": 3}\n')
    assert t.read() == [{"t": 2}, {"t": 3}]
    assert t.read() == []


def test_recent_reads_the_last_seconds_newest_first_and_the_files_first_line_too(tmp_path) -> None:
    f = tmp_path / "probes.jsonl"
    f.write_text("".join(json.dumps({"t": float(t)}) + "\n" for t in range(100, 110)) + '{"t": 11')
    assert [e["t"] for e in recent(f, 3.0, now=109.0)] == [109.0, 108.0, 107.0, 106.0]
    # a short file is read from its start: its first record counts (it was dropped before)
    assert [e["t"] for e in recent(f, 100.0, now=109.0)][-1] == 100.0
    assert recent(tmp_path / "absent.jsonl", 3.0) == []


def test_recent_skips_the_cut_line_where_it_starts_inside_the_file(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(tail, "RECENT_BYTES", 30)
    f = tmp_path / "probes.jsonl"
    f.write_text("".join(json.dumps({"t": float(t), "pad": "x" * 5}) + "\n" for t in range(100, 110)))
    got = recent(f, 100.0, now=109.0)
    assert got and all(set(e) == {"t", "pad"} for e in got) and got[0]["t"] == 109.0

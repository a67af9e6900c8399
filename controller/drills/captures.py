"""A run's captures merged into one file, the drill's steps, detection and faults as packet comments."""

from __future__ import annotations

from pathlib import Path

from controller.drills.rundir import RunDir, read_jsonl
from lab import capture


def step_comments(rd: RunDir) -> list[tuple[float, str]]:
    """Drill steps, detection and faults with their times, as capture packet comments."""
    out = []
    clock = rd.record().state.clock() if rd.record_file.exists() else None
    for e in read_jsonl(rd.events):
        # the packet a comment sits on is at the event's lab time: its text says that time on the
        # drill's clock as played, and the scheduled one beside it where they differ
        played = clock.text(e["incident"]) if clock is not None and e.get("incident") is not None else None
        scheduled = e.get("clock")
        when = played or scheduled or ""
        if played and scheduled and scheduled != played:
            when = f"{played} (scheduled {scheduled})"
        if e["kind"] == "step":
            out.append((e["t"], f"step {when}: {e.get('label') or e['do']}"))
        elif e["kind"] in ("canary_failed", "task_stopped", "restore", "dashboard"):
            out.append((e["t"], f"{e['kind'].replace('_', ' ')} {when}".strip()))
    for f in read_jsonl(rd.faults):
        where = " ".join(str(f[k]) for k in ("node", "peer", "daemon") if f.get(k))
        out.append((f["t"], f"fault: {f['fault']} {where}".strip()))
    return sorted(out)


def merge_run_captures(rd: RunDir) -> Path | None:
    """captures/*.pcap of a run -> capture.pcapng, in time order, steps as packet comments."""
    files = capture.files_in(rd.captures)
    if not files:
        return None
    return capture.merge(files, rd.capture, step_comments(rd))

"""Where a lab's controller keeps its files, under the lab's directory: the inventory, the
controller's address, and what the observers write."""

from __future__ import annotations

from pathlib import Path

from lab.state import LabState


def inventory_path(state: LabState) -> Path:
    return state.dir / "inventory.sqlite"


def info_path(state: LabState) -> Path:
    return state.dir / "controller.json"


def observe_dir(state: LabState) -> Path:
    d = state.dir / "observe"
    d.mkdir(exist_ok=True)
    return d

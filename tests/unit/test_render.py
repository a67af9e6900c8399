"""Rendered daemon configs against golden files, one file per node and daemon.

After an intended change, `make golden` rewrites them (this module run with --write);
review the diff. A test run never writes them.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from lab.daemons import exabgp, frr
from lab.plan import build_plan
from lab.topology import load_topology

ROOT = Path(__file__).resolve().parents[2]
GOLDEN = ROOT / "tests" / "golden"
PLAN = build_plan(load_topology(ROOT / "topologies/byoip-incident.yaml"), "golden")


def rendered() -> list[tuple[str, str, str]]:
    out = []
    for node in PLAN.routers():
        paths = frr.FrrPaths(Path(f"/run/bgplab/golden/nodes/{node.name}"))
        out += [(node.name, name, text) for name, text in frr.render("golden", node, paths).items()]
    for node in PLAN.speakers():
        paths = exabgp.ExabgpPaths(Path(f"/run/bgplab/golden/nodes/{node.name}"))
        out += [(node.name, name, text) for name, text in exabgp.render("golden", node, paths, "python3 -m lab.daemons.exabgp_bridge").items()]
    return out


CASES = rendered()


@pytest.mark.parametrize("node,name,text", CASES, ids=[f"{n}/{f}" for n, f, _ in CASES])
def test_golden(node: str, name: str, text: str) -> None:
    path = GOLDEN / "byoip" / node / name
    assert path.exists(), f"no golden file {path}; `make golden` writes it"
    assert text == path.read_text()


def test_every_golden_file_is_rendered() -> None:
    produced = {f"{n}/{f}" for n, f, _ in CASES}
    on_disk = {str(p.relative_to(GOLDEN / "byoip")) for p in (GOLDEN / "byoip").rglob("*") if p.is_file()}
    assert on_disk == produced


def test_collector_records_mrt_and_exports_nothing() -> None:
    text = dict(((n, f), t) for n, f, t in CASES)[("collector", "bgpd.conf")]
    assert "dump bgp updates-et /run/bgplab/golden/nodes/collector/updates.mrt" in text
    assert text.count("route-map BGPLAB-NONE out") == 8  # 4 sessions x 2 families


def test_sessions_to_speakers_are_passive() -> None:
    text = dict(((n, f), t) for n, f, t in CASES)[("t1", "bgpd.conf")]
    assert "neighbor 198.18.0.0 passive" in text
    assert "neighbor 198.18.0.9 passive" not in text


def write_golden() -> None:
    for node, name, text in CASES:
        path = GOLDEN / "byoip" / node / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        print(path)


if __name__ == "__main__" and sys.argv[1:] == ["--write"]:
    write_golden()

"""Rendered daemon configs against golden files, one file per node and daemon.

After an intended change, `make golden` rewrites them (this module run with --write);
review the diff. A test run never writes them.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from lab.daemons import exabgp
from lab.routers.frr import daemons as frr
from lab.plan import build_plan
from lab.topology import load_topology

ROOT = Path(__file__).resolve().parents[2]
GOLDEN = ROOT / "tests" / "golden"
# Each set of golden files: the reference lab (roles as shorthand: sibling transits, the
# edge and eyeballs as customers) and the valley lab (every relationship written out, and
# the export maps to peers and to providers).
TOPOLOGIES = {
    "byoip": ROOT / "topologies/byoip-incident.yaml",
    "valley": ROOT / "tests/live/topologies/valley.yaml",
}


def rendered() -> list[tuple[str, str, str, str]]:
    out = []
    for lab, topo in TOPOLOGIES.items():
        plan = build_plan(load_topology(topo), "golden")
        for node in plan.routers():
            paths = frr.FrrPaths(Path(f"/run/bgplab/golden/nodes/{node.name}"))
            out += [(lab, node.name, name, text) for name, text in frr.render("golden", node, paths).items()]
        for node in plan.speakers():
            paths = exabgp.ExabgpPaths(Path(f"/run/bgplab/golden/nodes/{node.name}"))
            out += [(lab, node.name, name, text)
                    for name, text in exabgp.render("golden", node, paths, "python3 -m lab.daemons.exabgp_bridge").items()]
    return out


CASES = rendered()
BYOIP = {(n, f): t for lab, n, f, t in CASES if lab == "byoip"}


@pytest.mark.parametrize("lab,node,name,text", CASES, ids=[f"{lab}/{n}/{f}" for lab, n, f, _ in CASES])
def test_golden(lab: str, node: str, name: str, text: str) -> None:
    path = GOLDEN / lab / node / name
    assert path.exists(), f"no golden file {path}; `make golden` writes it"
    assert text == path.read_text()


@pytest.mark.parametrize("lab", list(TOPOLOGIES))
def test_every_golden_file_is_rendered(lab: str) -> None:
    produced = {f"{n}/{f}" for lb, n, f, _ in CASES if lb == lab}
    on_disk = {str(p.relative_to(GOLDEN / lab)) for p in (GOLDEN / lab).rglob("*") if p.is_file()}
    assert on_disk == produced


def test_valley_policies_export_only_customer_routes_upwards() -> None:
    m = next(t for lab, n, f, t in CASES if (lab, n, f) == ("valley", "m", "bgpd.conf"))
    assert "neighbor 198.18.0.11 route-map BGPLAB-TO-PROVIDER out" in m  # p1
    assert "route-map BGPLAB-TO-PEER permit 10\n match large-community BGPLAB-EXPORT-ALL" in m
    assert "bgp large-community-list standard BGPLAB-EXPORT-ALL permit 65010:1:1" in m
    # customers get everything: no export map towards c
    assert "neighbor 198.18.0.8 route-map BGPLAB-FROM-CUSTOMER in" in m
    assert "neighbor 198.18.0.8 route-map" not in m.replace("neighbor 198.18.0.8 route-map BGPLAB-FROM-CUSTOMER in", "")
    # policies precede the sessions that name them
    assert m.index("route-map BGPLAB-FROM-CUSTOMER permit") < m.index("router bgp")


def test_collector_records_mrt_and_exports_nothing() -> None:
    text = BYOIP[("collector", "bgpd.conf")]
    assert "dump bgp updates-et /run/bgplab/golden/nodes/collector/updates.mrt" in text
    assert text.count("route-map BGPLAB-NONE out") == 8  # 4 sessions x 2 families


def test_sessions_to_speakers_are_passive() -> None:
    text = BYOIP[("t1", "bgpd.conf")]
    assert "neighbor 198.18.0.0 passive" in text
    assert "neighbor 198.18.0.9 passive" not in text


def write_golden() -> None:
    for lab, node, name, text in CASES:
        path = GOLDEN / lab / node / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        print(path)


if __name__ == "__main__" and sys.argv[1:] == ["--write"]:
    write_golden()

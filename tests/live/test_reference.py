"""The reference lab comes up and converges: 6,500 prefixes at the observer and in every FIB."""

from __future__ import annotations

import pytest

from lab.daemons import frr
from lab.kernel import count_lab_routes
from lab.state import LabState

pytestmark = pytest.mark.live


def test_reference_lab_converges(lab_factory) -> None:
    report = lab_factory("byoip-incident")
    plan = report.plan
    assert plan.counts() == {"prefixes": 6501, "byoip": 4306, "ipv4": 6001, "ipv6": 500}
    state = LabState.load(report.lab)

    # the incident graph's peer received exactly the 6,500 from the edge
    observer = frr.sessions(frr.FrrPaths(state.node_dir("observer")))
    edge = next(s for s in plan.nodes["observer"].sessions if s.peer == "edge-fra")
    got = observer[str(edge.peer_v4)]
    assert got["state"] == "Established"
    assert got["received"]["ipv4"] + got["received"]["ipv6"] == 6500

    for r in plan.routers():
        sessions = frr.sessions(frr.FrrPaths(state.node_dir(r.name)))
        assert {s["state"] for s in sessions.values()} == {"Established"}, r.name
        if r.installs_routes:
            # the 6,500 and the other PoP's own /24 (each PoP announces one of its own)
            assert count_lab_routes(r.namespace, plan.pool_keys) == {"ipv4": 6001, "ipv6": 500}, r.name
    assert set(report.timings) >= {"network", "sessions_established", "observer_full", "kernel_converged"}

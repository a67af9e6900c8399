"""The analysis on a small timeline whose answers are worked out by hand."""

from __future__ import annotations

from controller.analysis import check, distribution, per_prefix, percentile
from controller.drill import Expect, Range
from controller.observe.mrt import PrefixEvent

A, B = "198.18.0.1", "198.18.0.3"
PEERS = {A: "t1", B: "t2"}
P = "100.64.0.0/24"


def ev(t, peer, kind, path=None, prefix=P):
    return PrefixEvent(t, peer, 65101 if peer == A else 65102, kind, prefix, path, None)


EVENTS = [
    ev(50.0, A, "announce", (65101, 13335)),  # before the withdrawal: not counted
    ev(100.10, A, "announce", (65101, 65102, 13335)),
    ev(100.30, A, "withdraw"),
    ev(100.05, B, "announce", (65102, 65103, 13335)),
    ev(100.15, B, "announce", (65102, 65104, 65103, 13335)),
    ev(100.40, B, "withdraw"),
    ev(200.20, A, "announce", (65101, 13335)),
    ev(200.50, B, "announce", (65102, 13335)),
    ev(100.2, A, "announce", (1, 2), prefix="100.64.9.0/24"),  # another prefix
]
PROBES = [
    {"t": 150.0, "host": "host1", "prefix": P, "result": "timeout"},
    {"t": 200.7, "host": "host1", "prefix": P, "result": "ok"},
    {"t": 200.9, "host": "host2", "prefix": P, "result": "ok"},
]


def test_per_prefix_by_hand() -> None:
    [r] = per_prefix(EVENTS, {P: 100.0}, {P: 200.0}, PEERS, PROBES)
    assert r.paths == {"t1": 1, "t2": 2}
    assert r.hunting == 2
    assert r.updates == {"t1": 2, "t2": 3}
    assert abs(r.convergence - 0.40) < 1e-9
    assert abs(r.restore_convergence - 0.50) < 1e-9
    assert {h: round(v, 3) for h, v in r.reachable_again.items()} == {"host1": 0.7, "host2": 0.9}


def test_not_converged_when_a_vantage_point_never_withdrew() -> None:
    events = [e for e in EVENTS if not (e.peer_ip == B and e.kind == "withdraw")]
    [r] = per_prefix(events, {P: 100.0}, {}, PEERS)
    assert r.convergence is None and r.restored_at is None


def test_distribution_and_percentile() -> None:
    assert percentile([1, 2, 3, 4, 5, 6, 7, 8, 9, 10], 0.9) == 9.1
    assert distribution([3, 1, None, 2]) == {"count": 3, "median": 2, "p90": 2.8, "max": 3}
    assert distribution([]) == {"count": 0, "median": None, "p90": None, "max": None}


def test_check_reads_each_expectation() -> None:
    metrics = {"observer_min": 5400, "withdrawn_by_task": 1100, "impact_peak": {"all_bindings": 500},
               "path_hunting": {"max": 3}, "convergence_s": {"p90": 0.3}, "restored": {}}
    out = check(Expect(observer_min=Range(min=5200, max=5600), impact_all_bindings=Range(max=450),
                       path_hunting_max=Range(min=2)), metrics)
    assert [(c["expectation"], c["ok"]) for c in out] == [
        ("observer_min", True), ("impact_all_bindings", False), ("path_hunting_max", True)]

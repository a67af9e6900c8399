"""The analysis on a small timeline whose answers are worked out by hand."""

from __future__ import annotations

from controller.drills.analysis import check, distribution, figure, per_prefix, percentile
from controller.drills.model import Expect, Range, VantageRange
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
    # no captures: the withdrawal in the network is the first UPDATE about it at a vantage point
    [r] = per_prefix(EVENTS, {P: 100.0}, {P: 200.0}, PEERS, PROBES)
    assert r.withdrawn_at == 100.05 and r.withdrawal_basis == "collector"
    assert r.paths == {"t1": 1, "t2": 2}
    assert r.hunting == 2
    assert r.updates == {"t1": 2, "t2": 3}
    assert abs(r.convergence - 0.35) < 1e-9  # from 100.05 to B's final withdrawal at 100.40
    assert abs(r.restore_convergence - 0.50) < 1e-9
    assert {h: round(v, 3) for h, v in r.reachable_again.items()} == {"host1": 0.7, "host2": 0.9}
    assert abs(r.recovered_at(2) - 200.9) < 1e-9  # the last of: back at t2 (200.5), host2's probe ok (200.9)


def test_the_wire_time_is_the_withdrawal_when_captured() -> None:
    [r] = per_prefix(EVENTS, {P: 100.0}, {P: 200.0}, PEERS, PROBES, on_wire={P: [99.0, 100.002]})
    assert r.withdrawn_at == 100.002 and r.withdrawal_basis == "wire"  # 99.0 was before the controller's call
    assert abs(r.api_to_wire - 0.002) < 1e-9
    assert abs(r.convergence - 0.398) < 1e-9


def test_not_converged_when_a_vantage_point_never_withdrew() -> None:
    events = [e for e in EVENTS if not (e.peer_ip == B and e.kind == "withdraw")]
    [r] = per_prefix(events, {P: 100.0}, {}, PEERS)
    assert r.convergence is None and r.restored_at is None and r.recovered_at(2) is None


def test_not_recovered_while_a_host_still_fails() -> None:
    probes = PROBES[:2] + [{"t": 200.9, "host": "host2", "prefix": P, "result": "timeout"}]
    [r] = per_prefix(EVENTS, {P: 100.0}, {P: 200.0}, PEERS, probes)
    assert r.recovered_at(2) is None


def test_distribution_and_percentile() -> None:
    assert percentile([1, 2, 3, 4, 5, 6, 7, 8, 9, 10], 0.9) == 9.1
    assert distribution([3, 1, None, 2]) == {"n": 3, "median": 2, "p90": 2.8, "max": 3}
    assert distribution([]) == {"n": 0, "median": None, "p90": None, "max": None}


def test_check_reads_each_expectation_with_its_source() -> None:
    figures = {
        "observer_min": figure(5400, "network", "observer"),
        "impact_all_bindings": figure(500, "controller", "inventory"),
        "convergence_s": figure({"n": 40, "median": 0.2, "p90": 0.3, "max": 0.5}, "network", "mrt"),
    }
    out = check(Expect(observer_min=Range(min=5200, max=5600), impact_all_bindings=Range(max=450),
                       convergence_p90_s=Range(max=1)), figures)
    assert [(c["expectation"], c["ok"], c["source"], c.get("n")) for c in out] == [
        ("observer_min", True, "network", None), ("impact_all_bindings", False, "controller", None),
        ("convergence_p90_s", True, "network", 40)]


def test_path_hunting_is_checked_at_every_vantage_point() -> None:
    per_vp = {"t1": {"n": 100, "median": 3, "p90": 4, "max": 5, "hunted_share": 0.9},
              "t2": {"n": 100, "median": 1, "p90": 1, "max": 2, "hunted_share": 0.2}}
    out = check(Expect(path_hunting_median=VantageRange(min=2), hunted_share=VantageRange(min=0.5)),
                {"path_hunting": figure(per_vp, "network", "mrt")})
    assert [(c["expectation"], c["value"], c["ok"], c["n"]) for c in out] == [
        ("path_hunting_median at t1", 3, True, 100), ("path_hunting_median at t2", 1, False, 100),
        ("hunted_share at t1", 0.9, True, 100), ("hunted_share at t2", 0.2, False, 100)]


def test_one_prefix_is_not_a_distribution_that_passes_everywhere() -> None:
    # the old check (max paths >= 2) passed on one prefix at one vantage point; the median does not
    per_vp = {"t1": {"n": 50, "median": 0, "p90": 0, "max": 2, "hunted_share": 0.02}}
    [c] = check(Expect(path_hunting_median=VantageRange(min=1)), {"path_hunting": figure(per_vp, "network", "mrt")})
    assert not c["ok"]


def test_a_missing_per_vantage_point_figure_fails() -> None:
    [c] = check(Expect(hunted_share=VantageRange(min=0.5)), {"path_hunting": figure({}, "network", "mrt")})
    assert not c["ok"] and "no vantage point" in c["note"]


def test_a_vantage_point_can_have_its_own_range() -> None:
    per_vp = {"t1": {"n": 80, "median": 0, "hunted_share": 0.04}, "t2": {"n": 80, "median": 2, "hunted_share": 0.99}}
    out = check(Expect(hunted_share=VantageRange(min=0.5, at={"t1": Range(max=0.5)})),
                {"path_hunting": figure(per_vp, "network", "mrt")})
    assert [(c["expectation"], c["range"], c["ok"]) for c in out] == [
        ("hunted_share at t1", "[, 0.5]", True), ("hunted_share at t2", "[0.5, ]", True)]
    out = check(Expect(hunted_share=VantageRange(min=0.5, at={"t1": Range(max=0.01)})),
                {"path_hunting": figure(per_vp, "network", "mrt")})
    assert [c["ok"] for c in out] == [False, True]


def test_internet_figures_use_window_prefixes_only_and_say_so() -> None:
    from controller.drills.analysis import PrefixResult, internet_figures

    vps = {"10.0.0.1": "a", "10.0.0.2": "b"}
    inside = PrefixResult("100.64.0.0/24", 99.0, 100.0, "wire", paths={"a": 2, "b": 1}, updates={"a": 3, "b": 2},
                          final_withdraw={"a": 110.0, "b": 130.0}, restored_at=200.0, back={"a": 205.0, "b": 211.0},
                          announced_at=201.0, window="first", restore_window="revert")
    # withdrawn outside the windows: hunted far longer, and must not count
    outside = PrefixResult("100.64.1.0/24", 99.0, 100.0, "wire", paths={"a": 9, "b": 9}, updates={"a": 30, "b": 30},
                           final_withdraw={"a": 400.0, "b": 500.0})
    ev = [PrefixEvent(t, ip, 1, "announce", "100.64.0.0/24", (1,), None) for t, ip in
          ((205.0, "10.0.0.1"), (211.0, "10.0.0.2"))]
    F = internet_figures([inside, outside], ev, vps, True, "mrt")
    assert F["internet_withdraw_last_s"]["value"] == {"n": 2, "median": 20.0, "p90": 28.0, "max": 30.0}
    assert F["internet_withdraw_90_s"]["value"]["max"] == 30.0  # 2 vantage points: below 10% is both gone
    assert F["internet_announce_50_s"]["value"]["median"] == 4.0  # from the wire's announcement at 201
    assert F["internet_announce_100_s"]["value"]["median"] == 10.0
    assert F["internet_paths_explored"]["value"]["max"] == 2
    assert F["internet_updates_per_withdrawal"]["value"]["share_under_10"] == 1.0
    assert F["internet_update_ratio"]["value"] == 2.5  # 2.5 UPDATEs per vantage point after the withdrawal, 1 after
    assert "inside real-time windows" in F["internet_withdraw_last_s"]["basis"]
    assert F["internet_announce_50_s"]["beacon"]["value"] == 10.0
    # without windows every prefix counts, and the basis says why that is not the day's pace
    F = internet_figures([inside, outside], ev, vps, False, "mrt")
    assert F["internet_withdraw_last_s"]["value"]["n"] == 4 and "no real-time window" in F["internet_withdraw_last_s"]["basis"]

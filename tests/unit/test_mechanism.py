"""The replay's mechanism alone (controller.drills.mechanism.simulate): the real API over a
freshly seeded inventory, the edge in memory, a simulated clock, no BGP. The headline
figures come out of the mechanism, so they must hold across inventory seeds and speeds,
and move gently when one knob moves."""

from __future__ import annotations

from pathlib import Path

import pytest

from controller.drills.mechanism import HEADLINES, KNOBS, sensitivity, simulate_many, with_knob
from controller.drills.model import load_drill
from controller.edge import Edge

ROOT = Path(__file__).resolve().parents[2]
REPLAY, TOPOLOGY = load_drill(ROOT / "drills/byoip-2026-02-20.yaml")
# The incident's figures (reference/incident-2026-02-20.txt) and the bounds.
TARGETS = {"withdrawn": (1100, 0.05), "restored_by_revert": (800, 0.10), "restored_by_config_push": (300, 0.10)}


def seeded(seed: int):
    return REPLAY.model_copy(update={"edge": REPLAY.edge.model_copy(update={"inventory_seed": seed})})


@pytest.fixture(scope="module")
def grid() -> list[dict]:
    # every inventory seed 1..5, each at another speed from 30 to 240 (make bench-mechanism runs the full grid)
    jobs = [(seeded(seed), TOPOLOGY, speed) for seed, speed in ((1, 30), (2, 60), (3, 120), (4, 240), (5, 60))]
    return simulate_many(jobs)


def test_the_headline_figures_hold_across_seeds_and_speeds(grid) -> None:
    for r in grid:
        for name, (target, tolerance) in TARGETS.items():
            assert abs(r[name] - target) <= target * tolerance, (r["inventory_seed"], r["speed"], name, r[name])


def test_the_impact_spreads_over_many_customers(grid) -> None:
    for r in grid:
        # the API lists in onboarding order, which mixes customers: a third or more are hit
        assert r["affected_customers"] >= 0.3 * r["byoip_customers"], r
        assert r["impact_at_stop"]["all_bindings"] == r["restored_by_config_push"]


def test_the_dashboard_refuses_prefixes_with_no_service_bound(grid) -> None:
    assert all(r["dashboard_customers"] > 0 for r in grid)
    assert sum(r["dashboard_refused"] for r in grid) > 0 and all(r["dashboard_toggles_ok"] > 0 for r in grid)


def test_detection_is_the_resolver_website_failing_and_the_stop_follows_the_response(grid) -> None:
    for r in grid:
        # the first cycle (17:56) removes the website's binding; it reaches the machines within 30 s
        assert "17:56:00" < r["canary_failed"] < "17:57:00", r
        assert r["refused_by_api"] == 1  # the pinned prefix: the task tried, the API refused
        # measured on the edge: every machine ended with the API's bindings, the last arriving with
        # the push's last machine (16 machines, 3 min 15 s apart from 23:03)
        assert r["edge_lagging_at_end"] == 0 and r["edge_last_change"] == "23:55:00"


def test_no_ten_percent_move_of_one_knob_moves_a_headline_by_more_than_a_quarter() -> None:
    table = sensitivity(REPLAY, TOPOLOGY)
    assert {r["knob"] for r in table["rows"]} == set(KNOBS) and len(table["rows"]) == 2 * len(KNOBS)
    assert table["largest_change"] <= 0.25, table
    # and the knobs do move things: the task's pace moves what is withdrawn
    batch = [r for r in table["rows"] if r["knob"] == "batch"]
    assert all(r["change"]["withdrawn"] != 0 for r in batch)
    assert all(set(r["change"]) == set(HEADLINES) for r in table["rows"])


def test_with_knob_moves_one_knob_only() -> None:
    moved, value = with_knob(REPLAY, "response", 1.1)
    assert value == "3234s" and moved.tasks == REPLAY.tasks
    moved, value = with_knob(REPLAY, "inventory_seed", 0.9)
    assert value == REPLAY.edge.inventory_seed - 1 and moved.steps == REPLAY.steps


def test_the_propagation_order_is_deterministic_per_seed() -> None:
    machines = {"edge-fra": 8, "edge-ams": 8}
    assert Edge(machines, {}, seed=1).order == Edge(machines, {}, seed=1).order
    assert Edge(machines, {}, seed=1).order != Edge(machines, {}, seed=2).order
    assert sorted(Edge(machines, {}, seed=1).order) == sorted(Edge(machines, {}).machines)


GUARDED = ["strict", "breaker", "blast-radius", "snapshot", "all", "staged"]


@pytest.fixture(scope="module")
def guarded():
    drills = [load_drill(ROOT / "drills" / f"byoip-2026-02-20-guarded-{g}.yaml") for g in GUARDED]
    return dict(zip(GUARDED, simulate_many([(d, t, None) for d, t in drills])))


def test_each_guarded_replay_meets_its_target_in_the_mechanism(guarded) -> None:
    """The shipped guarded drills, each the same buggy handler and task: what the pipeline lets through."""
    assert guarded["strict"]["withdrawn"] == 0 and guarded["strict"]["held"] == {}
    assert guarded["all"]["withdrawn"] == 0  # the strict API acts first
    b = guarded["breaker"]
    assert b["withdrawn"] <= 22 and b["breaker_tripped"] <= "17:57:00" and b["held"]["breaker"]["withdraw"] > 1000
    r = guarded["blast-radius"]
    assert r["withdrawn"] <= 86 and r["held"]["blast_radius"]["withdraw"] > 1000
    s = guarded["snapshot"]
    assert s["withdrawn"] > 1000 and s["restored_by_snapshot"] == s["withdrawn"] and s["edge_lagging_at_end"] == 0
    assert s["restored_by_revert"] == s["restored_by_config_push"] == 0
    # staged alone: a withdrawal reaches edge-ams, the probes find its prefixes through edge-fra,
    # so health holds and it goes on; what it changes is the pace (one batch per window) and the
    # dependents, which wait behind each stage
    g = guarded["staged"]
    assert g["stages_promoted"] >= 5 and g["withdrawn"] <= 22 * (g["stages_promoted"] + 1)
    assert g["held"]["staged"]["bindings_removed"] > 400

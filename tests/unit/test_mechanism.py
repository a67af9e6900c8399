"""The replay's mechanism alone (controller.drills.simulation.simulate): the real API over a
freshly seeded inventory, the edge in memory, a simulated clock, no BGP. The headline
figures are calibrated (the drill's knobs were derived from them), so holding them across
inventory seeds and speeds shows the mechanism is wired as intended, not agreement with the
day; the sensitivity table shows what each knob moves."""

from __future__ import annotations

from pathlib import Path

import pytest

from controller.drills.simulation import simulate_many
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


def _yaml_knobs(doc: dict) -> set[str]:
    """Every number and duration a drill file writes, found in its YAML alone (not through the
    model the table walks), as knob paths; what the table says it does not move is left out."""
    from controller.drills.model import parse_duration
    from controller.drills.sensitivity import NOT_MOVED

    def leaves(prefix: str, v) -> set[str]:
        if isinstance(v, dict):
            return {p for k, x in v.items() if k not in NOT_MOVED and k not in ("do", "label", "task", "kind")
                    for p in leaves(f"{prefix}.{k}" if prefix else k, x)}
        if isinstance(v, bool) or v is None:
            return set()
        if isinstance(v, (int, float)):
            return {prefix}
        if isinstance(v, str):
            try:
                parse_duration(v)
                return {prefix}
            except ValueError:
                return set()
        return set()

    out = set()
    for key, v in doc.items():
        if key in NOT_MOVED or key in ("steps", "calibration", "name", "description", "topology"):
            continue
        out |= leaves(key, v)
    dos = [s["do"] for s in doc.get("steps", [])]
    for i, step in enumerate(doc.get("steps", [])):
        out |= leaves(f"steps.{step['do'] if dos.count(step['do']) == 1 else i}", step)
    return out


MECHANISM_DRILLS = sorted(p.name for p in (ROOT / "drills").glob("byoip-2026-02-20*.yaml") if "internet" not in p.name)


@pytest.mark.parametrize("name", MECHANISM_DRILLS)
def test_the_sensitivity_table_moves_every_knob_of_the_drill_file_the_inventory_and_the_mechanism(name: str) -> None:
    import dataclasses

    import yaml

    from controller.drills.simulation import Constants
    from controller.drills.sensitivity import knobs
    from controller.inventory import InventoryShape

    drill, _ = load_drill(ROOT / "drills" / name)
    doc = yaml.safe_load((ROOT / "drills" / name).read_text())
    if "extends" in doc:
        doc = {**yaml.safe_load((ROOT / "drills" / doc.pop("extends")).read_text()), **doc}
    moved = {k.path for k in knobs(drill)}
    missing = _yaml_knobs(doc) - moved
    assert not missing, f"knobs of {name} the table does not move: {sorted(missing)}"
    for f in dataclasses.fields(InventoryShape):
        assert any(p == f"inventory.{f.name}" or p.startswith(f"inventory.{f.name}.") for p in moved), f.name
    assert {f"inventory.byoip_services.{s}" for s, _ in InventoryShape().byoip_services} <= moved
    assert {f"mechanism.{f.name}" for f in dataclasses.fields(Constants)} <= moved
    # and the knobs the issue named as never moved are moved now
    assert {"tasks.cleanup.first_cycle_after", "edge.machines_per_pop", "edge.delay", "steps.config_push.per_machine",
            "tasks.cleanup.per_page", "probes", "mechanism.canary_interval", "mechanism.confirm"} <= moved or \
        "config_push" not in {s.do for s in drill.steps}


def test_a_move_reports_each_figure_its_change_and_elasticity() -> None:
    from controller.drills.sensitivity import FIGURES, sensitivity

    t = sensitivity(REPLAY, TOPOLOGY, only=["tasks.cleanup.batch"], steps=(0.5,))
    assert t["knobs"] == ["tasks.cleanup.batch"] and [r["value"] for r in t["rows"]] == [11, 33]
    down, up = t["rows"]
    assert set(down["figures"]) == set(FIGURES) and set(up["elasticity"]) == set(FIGURES)
    # the batch sets the withdrawn count: half the batch, about half withdrawn (elasticity near 1)
    assert down["figures"]["withdrawn"] < t["base"]["withdrawn"] < up["figures"]["withdrawn"]
    assert 0.7 <= down["elasticity"]["withdrawn"] <= 1.3, down


def test_apply_moves_one_knob_only() -> None:
    from controller.drills.simulation import Constants
    from controller.drills.sensitivity import apply
    from controller.inventory import InventoryShape

    d, shape, c = apply(REPLAY, InventoryShape(), Constants(), "steps.detect.response", "3234s")
    assert next(s for s in d.steps if s.do == "detect").response == "3234s" and d.tasks == REPLAY.tasks
    assert (shape, c) == (InventoryShape(), Constants())
    d, shape, c = apply(REPLAY, InventoryShape(), Constants(), "inventory.byoip_services.spectrum", 0.5)
    assert d == REPLAY and dict(shape.byoip_services)["spectrum"] == 0.5 and dict(shape.byoip_services)["cdn"] == 0.6
    d, shape, c = apply(REPLAY, InventoryShape(), Constants(), "mechanism.confirm", 4)
    assert d == REPLAY and c.confirm == 4


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

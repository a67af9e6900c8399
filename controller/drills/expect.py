"""A drill's expectations: the ranges its figures must fall in (a min, a max, or named modes;
per vantage point where a position makes one behave otherwise; ``unheld`` where a figure is
reported but not graded), and the list of figures a drill may expect."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, model_validator

from lab.routers import ROUTERS


class Strict(BaseModel):
    """A drill file's part: unknown fields are errors, and nothing changes once read."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class Bounds(Strict):
    min: float | None = None
    max: float | None = None

    def check(self, value: float | None) -> bool:
        if value is None:
            return False
        return (self.min is None or value >= self.min) and (self.max is None or value <= self.max)

    def __str__(self) -> str:
        return f"[{'' if self.min is None else self.min}, {'' if self.max is None else self.max}]"


class Range(Bounds):
    """An expectation's range: ``min`` and/or ``max``; or ``modes``, named ranges of which the
    value must fall in one (a figure with two known behaviours, each asserted by name: the
    check says which one it met). A range with neither bound nor mode would pass anything, and
    is refused. ``unheld`` (a figure's range, or a vantage point's in ``at``): the figure is
    reported but not graded, for the reason it gives; its check is None, "not held", neither a
    pass nor a failure (JUnit: skipped)."""

    modes: dict[str, Bounds] = {}
    unheld: str | None = None

    @model_validator(mode="after")
    def _not_empty(self) -> "Range":
        if self.modes and (self.min is not None or self.max is not None):
            raise ValueError("a range has min/max or modes, not both")
        if self.unheld is not None:
            if self.modes or self.min is not None or self.max is not None:
                raise ValueError("an unheld range has no min, max or modes: it is not graded")
            if not self.unheld.strip():
                raise ValueError("unheld: say why the figure is not held here")
            return self
        if not self.modes and self.min is None and self.max is None and not getattr(self, "at", None):
            raise ValueError("an empty range passes anything: give min, max or modes")
        empty = [name for name, b in self.modes.items() if b.min is None and b.max is None]
        if empty:
            raise ValueError(f"mode {', '.join(map(repr, empty))} is empty: it would pass anything")
        return self

    def check(self, value: float | None) -> bool | None:  # type: ignore[override]
        if self.unheld is not None:
            return None  # not graded: neither a pass nor a failure
        if self.modes:
            return self.mode(value) is not None
        return super().check(value)

    def mode(self, value: float | None) -> str | None:
        """The mode the value is in, or None."""
        return next((name for name, b in self.modes.items() if b.check(value)), None)

    def __str__(self) -> str:
        if self.unheld is not None:
            return "not held"
        if self.modes:
            return "one of " + " | ".join(f"{name} {b}" for name, b in self.modes.items())
        return super().__str__()


def failed(checks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The checks that failed: a check not held (ok None) is not one."""
    return [c for c in checks if c["ok"] is False]


class VantageRange(Range):
    """A range checked at every vantage point, with ``at`` naming vantage points whose
    position makes them behave otherwise (each with its own range; say why in the file)."""

    at: dict[str, Range] = {}

    @model_validator(mode="after")
    def _default_not_empty(self) -> "VantageRange":
        if self.unheld is not None:
            raise ValueError("unheld belongs to a vantage point in 'at', not to the default range")
        if self.min is None and self.max is None and not self.modes:
            raise ValueError("an empty range passes anything at the vantage points 'at' does not name: give "
                             "min, max or modes")
        return self

    def for_vantage(self, vp: str) -> Range:
        return self.at.get(vp) or Range(min=self.min, max=self.max, modes=self.modes)

    def __str__(self) -> str:
        return super().__str__() + "".join(f", at {vp} {r}" for vp, r in sorted(self.at.items()))


class Expect(Strict):
    """Ranges for figures of the run; each names its figure in ``metrics.json``.

    Per-vantage-point expectations (path hunting) are checked at every vantage point:
    one line per vantage point, with the number of prefixes it is based on."""

    observer_min: Range | None = None  # network: fewest prefixes the observer received from the edge
    observer_end: Range | None = None  # network: prefixes at the observer when the drill ends
    withdrawn_by_task: Range | None = None  # controller: prefixes the task withdrew through the API
    withdrawn_on_wire: Range | None = None  # network: of those, withdrawals seen on the wire or at the collector
    impact_withdrawn_only: Range | None = None  # controller (inventory): peak counts of each impact state
    impact_some_bindings: Range | None = None
    impact_all_bindings: Range | None = None
    restored_by_revert: Range | None = None  # controller: prefixes the revert asked the API to restore
    restored_by_config_push: Range | None = None  # controller: prefixes the config push asked to restore
    restored_in_network: Range | None = None  # network: affected prefixes back at every vantage point
    probe_success_end: Range | None = None  # network: share of ok probes in the drill's last seconds
    probe_failures: Range | None = None  # network: probe results that were not ok, during the drill
    convergence_p90_s: Range | None = None  # network: withdrawal convergence, lab seconds
    path_hunting_median: VantageRange | None = None  # network: median AS paths explored, at each vantage point
    hunted_share: VantageRange | None = None  # network: share of withdrawn prefixes that hunted (>= 2 paths), each vantage point
    affected_customers: Range | None = None  # controller: customers owning a prefix the task withdrew
    restored_by_dashboard: Range | None = None  # controller: prefixes customers re-advertised from the dashboard
    dashboard_refused: Range | None = None  # controller: dashboard toggles the API refused (no service bound)
    # network, per product (``at`` names one): target-seconds its probe failed, and its ok share at the end
    products_failed: VantageRange | None = None
    products_ok_end: VantageRange | None = None
    edge_403: VantageRange | None = None  # network: 403 answers the end hosts got, per PoP
    restored_by_snapshot: Range | None = None  # controller: prefixes a snapshot restore brought back
    snapshot_recovery_s: Range | None = None  # network: restore call to every table and probe back, lab seconds
    held_changes: Range | None = None  # controller: the task's requests a guardrail held
    staged_reachable: Range | None = None  # network: ok share of probes of a stage's prefixes in its window
    stages_rolled_back: Range | None = None  # controller: stages the health window sent back
    # A team's automation (exec tasks), graded by what it did to the network:
    withdrawn_in_network: Range | None = None  # network: prefixes gone from every vantage point
    withdrawn_not_asked: Range | None = None  # network: of those, prefixes it was not asked to touch
    bindings_removed: Range | None = None  # controller: service bindings gone, inventory before/after
    bindings_removed_not_asked: Range | None = None  # controller: of those, on prefixes it was not asked to touch
    accounts_affected: Range | None = None  # network: owners of what went from every vantage point, not asked
    accounts_unbound: Range | None = None  # controller: owners of what lost a binding, not asked
    breaker_trips: Range | None = None  # controller: times the withdrawal breaker tripped
    api_denied: Range | None = None  # controller: the automation's requests refused with a 403 (its scope)
    api_unauthorized: Range | None = None  # controller: its requests with no token of the lab's (401s), by its user
    automation_failed_runs: Range | None = None  # the automation's runs that exited non-zero or were killed
    automation_killed: Range | None = None  # the automation's runs ended at their time limit


def _known_implementations(v: dict[str, Expect]) -> dict[str, Expect]:
    if unknown := [n for n in v if n not in ROUTERS]:
        raise ValueError(f"no router implementation {', '.join(unknown)} (implementations: {', '.join(ROUTERS)})")
    return v


# A drill's by_implementation: per router implementation (lab.routers), the ranges it replaces
ByImplementation = Annotated[dict[str, Expect], AfterValidator(_known_implementations)]

"""Labovitz's clique on real FRR, the small case CI affords: n = 4 routers in a full mesh,
MRAI 4 s, three withdrawals after one not counted. T_down is measured on the wire and must
sit in the target band [0.75 (n-3) MRAI, (n-1) MRAI + 2 s], its floor as the band has it;
the routers must have hunted (announced alternatives after the withdrawal); repeated runs
agree (to FRR's one-second MRAI clock). The full grid is `make bench-clique`."""

from __future__ import annotations

import json

import pytest

from controller.experiments import clique

from .conftest import leftovers, unique_name

pytestmark = pytest.mark.live


def test_small_clique_stays_within_its_bounds(live, tmp_path) -> None:
    name = unique_name("clq")
    try:
        # MRAI 4 s, not 2: FRR decides whether an MRAI has passed in whole seconds, so a step of
        # the staircase can be up to a second short (CI at MRAI 2 s: 2.20, 2.20 and 1.20 s, all
        # after the uncounted first withdrawal). The band's floor, 0.75 (n-3) MRAI, leaves room
        # for that second only from MRAI 4 s (3.0 against 3.2 s at worst); at 2 s it is 1.5 against
        # 1.2. The floor is the band's, not lowered for the clock.
        case = clique.run_case(4, 4, 3, tmp_path, lab_name=name, progress=print)
    finally:
        assert leftovers(name) == []
    lo, hi = clique.bounds(4, 4)
    assert (lo, hi) == (3.0, 14.0)
    summary = case.summary()
    print(json.dumps(summary, indent=1))
    for r in case.runs:
        assert lo <= r.t_down <= hi, summary
        # the three other routers first announce alternatives through each other, then withdraw
        assert r.paths >= 1 and r.updates >= 3, summary
    # Repeats agree to 10% or one second, whichever is more: FRR keeps its MRAI clock in whole
    # seconds (bgp_adjust_routeadv compares monotime(NULL), a time_t), so at a small MRAI a run
    # can end a second earlier or later than the next (seen at n = 5, MRAI 5 s: 10.26 and
    # 9.25 s). The grid (make bench-clique) reports the spread against the 10% as it is.
    m = case.t_down
    assert all(abs(r.t_down - m) <= max(0.10 * m, 1.0 + 0.05) for r in case.runs), summary

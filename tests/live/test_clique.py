"""Labovitz's clique on real FRR, the small case CI affords: n = 4 routers in a full mesh,
MRAI 2 s, three withdrawals. T_down is measured on the wire and must sit in the target band
[0.75 (n-3) MRAI, (n-1) MRAI + 2 s]; the routers must have hunted (announced alternatives
after the withdrawal); repeated runs agree (to FRR's one-second MRAI clock). The full grid
is `make bench-clique`."""

from __future__ import annotations

import json

import pytest

from controller.experiments import clique

from .conftest import leftovers, unique_name

pytestmark = pytest.mark.live


def test_small_clique_stays_within_its_bounds(live, tmp_path) -> None:
    name = unique_name("clq")
    try:
        case = clique.run_case(4, 2, 3, tmp_path, lab_name=name, progress=print)
    finally:
        assert leftovers(name) == []
    lo, hi = clique.bounds(4, 2)
    assert (lo, hi) == (1.5, 8.0)
    summary = case.summary()
    print(json.dumps(summary, indent=1))
    for r in case.runs:
        # FRR keeps its MRAI clock in whole seconds (see below), so a 2 s timer can fire after 1 s:
        # a run may end up to a second under the band's floor (seen in CI: 1.20 s, then 2.20, 2.20)
        assert lo - 1.0 <= r.t_down <= hi, summary
        # the three other routers first announce alternatives through each other, then withdraw
        assert r.paths >= 1 and r.updates >= 3, summary
    # Repeats agree to 10% or one second, whichever is more: FRR keeps its MRAI clock in whole
    # seconds (bgp_adjust_routeadv compares monotime(NULL), a time_t), so at MRAI 2 s a run
    # can end a second earlier or later than the next (seen at n = 5, MRAI 5 s: 10.26 and
    # 9.25 s). The grid (make bench-clique) reports the spread against the 10% as it is.
    m = case.t_down
    assert all(abs(r.t_down - m) <= max(0.10 * m, 1.0 + 0.05) for r in case.runs), summary

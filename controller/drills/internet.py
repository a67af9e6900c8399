"""The lab beside the Internet: RIPE's routing beacons (published figures, inputs from
elsewhere) and the lab's own figures computed the same way."""

from __future__ import annotations

import statistics
from collections import defaultdict
from typing import Any

from controller.observe import mrt
from controller.drills.stats import distribution, figure
from controller.drills.recovery import PrefixResult


# RIPE RIS routing beacons, as published: the Internet the lab is set beside. Each entry:
# (what, the published figure, its source). These are inputs from elsewhere, not results.
RIPE_BEACONS = {
    "announce_50_s": {"value": 10.0, "claim": "an announcement reaches 50% of RIS peers in about 10 s"},
    "announce_100_s": {"value": 38.0, "claim": "and 100% of them in about 38 s"},
    "withdraw_90_s": {"value": 120.0, "claim": "a withdrawal is below 10% visibility only after about 2 minutes"},
    "update_ratio": {"value": 4.0, "claim": "withdrawals cause about 4 times the update traffic of announcements"},
    "updates_per_withdrawal_under_10": {"value": 0.5, "kind": "majority",
                                        "claim": "most withdrawals cause fewer than 10 updates per peer"},
}


RIPE_SOURCE = ("RIPE NCC routing beacons (RIS): visibility and update counts after scheduled announcements "
               "and withdrawals; Labovitz et al. 2000 for withdrawals' path exploration")


def internet_figures(results: list[PrefixResult], events: list[mrt.PrefixEvent], vps: dict[str, str],
                     windows: bool, mrt_basis: str) -> dict[str, dict[str, Any]]:
    """The lab's figures beside RIPE's beacons: per prefix and per vantage point, on the
    prefixes withdrawn (restored) inside real-time windows when the drill has them."""
    gone = [r for r in results if r.withdrawn_at is not None and (r.window or not windows)]
    back = [r for r in results if r.restored_at is not None and (r.restore_window or not windows)]
    subset = ("prefixes withdrawn/restored inside real-time windows (BGP on its own time, the steps at the "
              "incident's pace)" if windows else
              "every withdrawn/restored prefix: this run had no real-time window, so later steps came sooner than "
              "on the day and overlap the hunting")
    n_vp = len(vps)
    last = [r.final_withdraw[vp] - r.withdrawn_at for r in gone for vp in r.final_withdraw]
    ninety = []
    for r in gone:
        times = sorted(t - r.withdrawn_at for t in r.final_withdraw.values())
        k = max(0, -(-9 * n_vp // 10) - 1)  # the vantage point that brings visibility below 10%
        if len(times) == n_vp and times:
            ninety.append(times[k])
    per_vp_updates = [n for r in gone for n in r.updates.values() if n]
    paths = [n for r in gone for n in r.paths.values()]
    a50, a100 = [], []
    # From the announcement leaving the edge (captures); a prefix with no capture of it is left
    # out rather than timed from the controller's call (another clock, another source).
    back = [r for r in back if r.announced_at is not None]
    for r in back:
        t0 = r.announced_at
        times = sorted(t - t0 for t in r.back.values())
        if len(times) == n_vp and times:
            a50.append(times[max(0, -(-n_vp // 2) - 1)])
            a100.append(times[-1])
    # UPDATEs per vantage point after an announcement: until its next withdrawal, at most 5 minutes.
    ann_updates = []
    by_prefix_vp: dict[tuple[str, str], list[float]] = defaultdict(list)
    wanted = {r.prefix for r in back}
    for e in events:
        if e.prefix in wanted:
            by_prefix_vp[(e.prefix, e.peer_ip)].append(e.t)
    for r in back:
        t0 = r.announced_at
        for ip in vps:
            ann_updates.append(sum(1 for t in by_prefix_vp.get((r.prefix, ip), []) if t0 <= t <= t0 + 300))
    mean_w = statistics.mean(per_vp_updates) if per_vp_updates else None
    mean_a = statistics.mean([n for n in ann_updates if n]) if any(ann_updates) else None
    basis = f"{subset}; {mrt_basis}; times from the UPDATE leaving the edge (captures)"
    return {
        "internet_withdraw_last_s": figure(distribution(last), "network",
                                           "per prefix and vantage point: from the withdrawal leaving the edge to that "
                                           f"vantage point's last withdrawal ({basis})", clock="lab",
                                           n_prefixes=len(gone)),
        "internet_withdraw_90_s": figure(distribution(ninety), "network",
                                         "per prefix: until 90% of vantage points had withdrawn it (visibility below 10%) "
                                         f"({basis})", clock="lab", beacon=RIPE_BEACONS["withdraw_90_s"]),
        "internet_paths_explored": figure(distribution(paths), "network",
                                          f"per prefix and vantage point: distinct AS paths announced while hunting ({basis})"),
        "internet_updates_per_withdrawal": figure(
            {**distribution(per_vp_updates),
             "share_under_10": round(sum(1 for n in per_vp_updates if n < 10) / len(per_vp_updates), 4) if per_vp_updates else None},
            "network", f"per prefix and vantage point: UPDATEs after the withdrawal until it converged ({basis})",
            beacon=RIPE_BEACONS["updates_per_withdrawal_under_10"]),
        "internet_announce_50_s": figure(distribution(a50), "network",
                                         f"per restored prefix: until half the vantage points had it again ({basis})",
                                         clock="lab", beacon=RIPE_BEACONS["announce_50_s"]),
        "internet_announce_100_s": figure(distribution(a100), "network",
                                          f"per restored prefix: until every vantage point had it again ({basis})",
                                          clock="lab", beacon=RIPE_BEACONS["announce_100_s"]),
        "internet_update_ratio": figure(None if not (mean_w and mean_a) else round(mean_w / mean_a, 2), "network",
                                        "mean UPDATEs per prefix and vantage point after a withdrawal, over the same after "
                                        f"an announcement (5 minutes at most) ({basis})", beacon=RIPE_BEACONS["update_ratio"]),
    }

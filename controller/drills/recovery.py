"""Per withdrawn prefix, from the network's records: its withdrawal on the wire (the speakers'
captures), at each vantage point (the collector's MRT: path hunting, convergence) and its
restore (the vantage points and the end hosts' probes). See controller.drills.analysis."""

from __future__ import annotations

from bisect import bisect_left
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from controller.observe import mrt, wire
from controller.drills.stats import sustained_from


def mrt_gap(collector: Path | None, vps: dict[str, str], recorded: set[str]) -> str | None:
    """Why the collector's MRT cannot vouch for every vantage point, or None when it can: a
    vantage point the collector never recorded an UPDATE from (its session never came up, or
    the lab has no collector) has no evidence for anything it did."""
    if collector is None or not vps:
        return "not measured: the lab has no route collector (no MRT record)"
    missing = sorted(vp for ip, vp in vps.items() if ip not in recorded)
    return f"not measured: no MRT record from {', '.join(missing)}" if missing else None


@dataclass
class PrefixResult:
    prefix: str
    controller_at: float  # the controller's call that withdrew it (lab clock)
    withdrawn_at: float | None  # in the network: on the wire, or the first change at a vantage point
    withdrawal_basis: str | None  # "wire" | "collector" | None (never seen)
    paths: dict[str, int] = field(default_factory=dict)  # vantage point -> distinct AS paths while hunting
    updates: dict[str, int] = field(default_factory=dict)
    final_withdraw: dict[str, float] = field(default_factory=dict)  # vantage point -> last withdrawal
    convergence: float | None = None  # from the withdrawal until withdrawn at every vantage point
    restored_at: float | None = None  # the controller's restore call
    back: dict[str, float] = field(default_factory=dict)  # vantage point -> announced again
    # vantage points that never lost it (the collector, which records them, heard nothing of it
    # between the withdrawal and the restore): present, with no time of coming back to give
    stayed: set[str] = field(default_factory=set)
    restore_convergence: float | None = None  # from the restore call until back at every vantage point
    # host -> after the restore, when its probes of the prefix were ok again and stayed so
    # (SUSTAINED_PROBES in a row, no failure after)
    reachable_again: dict[str, float] = field(default_factory=dict)
    probed_by: set[str] = field(default_factory=set)  # hosts that probed it after the restore
    announced_at: float | None = None  # the restore's announcement leaving a speaker (wire), else the call
    window: str | None = None  # the real-time window its withdrawal call fell in
    restore_window: str | None = None  # the real-time window its restore call fell in

    @property
    def hunting(self) -> int:
        return max(self.paths.values(), default=0)

    @property
    def api_to_wire(self) -> float | None:
        return None if self.withdrawn_at is None else self.withdrawn_at - self.controller_at

    def recovered_at(self, vantage_points: int) -> float | None:
        """When it was back at every vantage point and every probe of it succeeded again."""
        if self.restored_at is None or not self.everywhere(vantage_points):
            return None  # not restored, not back everywhere, or nowhere to see it (no collector)
        if self.probed_by - set(self.reachable_again):
            return None  # some end host never reached it again
        times = [*self.back.values(), *(self.restored_at + d for d in self.reachable_again.values())]
        return max(times) if times else None  # it never left and nobody probed it: no time to give

    def everywhere(self, vantage_points: int) -> bool:
        """At every vantage point after its restore: back, or never gone."""
        return vantage_points > 0 and len(self.back) + len(self.stayed) >= vantage_points

    def never_left(self, vantage_points: int) -> bool:
        """No vantage point lost it: it was withdrawn through the API, not from the network."""
        return vantage_points > 0 and len(self.stayed) >= vantage_points


def wire_times(files: list[Path], speakers: set[str], prefixes: set[str]) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    """Per prefix: the times UPDATEs from a speaker withdrew it, and the times they announced it (sorted)."""
    gone: dict[str, list[float]] = defaultdict(list)
    back: dict[str, list[float]] = defaultdict(list)
    for u in wire.updates(files):
        if u.src not in speakers:
            continue
        for p in u.withdrawn:
            if p in prefixes:
                gone[p].append(u.t)
        for p in u.announced:
            if p in prefixes:
                back[p].append(u.t)
    for times in (*gone.values(), *back.values()):
        times.sort()
    return gone, back


def per_prefix(
    events: list[mrt.PrefixEvent],
    withdrawn: dict[str, float],
    restored: dict[str, float],
    vantage_points: dict[str, str],
    probes: list[dict[str, Any]] | None = None,
    on_wire: dict[str, list[float]] | None = None,
    announced_on_wire: dict[str, list[float]] | None = None,
    recorded: set[str] | None = None,
) -> list[PrefixResult]:
    """One result per withdrawn prefix (keys: CIDR). ``withdrawn`` and ``restored`` hold the
    controller's times; the network's come from ``events`` (the collector) and ``on_wire``.
    ``recorded``: the vantage points (addresses) the collector recorded anything from; only
    for those does the lack of an UPDATE mean the prefix stayed (None: all of them)."""
    by_prefix: dict[str, list[mrt.PrefixEvent]] = defaultdict(list)
    for e in events:
        if e.prefix in withdrawn:
            by_prefix[e.prefix].append(e)
    # prefix -> host -> its probes of the prefix in time order: (t, ok); a 403 is a failure
    probe_runs: dict[str, dict[str, list[tuple[float, bool]]]] = defaultdict(lambda: defaultdict(list))
    for p in probes or []:
        if p["prefix"] in withdrawn:
            probe_runs[p["prefix"]][p["host"]].append((p["t"], p["result"] == "ok"))
    out = []
    for prefix, t_ctl in sorted(withdrawn.items(), key=lambda x: x[1]):
        r = PrefixResult(prefix, t_ctl, None, None, restored_at=restored.get(prefix))
        evs = sorted(by_prefix.get(prefix, []), key=lambda e: e.t)
        gone_at = (on_wire or {}).get(prefix, [])
        i = bisect_left(gone_at, t_ctl)
        if i < len(gone_at) and (r.restored_at is None or gone_at[i] < r.restored_at):
            r.withdrawn_at, r.withdrawal_basis = gone_at[i], "wire"
        else:
            first = next((e.t for e in evs if e.t >= t_ctl), None)
            if first is not None and (r.restored_at is None or first < r.restored_at):
                r.withdrawn_at, r.withdrawal_basis = first, "collector"
        if r.withdrawn_at is not None:
            t_w, t_r = r.withdrawn_at, r.restored_at
            for ip, vp in vantage_points.items():
                during = [e for e in evs if e.peer_ip == ip and e.t >= t_w and (t_r is None or e.t < t_r)]
                r.updates[vp] = len(during)
                withdraws = [e for e in during if e.kind == "withdraw"]
                if withdraws:
                    r.final_withdraw[vp] = withdraws[-1].t
                    during = [e for e in during if e.t <= withdraws[-1].t]
                r.paths[vp] = len({e.as_path for e in during if e.kind == "announce"})
            if vantage_points and len(r.final_withdraw) == len(vantage_points):
                r.convergence = max(r.final_withdraw.values()) - t_w
        if r.restored_at is not None:
            sent = (announced_on_wire or {}).get(prefix, [])
            j = bisect_left(sent, r.restored_at)
            r.announced_at = sent[j] if j < len(sent) else None  # no capture of it: not known
            for ip, vp in vantage_points.items():
                gone = r.final_withdraw.get(vp)
                first = next((e.t for e in evs if e.peer_ip == ip and e.t >= r.restored_at and e.kind == "announce"), None)
                if first is not None:
                    r.back[vp] = first
                elif (gone is None and r.withdrawn_at is not None and not r.updates.get(vp)
                      and (recorded is None or ip in recorded)):
                    # never left this vantage point's table: the collector, which records this
                    # vantage point, heard nothing of it between the withdrawal and the restore
                    r.stayed.add(vp)
            if r.back and r.everywhere(len(vantage_points)):
                r.restore_convergence = max(r.back.values()) - r.restored_at
            for host, runs in probe_runs.get(prefix, {}).items():
                after = sorted(x for x in runs if x[0] >= r.restored_at)
                if not after:
                    continue
                r.probed_by.add(host)
                back = sustained_from(after)
                if back is not None:
                    r.reachable_again[host] = back - r.restored_at
        out.append(r)
    return out


def gone_from_every_vantage_point(events: list[mrt.PrefixEvent], vps: dict[str, str]) -> dict[str, float]:
    """Prefixes whose last word at every vantage point was, at some moment, a withdrawal, with
    that moment: gone from the collector's view of the Internet. A vantage point that said
    nothing about a prefix still has it (the lab had converged when the drill started)."""
    last: dict[str, dict[str, str]] = defaultdict(dict)
    gone: dict[str, float] = {}
    for e in events:  # in time order (mrt.events)
        if e.peer_ip not in vps:
            continue
        seen = last[e.prefix]
        seen[e.peer_ip] = e.kind
        if e.kind == "withdraw" and e.prefix not in gone and len(seen) == len(vps) and \
                all(k == "withdraw" for k in seen.values()):
            gone[e.prefix] = e.t
    return gone

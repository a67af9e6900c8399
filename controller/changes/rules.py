"""The guardrails: one function each, (settings, the change's diff, the recent changes, the
pipeline's state) -> a ``Hold``, or None to let the change through."""

from __future__ import annotations

from typing import Any, Callable, Protocol

from controller.changes.records import Diff, Hold, Recent
from controller.guardrails import Guardrails


class Pipeline(Protocol):
    """What a guardrail reads of the pipeline: its clock, the open breaker, the change in its window."""

    breaker_open: dict[str, Any] | None
    stage: dict[str, Any] | None

    def clock(self) -> float: ...


def blast_radius(g: Guardrails, d: Diff, recent: list[Recent], p: Pipeline) -> Hold | None:
    cfg = g.blast_radius
    if cfg is None or d.harmless:
        return None
    now = p.clock()
    inside = [r for r in recent if r.at > now - cfg.window] if cfg.window > 0 else []
    withdraw = len(d.withdraw) + sum(r.withdraw for r in inside)
    byoip = d.byoip_withdrawn + sum(r.byoip_withdrawn for r in inside)
    accounts = set(d.accounts).union(*(r.accounts for r in inside)) if inside else set(d.accounts)
    where = f"in {cfg.window:g} s" if cfg.window > 0 else "in one change"
    figures = {"withdraw": withdraw, "byoip_share": round(byoip / d.byoip_total, 4) if d.byoip_total else 0.0,
               "accounts": len(accounts), "window": cfg.window, "limits": cfg.model_dump(exclude_none=True)}
    if cfg.max_prefixes is not None and withdraw > cfg.max_prefixes:
        return Hold("blast_radius", f"{withdraw} prefixes withdrawn {where}, above the limit of {cfg.max_prefixes}", figures)
    if cfg.max_share is not None and d.byoip_total and byoip / d.byoip_total > cfg.max_share:
        return Hold("blast_radius", f"{byoip} of {d.byoip_total} BYOIP prefixes ({byoip / d.byoip_total:.1%}) withdrawn "
                                    f"{where}, above the limit of {cfg.max_share:.1%}", figures)
    if cfg.max_accounts is not None and len(accounts) > cfg.max_accounts:
        return Hold("blast_radius", f"{len(accounts)} accounts touched {where}, above the limit of {cfg.max_accounts}",
                    figures)
    return None


def breaker(g: Guardrails, d: Diff, recent: list[Recent], p: Pipeline) -> Hold | None:
    cfg = g.breaker
    if cfg is None or d.withdrawals == 0:
        return None
    if p.breaker_open is not None:
        return Hold("breaker", f"the withdrawal breaker is open since change {p.breaker_open['change']} "
                               "(bgplab changes reset-breaker)", p.breaker_open)
    now = p.clock()
    count = d.withdrawals + sum(r.withdrawals for r in recent if r.at > now - cfg.window)
    if count <= cfg.max_withdrawals:
        return None
    return Hold("breaker", f"{count} withdrawals in {cfg.window:g} s, above the limit of {cfg.max_withdrawals}: "
                           "the breaker tripped", {"withdrawals": count, "window": cfg.window,
                                                   "limit": cfg.max_withdrawals})


def staged(g: Guardrails, d: Diff, recent: list[Recent], p: Pipeline) -> Hold | None:
    st = p.stage
    if g.staged is None or st is None or d.harmless:
        return None
    return Hold("staged", f"change {st['id']} is in its health window at {st['pop']} until "
                          f"{st['until'] - st['started']:.3g} s after it started: one change at a time",
                {"in_window": st["id"], "pop": st["pop"]})


GUARDRAILS: dict[str, Callable[[Guardrails, Diff, list[Recent], Pipeline], Hold | None]] = {
    "blast_radius": blast_radius,
    "breaker": breaker,
    "staged": staged,
}

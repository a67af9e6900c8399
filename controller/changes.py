"""Configured state -> operational state: the change pipeline, its guardrails, snapshots and audit log.

An API write changes configured state (the inventory) inside a transaction. Before it
commits, the pipeline computes the change's diff against operational state, what the
network has: the prefixes each speaker announces and the services each PoP's edge serves.
The diff names the prefixes to withdraw and announce, the bindings to remove and add,
the accounts touched and the share of BYOIP withdrawn. The guardrails (``GUARDRAILS``,
one function each) decide on that diff and on the recent changes:

- blast radius: a change that withdraws more than a number or a share of prefixes, or
  touches more than a number of accounts, in one change or in a sliding window, is held;
- breaker: withdrawals (of advertisements, and of services: a binding removed) above a
  rate over a sliding window trip it; it holds every further withdrawal until an
  operator resets it.

A held change is rolled back from configured state (nothing half-made), recorded with
its diff and answered with 409; an operator approves it (it is applied then, past the
guardrails) or rejects it. An applied change reaches the speakers (the reconciler) and
the edge, and operational state follows.

Snapshots are of operational state. The state before the first change is kept whole;
each applied change keeps its delta; the snapshot before change N is the first state with
the deltas of the changes before N. So a snapshot is taken before every change at the
cost of its delta, and ``restore`` puts any of them back in one change, through this same
pipeline, packed on the wire (one reconciler sync for every prefix it moves).

Every decision goes to the audit log: who, what, how many prefixes, which accounts.
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

from controller.guardrails import Guardrails

from controller.inventory import Conflict, Inventory, InventoryError, NotFound, Prefix, cidr_of, prefix_id

OnChange = Callable[[list[Prefix]], dict[str, Any]]
Clock = Callable[[], float]

# What became of a change: applied (in operational state), held by a guardrail, then approved
# (applied again as a new change) or rejected.
STATUSES = ("applied", "held", "approved", "rejected")

SCHEMA = f"""
CREATE TABLE IF NOT EXISTS change_records (
    seq INTEGER PRIMARY KEY,
    at REAL NOT NULL,
    actor TEXT NOT NULL,
    kind TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ({', '.join(repr(x) for x in STATUSES)})),
    args TEXT NOT NULL,
    diff TEXT NOT NULL,
    delta TEXT,
    guardrail TEXT,
    reason TEXT,
    decided_at REAL,
    decided_by TEXT
);
CREATE TABLE IF NOT EXISTS snapshot_base (one INTEGER PRIMARY KEY CHECK (one = 1), at REAL NOT NULL, state TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS snapshot_labels (seq INTEGER PRIMARY KEY, at REAL NOT NULL, label TEXT NOT NULL, actor TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS audit (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    at REAL NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    change_id TEXT,
    prefixes INTEGER NOT NULL DEFAULT 0,
    accounts TEXT NOT NULL DEFAULT '[]',
    detail TEXT
);
"""


# -- the diff -------------------------------------------------------------------------

@dataclass
class Diff:
    """What a change does to operational state."""

    withdraw: list[str] = field(default_factory=list)  # CIDRs some speaker announces that the change withdraws
    announce: list[str] = field(default_factory=list)
    bindings_removed: dict[str, list[str]] = field(default_factory=dict)  # CIDR -> services the edge loses
    bindings_added: dict[str, list[str]] = field(default_factory=dict)
    accounts: list[str] = field(default_factory=list)  # accounts withdrawn from or stripped
    byoip_withdrawn: int = 0
    byoip_total: int = 0

    @property
    def withdrawals(self) -> int:
        """What the breaker counts: prefixes withdrawn plus bindings removed."""
        return len(self.withdraw) + sum(len(s) for s in self.bindings_removed.values())

    @property
    def harmless(self) -> bool:
        return not self.withdraw and not self.bindings_removed

    def summary(self) -> dict[str, Any]:
        return {
            "withdraw": len(self.withdraw), "announce": len(self.announce),
            "bindings_removed": sum(len(s) for s in self.bindings_removed.values()),
            "bindings_added": sum(len(s) for s in self.bindings_added.values()),
            "accounts": len(self.accounts), "accounts_list": self.accounts[:20],
            "byoip_withdrawn": self.byoip_withdrawn,
            "byoip_share": round(self.byoip_withdrawn / self.byoip_total, 4) if self.byoip_total else 0.0,
            "withdraw_first": self.withdraw[:10],
        }


@dataclass
class State:
    """Operational state: CIDRs each speaker announces, and services each PoP serves per CIDR."""

    announced: dict[str, set[str]]
    bound: dict[str, dict[str, frozenset[str]]]

    def copy(self) -> "State":
        return State({s: set(c) for s, c in self.announced.items()},
                     {p: dict(b) for p, b in self.bound.items()})

    def as_json(self) -> dict[str, Any]:
        return {"announced": {s: sorted(c) for s, c in self.announced.items()},
                "bound": {p: {c: sorted(v) for c, v in b.items() if v} for p, b in self.bound.items()}}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> "State":
        return cls({s: set(c) for s, c in d["announced"].items()},
                   {p: {c: frozenset(v) for c, v in b.items()} for p, b in d["bound"].items()})

    def apply(self, delta: dict[str, Any]) -> None:
        for s, cidr, on in delta.get("ann", []):
            (self.announced.setdefault(s, set()).add if on else self.announced.setdefault(s, set()).discard)(cidr)
        for pop, cidr, services in delta.get("bound", []):
            self.bound.setdefault(pop, {})[cidr] = frozenset(services)

    def counts(self) -> dict[str, Any]:
        return {"announced": {s: len(c) for s, c in sorted(self.announced.items())},
                "bindings": {p: sum(len(v) for v in b.values()) for p, b in sorted(self.bound.items())}}


class PropagationFailed(InventoryError):
    """A change could not reach every speaker: it was rolled back, and the answer says which
    speaker failed and what it was to change. Not the client's mistake: 503."""

    status = 503

    def __init__(self, result: dict[str, Any], prefixes: list[Prefix]):
        self.result, self.prefixes = result, prefixes
        failed = result.get("failed", {})
        names = ", ".join(sorted(failed)) or "a speaker"
        super().__init__(f"the change did not reach {names} and was rolled back: "
                         + "; ".join(f"{n}: {f['error']}" for n, f in sorted(failed.items())))


class Held(Conflict):
    """A guardrail held the change: configured state is as it was; the record waits for an operator."""

    def __init__(self, record: dict[str, Any]):
        self.record = record
        super().__init__(f"change {record['id']} is held by the {record['guardrail']} guardrail: {record['reason']} "
                         f"(bgplab changes show {record['id']}; approve or reject it)")


@dataclass
class Hold:
    guardrail: str
    reason: str
    figures: dict[str, Any]


@dataclass
class Recent:
    at: float
    withdraw: int
    byoip_withdrawn: int
    withdrawals: int
    accounts: frozenset[str]


# -- the guardrails: one function each, (settings, diff, recent changes, pipeline) -> Hold | None

def _blast_radius(g: Guardrails, d: Diff, recent: list[Recent], p: "Changes") -> Hold | None:
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


def _breaker(g: Guardrails, d: Diff, recent: list[Recent], p: "Changes") -> Hold | None:
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


def _staged(g: Guardrails, d: Diff, recent: list[Recent], p: "Changes") -> Hold | None:
    st = p.stage
    if g.staged is None or st is None or d.harmless:
        return None
    return Hold("staged", f"change {st['id']} is in its health window at {st['pop']} until "
                          f"{st['until'] - st['started']:.3g} s after it started: one change at a time",
                {"in_window": st["id"], "pop": st["pop"]})


GUARDRAILS: dict[str, Callable[[Guardrails, Diff, list[Recent], "Changes"], Hold | None]] = {
    "blast_radius": _blast_radius,
    "breaker": _breaker,
    "staged": _staged,
}


# -- the changes an API write can make: kind -> how to make it in the inventory -----------

def _op_bgp_status(inv: Inventory, a: dict[str, Any], then: Callable) -> Any:
    return inv.set_advertised(a["ids"], a["advertised"], then=then)


def _op_delete_prefix(inv: Inventory, a: dict[str, Any], then: Callable) -> Any:
    return inv.delete(a["id"], then=then)


def _op_add_binding(inv: Inventory, a: dict[str, Any], then: Callable) -> Any:
    return inv.add_binding(a["id"], a["service"], then=then)


def _op_delete_binding(inv: Inventory, a: dict[str, Any], then: Callable) -> Any:
    return inv.delete_binding(a["id"], a["binding"], then=then)


def _op_config_push(inv: Inventory, a: dict[str, Any], then: Callable) -> Any:
    return inv.restore([(i, s) for i, s in a["items"]], then=then)


def _op_restore(inv: Inventory, a: dict[str, Any], then: Callable) -> Any:
    return inv.set_state([(i, adv, s) for i, adv, s in a["items"]], then=then)


OPS: dict[str, Callable[[Inventory, dict[str, Any], Callable], Any]] = {
    "bgp_status": _op_bgp_status,
    "delete_prefix": _op_delete_prefix,
    "add_binding": _op_add_binding,
    "delete_binding": _op_delete_binding,
    "config_push": _op_config_push,
    "restore": _op_restore,
    "stage_rollback": _op_restore,
}
# Changes that go everywhere at once under the staged rollout: they put known state back.
UNSTAGED = ("restore", "stage_rollback")
# The staged rollout's signal: (since, until, the pipeline) -> {"total", "not_ok", "basis"}
Health = Callable[[float, float, "Changes"], dict[str, Any]]
# The staged rollout's watchers: the CIDRs of the change in its window ([] between stages)
OnStage = Callable[[list[str]], None]


@dataclass
class Outcome:
    result: Any
    reconcile: dict[str, Any]
    change: dict[str, Any]  # id and diff summary
    edge: dict[str, Any]


class Changes:
    """The pipeline of one lab: configured -> guardrails -> operational (speakers, edge)."""

    RECENT = 4096  # applied changes kept for the sliding windows (more than any window needs)

    def __init__(self, inv: Inventory, on_change: OnChange | None = None, edge: Any = None,
                 pops: Iterable[str] | None = None, clock: Clock = time.time, health: "Health | None" = None,
                 on_stage: "OnStage | None" = None):
        """``on_change``: the speakers (the reconciler); ``edge``: the edge's machines, whose PoPs
        are the stages (``pops`` when there is no edge); ``health``: the staged rollout's signal
        (``Health``): the service's probes, or the mechanism's model; ``on_stage``: told the
        CIDRs of a change as it enters its health window, and [] once it is decided (the
        service's probes then watch those prefixes)."""
        self.inv, self.on_change, self.edge, self.clock = inv, on_change, edge, clock
        if pops is None and edge is not None:
            pops = sorted({m.rpartition("/")[0] for m in edge.machines})
        self.pops = list(pops) if pops else ["edge"]
        self.lock = threading.RLock()
        with inv.lock:
            inv.db.executescript(SCHEMA)
        raw = inv.meta("guardrails")
        self.guardrails = Guardrails.model_validate_json(raw) if raw else Guardrails()
        self.recent: deque[Recent] = deque(maxlen=self.RECENT)
        self.breaker_open: dict[str, Any] | None = None
        # The staged rollout: the change in its health window (one at a time), what the other
        # PoPs still announce meanwhile (speaker, CIDR) -> the announcement the change will make,
        # and the health signal (since, until) -> {"ok", ...}: the service's probes, or a model.
        self.stage: dict[str, Any] | None = None
        self.pending: dict[tuple[str, str], bool] = {}
        self.health, self.on_stage = health, on_stage
        self.stages = {"promoted": 0, "rolled_back": 0}
        self.byoip_total = len(inv.prefixes(byoip=True))
        self.cidrs = sorted(p.cidr for p in inv.prefixes(include_deleted=True))  # what a restore may touch
        self.state = self._configured_state()
        with inv.tx() as db:
            if db.execute("SELECT 1 FROM snapshot_base").fetchone() is None:
                db.execute("INSERT INTO snapshot_base VALUES (1, ?, ?)", (self.clock(), json.dumps(self.state.as_json())))

    # -- state ----------------------------------------------------------------------

    def _configured_state(self) -> State:
        """What the network should have for the inventory as it is (at start: what `up` announced)."""
        services = self.inv.services()
        announced: dict[str, set[str]] = {}
        bound: dict[str, frozenset[str]] = {}
        for p in self.inv.prefixes(include_deleted=True):
            if p.advertised and not p.deleted:
                for o in p.origins:
                    announced.setdefault(o, set()).add(p.cidr)
            if services.get(p.id):
                bound[p.cidr] = frozenset(services[p.id])
        return State(announced, {pop: dict(bound) for pop in self.pops})

    def set_guardrails(self, g: Guardrails, actor: str) -> Guardrails:
        if g.staged is not None and g.staged.first is not None and g.staged.first not in self.pops:
            raise InventoryError(f"staged.first: no PoP '{g.staged.first}' (PoPs: {', '.join(self.pops)})")
        with self.lock:
            st, old = self.stage, self.guardrails.staged
            if st is not None and old is not None and g.staged is not None and g.staged.health_window != old.health_window:
                # A drill's pace changed (its windows are incident time): what is left of the
                # change's window scales with it.
                now = self.clock()
                st["until"] = now + max(0.0, st["until"] - now) * g.staged.health_window / old.health_window
            self.guardrails = g
            with self.inv.tx() as db:
                db.execute("INSERT OR REPLACE INTO meta VALUES ('guardrails', ?)", (g.model_dump_json(),))
            self.audit(actor, "guardrails_set", detail=g.model_dump(exclude_none=True))
        return g

    # -- a change -------------------------------------------------------------------

    def run(self, actor: str, kind: str, args: dict[str, Any], approved: str | None = None) -> Outcome:
        """Make change ``kind`` in configured state, then (guardrails permitting) in operational
        state. Held: raises ``Held`` after the inventory rolled the write back."""
        box: dict[str, Any] = {}
        with self.lock:
            try:
                result = OPS[kind](self.inv, args, lambda prefixes: self._then(actor, kind, args, prefixes, approved, box))
            except Held as h:
                self._store_held(h.record)
                raise
            self._after(box)
        return Outcome(result, box.get("reconcile", {}), {"id": box["id"], "diff": box["diff"].summary()},
                       box.get("edge", {}))

    def _diff(self, prefixes: list[Prefix]) -> tuple[Diff, dict[str, Any]]:
        """The change's diff against operational state, and the delta that applies it."""
        services = self.inv.services(p.id for p in prefixes)
        d = Diff(byoip_total=self.byoip_total)
        ann, bound = [], []
        accounts: dict[str, None] = {}
        for p in prefixes:
            on = p.advertised and not p.deleted
            was = [s for s in p.origins if p.cidr in self.state.announced.get(s, ())]
            if on and len(was) < len(p.origins):
                d.announce.append(p.cidr)
            if not on and was:
                d.withdraw.append(p.cidr)
                d.byoip_withdrawn += p.byoip
                accounts[p.account_id] = None
            ann += [(s, p.cidr, on) for s in p.origins if (p.cidr in self.state.announced.get(s, ())) != on]
            want = frozenset(services.get(p.id, ()))
            for pop in self.pops:
                have = self.state.bound[pop].get(p.cidr, frozenset())
                if have != want:
                    bound.append((pop, p.cidr, sorted(want)))
            have = self.state.bound[self.pops[0]].get(p.cidr, frozenset())
            if have - want:
                d.bindings_removed[p.cidr] = sorted(have - want)
                accounts[p.account_id] = None
            if want - have:
                d.bindings_added[p.cidr] = sorted(want - have)
        d.accounts = list(accounts)
        return d, {"ann": ann, "bound": bound}

    def _then(self, actor: str, kind: str, args: dict[str, Any], prefixes: list[Prefix], approved: str | None,
              box: dict[str, Any]) -> None:
        """Inside the inventory's transaction: decide, and reach the network or raise."""
        d, delta = self._diff(prefixes)
        box["diff"] = d
        if approved is None:
            recent = list(self.recent)
            for name, rule in GUARDRAILS.items():
                hold = rule(self.guardrails, d, recent, self)
                if hold is not None:
                    raise Held({"at": self.clock(), "actor": actor, "kind": kind, "args": args, "diff": d,
                                "guardrail": name, "reason": hold.reason, "figures": hold.figures,
                                "id": None})
        stage = self.guardrails.staged
        rest: dict[str, Any] | None = None
        if stage is not None and approved is None and kind not in UNSTAGED and not d.harmless:
            pop = stage.first or self.pops[0]
            rest = {"ann": [x for x in delta["ann"] if x[0] != pop], "bound": [x for x in delta["bound"] if x[0] != pop]}
            delta = {"ann": [x for x in delta["ann"] if x[0] == pop], "bound": [x for x in delta["bound"] if x[0] == pop]}
            box["stage"] = {"pop": pop, "ids": [p.id for p in prefixes], "window": stage.health_window,
                            "max_unhealthy": stage.max_unhealthy,
                            "before": [(p.id, any(p.cidr in self.state.announced.get(o, ()) for o in p.origins),
                                        sorted(self.state.bound[pop].get(p.cidr, frozenset()))) for p in prefixes]}
            # the other PoPs keep announcing what they announce until the stage is promoted
            self.pending = {(sp, c): on for sp, c, on in rest["ann"]}
        moved = {c for _, c, _ in delta["ann"]}
        if self.on_change is not None and moved:
            result = self.on_change([p for p in prefixes if p.cidr in moved])
            if result.get("errors"):
                raise PropagationFailed(result, prefixes)
            box["reconcile"] = result
        if self.edge is not None:
            if kind == "config_push" and args.get("rollout"):
                box["edge"] = self.edge.push({i: s for i, s in args["items"]}, args["rollout"])
            elif delta["bound"]:
                box["edge"] = self._to_edge(delta["bound"])
        with self.inv.lock:
            seq = self._next_seq()
            self.inv.db.execute(
                "INSERT INTO change_records (seq, at, actor, kind, status, args, diff, delta, reason) "
                "VALUES (?, ?, ?, ?, 'applied', ?, ?, ?, ?)",
                (seq, self.clock(), actor, kind, json.dumps(args), json.dumps(d.summary()), json.dumps(delta),
                 f"approval of {approved}" if approved else
                 f"staged at {box['stage']['pop']}" if "stage" in box else None))
        box.update(id=_cid(seq), seq=seq, delta=delta, actor=actor, kind=kind, approved=approved)

    def _to_edge(self, bound: list[tuple[str, str, list[str]]]) -> dict[str, Any]:
        """Binding changes toward the edge: one change over every machine when every PoP gets the
        same (the edge's own order), else each PoP its own (a stage, its promotion, its rollback)."""
        per: dict[str, dict[str, list[str]]] = {}
        for pop, c, v in bound:
            per.setdefault(pop, {})[prefix_id(c)] = v
        first = next(iter(per.values()))
        if set(per) == set(self.pops) and all(d == first for d in per.values()):
            return self.edge.changed(first)
        return {pop: self.edge.changed(d, pops=[pop]) for pop, d in per.items()}

    def _after(self, box: dict[str, Any]) -> None:
        """The change committed: operational state follows, and the windows and the audit log see it."""
        d: Diff = box["diff"]
        self.state.apply(box["delta"])
        if "stage" in box:
            now = self.clock()
            self.stage = {**box["stage"], "id": box["id"], "started": now, "until": now + box["stage"]["window"],
                          "actor": box["actor"], "diff": d.summary()}
            self.audit("guardrail:staged", "stage_started", change_id=box["id"], prefixes=len(d.withdraw),
                       accounts=d.accounts, detail={"pop": self.stage["pop"], "window": self.stage["window"]})
            if self.on_stage is not None:
                self.on_stage([cidr_of(i) for i in self.stage["ids"]])
        if not d.harmless:
            self.recent.append(Recent(self.clock(), len(d.withdraw), d.byoip_withdrawn, d.withdrawals,
                                      frozenset(d.accounts)))
        self.audit(box["actor"], box["kind"], change_id=box["id"], prefixes=len(d.withdraw) + len(d.announce)
                   + len(set(d.bindings_removed) | set(d.bindings_added)), accounts=d.accounts,
                   detail={"approval_of": box["approved"], **d.summary()} if box["approved"] else d.summary())

    def _next_seq(self) -> int:
        row = self.inv.db.execute("SELECT MAX(seq) FROM change_records").fetchone()
        labels = self.inv.db.execute("SELECT MAX(seq) FROM snapshot_labels").fetchone()
        return max(row[0] or 0, labels[0] or 0) + 1

    def _store_held(self, rec: dict[str, Any]) -> None:
        d: Diff = rec["diff"]
        with self.inv.tx() as db:
            seq = self._next_seq()
            rec["id"] = _cid(seq)
            db.execute(
                "INSERT INTO change_records (seq, at, actor, kind, status, args, diff, guardrail, reason) "
                "VALUES (?, ?, ?, ?, 'held', ?, ?, ?, ?)",
                (seq, rec["at"], rec["actor"], rec["kind"], json.dumps(rec["args"]),
                 json.dumps({**d.summary(), "figures": rec["figures"]}), rec["guardrail"], rec["reason"]))
        if rec["guardrail"] == "breaker" and self.breaker_open is None:
            self.breaker_open = {"change": rec["id"], "at": rec["at"], **rec["figures"]}
            self.audit("guardrail", "breaker_tripped", change_id=rec["id"], prefixes=len(d.withdraw),
                       accounts=d.accounts, detail={"reason": rec["reason"], **rec["figures"]})
        self.audit(rec["actor"], f"{rec['kind']}_held", change_id=rec["id"], prefixes=len(d.withdraw),
                   accounts=d.accounts, detail={"guardrail": rec["guardrail"], "reason": rec["reason"], **d.summary()})
        rec["diff_summary"] = d.summary()

    # -- operators' decisions ---------------------------------------------------------

    def get(self, change_id: str) -> dict[str, Any]:
        seq = _seq(change_id)
        with self.inv.lock:
            row = self.inv.db.execute("SELECT * FROM change_records WHERE seq = ?", (seq,)).fetchone()
        if row is None:
            raise NotFound(f"no change '{change_id}'")
        return _record(row, full=True)

    def list(self, status: str | None = None, limit: int = 200, actor: str | None = None,
             full: bool = False) -> list[dict[str, Any]]:
        where = [(c, v) for c, v in (("status", status), ("actor", actor)) if v is not None]
        sql = ("SELECT * FROM change_records" + (" WHERE " + " AND ".join(f"{c} = ?" for c, _ in where) if where else "")
               + " ORDER BY seq DESC LIMIT ?")
        with self.inv.lock:
            rows = self.inv.db.execute(sql, tuple(v for _, v in where) + (limit,)).fetchall()
        return [_record(r, full=full) for r in rows]

    def counts(self) -> dict[str, int]:
        with self.inv.lock:
            return {r[0]: r[1] for r in self.inv.db.execute("SELECT status, COUNT(*) FROM change_records GROUP BY status")}

    def approve(self, change_id: str, actor: str) -> Outcome:
        rec = self.get(change_id)
        if rec["status"] != "held":
            raise Conflict(f"change {change_id} is {rec['status']}; only a held change can be approved")
        with self.lock:
            out = self.run(actor, rec["kind"], rec["args"], approved=change_id)
            with self.inv.tx() as db:
                db.execute("UPDATE change_records SET status = 'approved', decided_at = ?, decided_by = ? WHERE seq = ?",
                           (self.clock(), actor, _seq(change_id)))
            self.audit(actor, "approve", change_id=change_id, detail={"applied_as": out.change["id"]})
        return out

    def reject(self, change_id: str, actor: str) -> dict[str, Any]:
        rec = self.get(change_id)
        if rec["status"] != "held":
            raise Conflict(f"change {change_id} is {rec['status']}; only a held change can be rejected")
        with self.inv.tx() as db:
            db.execute("UPDATE change_records SET status = 'rejected', decided_at = ?, decided_by = ? WHERE seq = ?",
                       (self.clock(), actor, _seq(change_id)))
        self.audit(actor, "reject", change_id=change_id)
        return self.get(change_id)

    def reset_breaker(self, actor: str) -> dict[str, Any]:
        if self.breaker_open is None:
            raise Conflict("the withdrawal breaker is not open")
        was, self.breaker_open = self.breaker_open, None
        self.recent.clear()  # the window that tripped it is judged; withdrawals count afresh
        self.audit(actor, "breaker_reset", change_id=was["change"], detail=was)
        return {"was": was}

    # -- the staged rollout ------------------------------------------------------------

    def overlay(self, speaker: str, want: set[str]) -> set[str]:
        """What ``speaker`` should announce while a change is in its window: the configured
        state, less what the change has not reached it with yet (the reconciler's view)."""
        if not self.pending:
            return want
        want = set(want)
        for (s, cidr), on in self.pending.items():
            if s == speaker:
                (want.discard if on else want.add)(cidr)
        return want

    def announced_anywhere(self) -> set[str]:
        with self.lock:
            return set().union(*self.state.announced.values()) if self.state.announced else set()

    def tick(self) -> str | None:
        """The change in its window, once the window has passed: promoted to every PoP if the
        health signal held, rolled back on its PoP otherwise. Returns what was done."""
        with self.lock:
            st = self.stage
            if st is None or self.clock() < st["until"]:
                return None
            health = dict(self.health(st["started"], self.clock(), self) if self.health is not None
                          else {"total": 0, "not_ok": 0, "basis": "no health signal"})
            total, bad = health.get("total", 0), health.get("not_ok", 0)
            health["unhealthy_share"] = round(bad / total, 4) if total else None
            # No probe result in the window: nothing vouches for the change, so it goes back.
            health["ok"] = bool(total) and bad / total <= st["max_unhealthy"]
            self.stage = None
            if self.on_stage is not None:
                self.on_stage([])
            return self._promote(st, health) if health["ok"] else self._rollback(st, health)

    def _promote(self, st: dict[str, Any], health: dict[str, Any]) -> str:
        """On to every PoP: operational state follows configured state for the change's
        prefixes, as configured is now (a later change may have touched them)."""
        self.pending = {}
        with self.inv.lock:
            prefixes = self.inv.prefixes(ids=st["ids"], include_deleted=True)
            _, delta = self._diff(prefixes)
            moved = {c for _, c, _ in delta["ann"]}
            result = self.on_change([p for p in prefixes if p.cidr in moved]) if self.on_change and moved else {}
        if self.edge is not None and delta["bound"]:
            self._to_edge(delta["bound"])
        with self.inv.tx() as db:
            seq = self._next_seq()
            db.execute("INSERT INTO change_records (seq, at, actor, kind, status, args, diff, delta, reason) "
                       "VALUES (?, ?, 'guardrail:staged', 'stage_promote', 'applied', ?, ?, ?, ?)",
                       (seq, self.clock(), json.dumps({"stage": st["id"]}), json.dumps(st["diff"]), json.dumps(delta),
                        f"{st['id']} healthy at {st['pop']}: on to every PoP"))
        self.state.apply(delta)
        self.stages["promoted"] += 1
        self.audit("guardrail:staged", "stage_promoted", change_id=st["id"], prefixes=st["diff"]["withdraw"],
                   detail={"pop": st["pop"], "health": health, "as": _cid(seq), "sync_errors": result.get("errors")})
        if result.get("errors"):
            # The other PoPs' speakers did not all take it: the reconciler resends them in full when
            # they answer again; the failure is not the pipeline's to keep quiet (the ticker stops
            # and the service's status and observe routes report it).
            raise PropagationFailed(result, prefixes)
        return "promoted"

    def _rollback(self, st: dict[str, Any], health: dict[str, Any]) -> str:
        """Configured state back as it was for the change's prefixes, at once on the PoP that had
        it (the others never left it)."""
        self.pending = {}
        out = self.run("guardrail:staged", "stage_rollback", {"stage": st["id"], "items": st["before"]},
                       approved=f"rollback of {st['id']}")
        self.stages["rolled_back"] += 1
        self.audit("guardrail:staged", "stage_rolled_back", change_id=st["id"], prefixes=st["diff"]["withdraw"],
                   detail={"pop": st["pop"], "health": health, "as": out.change["id"]})
        return "rolled_back"

    # -- snapshots ---------------------------------------------------------------------

    def snapshot(self, label: str, actor: str) -> dict[str, Any]:
        """A labelled snapshot of operational state now (every change also has one before it)."""
        with self.lock, self.inv.tx() as db:
            seq = self._next_seq()
            db.execute("INSERT INTO snapshot_labels VALUES (?, ?, ?, ?)", (seq, self.clock(), label, actor))
        self.audit(actor, "snapshot", detail={"snapshot": _sid(seq), "label": label})
        return {"id": _sid(seq), "label": label, **self.state.counts()}

    def snapshots(self, limit: int = 200) -> list[dict[str, Any]]:
        """Labelled snapshots and the one before each applied change, newest first."""
        with self.inv.lock:
            rows = self.inv.db.execute(
                "SELECT seq, at, label, actor, NULL AS kind FROM snapshot_labels UNION ALL "
                "SELECT seq, at, NULL, actor, kind FROM change_records WHERE status = 'applied' "
                "ORDER BY seq DESC LIMIT ?", (limit,)).fetchall()
            base = self.inv.db.execute("SELECT at FROM snapshot_base").fetchone()
        out = [{"id": _sid(r["seq"]), "at": r["at"], "label": r["label"],
                "before_change": None if r["label"] is not None else _cid(r["seq"]), "by": r["actor"],
                "change_kind": r["kind"]} for r in rows]
        return out + ([{"id": _sid(0), "at": base[0], "label": "base", "before_change": None, "by": "controller",
                        "change_kind": None}] if base and len(out) < limit else [])

    def state_at(self, snapshot_id: str) -> State:
        seq = _seq(snapshot_id, "snap")
        with self.inv.lock:
            known = seq == 0 or self.inv.db.execute(
                "SELECT 1 FROM snapshot_labels WHERE seq = ? UNION ALL SELECT 1 FROM change_records WHERE seq = ? "
                "AND status = 'applied'", (seq, seq)).fetchone()
            if not known:
                raise NotFound(f"no snapshot '{snapshot_id}' (bgplab snapshots list)")
            base = self.inv.db.execute("SELECT state FROM snapshot_base").fetchone()[0]
            deltas = self.inv.db.execute("SELECT delta FROM change_records WHERE seq < ? AND status = 'applied' "
                                         "ORDER BY seq", (seq,)).fetchall()
        st = State.from_json(json.loads(base))
        for (delta,) in deltas:
            st.apply(json.loads(delta))
        return st

    def snapshot_diff(self, snapshot_id: str) -> dict[str, Any]:
        """What restoring the snapshot would change now, per prefix; and the summary."""
        items = self._restore_items(self.state_at(snapshot_id))
        now = self.state
        first = self.pops[0]
        return {
            "snapshot": snapshot_id,
            "prefixes": len(items),
            "announce": sum(1 for pid, adv, _ in items if adv and not any(cidr_of(pid) in c for c in now.announced.values())),
            "withdraw": sum(1 for pid, adv, _ in items if not adv and any(cidr_of(pid) in c for c in now.announced.values())),
            "bindings_back": sum(len(set(s) - now.bound[first].get(cidr_of(pid), frozenset())) for pid, _, s in items),
            "bindings_gone": sum(len(now.bound[first].get(cidr_of(pid), frozenset()) - set(s)) for pid, _, s in items),
            "first": [{"prefix": cidr_of(pid), "advertised": adv, "services": s} for pid, adv, s in items[:20]],
        }

    def _restore_items(self, target: State) -> list[tuple[str, bool, list[str]]]:
        first = self.pops[0]
        items = []
        for cidr in self.cidrs:
            want_on = any(cidr in c for c in target.announced.values())
            have_on = any(cidr in c for c in self.state.announced.values())
            want_s = target.bound[first].get(cidr, frozenset())
            have_s = self.state.bound[first].get(cidr, frozenset())
            if want_on != have_on or want_s != have_s:
                items.append((prefix_id(cidr), want_on, sorted(want_s)))
        return items

    def restore(self, snapshot_id: str, actor: str) -> Outcome:
        """Operational state back as the snapshot had it, in one change through the pipeline."""
        with self.lock:
            items = self._restore_items(self.state_at(snapshot_id))
            if not items:
                raise Conflict(f"operational state is already as snapshot {snapshot_id} had it; nothing to restore")
            return self.run(actor, "restore", {"snapshot": snapshot_id, "items": items})

    # -- the audit log -----------------------------------------------------------------

    def audit(self, actor: str, action: str, *, change_id: str | None = None, prefixes: int = 0,
              accounts: Iterable[str] = (), detail: dict[str, Any] | None = None) -> None:
        with self.inv.tx() as db:
            db.execute("INSERT INTO audit (at, actor, action, change_id, prefixes, accounts, detail) VALUES "
                       "(?, ?, ?, ?, ?, ?, ?)", (self.clock(), actor, action, change_id, prefixes,
                                                 json.dumps(sorted(accounts)), json.dumps(detail) if detail else None))

    def audit_log(self, limit: int = 200, after: int = 0) -> list[dict[str, Any]]:
        with self.inv.lock:
            rows = self.inv.db.execute("SELECT * FROM audit WHERE seq > ? ORDER BY seq LIMIT ?", (after, limit)).fetchall()
        return [{**dict(r), "accounts": json.loads(r["accounts"]),
                 "detail": json.loads(r["detail"]) if r["detail"] else None} for r in rows]

    def status(self) -> dict[str, Any]:
        stage = None if self.stage is None else {k: self.stage[k] for k in ("id", "pop", "started", "until", "diff")}
        return {"guardrails": self.guardrails.model_dump(exclude_none=True), "breaker_open": self.breaker_open,
                "stage": stage, "stages": dict(self.stages),
                "changes": self.counts(), "operational": self.state.counts()}


def _cid(seq: int) -> str:
    return f"chg-{seq:06d}"


def _sid(seq: int) -> str:
    return f"snap-{seq:06d}"


def _seq(ident: str, kind: str = "chg") -> int:
    head, _, n = ident.partition("-")
    if head != kind or not n.isdigit():
        raise InventoryError(f"'{ident}' is not a {'change' if kind == 'chg' else 'snapshot'} id ({kind}-NNNNNN)")
    return int(n)


def _record(row: Any, full: bool = False) -> dict[str, Any]:
    out = {"id": _cid(row["seq"]), "at": row["at"], "actor": row["actor"], "kind": row["kind"], "status": row["status"],
           "diff": json.loads(row["diff"]), "guardrail": row["guardrail"], "reason": row["reason"],
           "decided_at": row["decided_at"], "decided_by": row["decided_by"]}
    if full:
        out["args"] = json.loads(row["args"])
    return out

"""Configured state -> operational state: the change pipeline, its guardrails, snapshots and audit log.

An API write changes configured state (the inventory) inside a transaction. Before it
commits, the pipeline computes the change's diff against operational state, what the
network has: the prefixes each speaker announces and the services each PoP's edge serves.
The diff names the prefixes to withdraw and announce, the bindings to remove and add,
the accounts touched and the share of BYOIP withdrawn. The guardrails (``rules.GUARDRAILS``,
one function each) decide on that diff and on the recent changes:

- blast radius: a change that withdraws more than a number or a share of prefixes, or
  touches more than a number of accounts, in one change or in a sliding window, is held;
- breaker: withdrawals (of advertisements, and of services: a binding removed) above a
  rate over a sliding window trip it; it holds every further withdrawal until an
  operator resets it;
- staged: one change at a time, at one PoP first, promoted after its health window
  (``stages.py``).

A held change is rolled back from configured state (nothing half-made), recorded with
its diff and answered with 409; an operator approves it (it is applied then, past the
guardrails) or rejects it. An applied change reaches the speakers (the reconciler) and
the edge, and operational state follows. Snapshots (``snapshots.py``) are of operational
state, and every decision goes to the audit log: who, what, how many prefixes, which accounts.
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from typing import Any, Callable, Iterable

from controller.changes.kinds import UNSTAGED, Change, ConfigPush, as_json, change_of
from controller.changes.records import (SCHEMA, Delta, Diff, Held, Outcome, PropagationFailed, Recent, State,
                                        id_of_change, record_of, seq_of)
from controller.changes.rules import GUARDRAILS
from controller.changes.snapshots import Snapshots
from controller.changes.stages import StagedRollout
from controller.guardrails import Guardrails
from controller.inventory import Conflict, Inventory, InventoryError, NotFound, Prefix, cidr_of, prefix_id

OnChange = Callable[[list[Prefix]], dict[str, Any]]
Clock = Callable[[], float]
# The staged rollout's signal: (since, until, the pipeline) -> {"total", "not_ok", "basis"}
Health = Callable[[float, float, Any], dict[str, Any]]
# The staged rollout's watchers: the CIDRs of the change in its window ([] between stages)
OnStage = Callable[[list[str]], None]


class Changes(StagedRollout, Snapshots):
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

    def run(self, actor: str, change: Change, approved: str | None = None) -> Outcome:
        """Make ``change`` in configured state, then (guardrails permitting) in operational
        state. Held: raises ``Held`` after the inventory rolled the write back."""
        box: dict[str, Any] = {}
        with self.lock:
            try:
                result = change.make(self.inv, lambda prefixes: self._then(actor, change, prefixes, approved, box))
            except Held as h:
                self._store_held(h.record)
                raise
            self._after(box)
        return Outcome(result, box.get("reconcile", {}), {"id": box["id"], "diff": box["diff"].summary()},
                       box.get("edge", {}))

    def _diff(self, prefixes: list[Prefix]) -> tuple[Diff, Delta]:
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
        return d, Delta(ann, bound)

    def _then(self, actor: str, change: Change, prefixes: list[Prefix], approved: str | None,
              box: dict[str, Any]) -> None:
        """Inside the inventory's transaction: decide, and reach the network or raise."""
        d, delta = self._diff(prefixes)
        box["diff"] = d
        if approved is None:
            recent = list(self.recent)
            for name, rule in GUARDRAILS.items():
                hold = rule(self.guardrails, d, recent, self)
                if hold is not None:
                    raise Held({"at": self.clock(), "actor": actor, "kind": change.kind, "args": as_json(change),
                                "diff": d,
                                "guardrail": name, "reason": hold.reason, "figures": hold.figures,
                                "id": None})
        stage = self.guardrails.staged
        if stage is not None and approved is None and change.kind not in UNSTAGED and not d.harmless:
            pop = stage.first or self.pops[0]
            delta, rest = delta.split(pop)
            box["stage"] = {"pop": pop, "ids": [p.id for p in prefixes], "window": stage.health_window,
                            "max_unhealthy": stage.max_unhealthy,
                            "before": [(p.id, any(p.cidr in self.state.announced.get(o, ()) for o in p.origins),
                                        sorted(self.state.bound[pop].get(p.cidr, frozenset()))) for p in prefixes]}
            # the other PoPs keep announcing what they announce until the stage is promoted
            self.pending = {(sp, c): on for sp, c, on in rest.ann}
        moved = delta.moved
        if self.on_change is not None and moved:
            result = self.on_change([p for p in prefixes if p.cidr in moved])
            if result.get("errors"):
                raise PropagationFailed(result, prefixes)
            box["reconcile"] = result
        if self.edge is not None:
            if isinstance(change, ConfigPush) and change.rollout:
                box["edge"] = self.edge.push({i: s for i, s in change.items}, change.rollout)
            elif delta.bound:
                box["edge"] = self._to_edge(delta.bound)
        with self.inv.lock:
            seq = self._next_seq()
            self.inv.db.execute(
                "INSERT INTO change_records (seq, at, actor, kind, status, args, diff, delta, reason) "
                "VALUES (?, ?, ?, ?, 'applied', ?, ?, ?, ?)",
                (seq, self.clock(), actor, change.kind, json.dumps(as_json(change)), json.dumps(d.summary()),
                 json.dumps(delta.as_json()),
                 f"approval of {approved}" if approved else
                 f"staged at {box['stage']['pop']}" if "stage" in box else None))
        box.update(id=id_of_change(seq), seq=seq, delta=delta, actor=actor, kind=change.kind, approved=approved)

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
            rec["id"] = id_of_change(seq)
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

    def get(self, ident: str) -> dict[str, Any]:
        seq = seq_of(ident)
        with self.inv.lock:
            row = self.inv.db.execute("SELECT * FROM change_records WHERE seq = ?", (seq,)).fetchone()
        if row is None:
            raise NotFound(f"no change '{ident}'")
        return record_of(row, full=True)

    def list(self, status: str | None = None, limit: int = 200, actor: str | None = None,
             full: bool = False) -> list[dict[str, Any]]:
        where = [(c, v) for c, v in (("status", status), ("actor", actor)) if v is not None]
        sql = ("SELECT * FROM change_records" + (" WHERE " + " AND ".join(f"{c} = ?" for c, _ in where) if where else "")
               + " ORDER BY seq DESC LIMIT ?")
        with self.inv.lock:
            rows = self.inv.db.execute(sql, tuple(v for _, v in where) + (limit,)).fetchall()
        return [record_of(r, full=full) for r in rows]

    def counts(self) -> dict[str, int]:
        with self.inv.lock:
            return {r[0]: r[1] for r in self.inv.db.execute("SELECT status, COUNT(*) FROM change_records GROUP BY status")}

    def approve(self, change_id: str, actor: str) -> Outcome:
        rec = self.get(change_id)
        if rec["status"] != "held":
            raise Conflict(f"change {change_id} is {rec['status']}; only a held change can be approved")
        with self.lock:
            out = self.run(actor, change_of(rec["kind"], rec["args"]), approved=change_id)
            with self.inv.tx() as db:
                db.execute("UPDATE change_records SET status = 'approved', decided_at = ?, decided_by = ? WHERE seq = ?",
                           (self.clock(), actor, seq_of(change_id)))
            self.audit(actor, "approve", change_id=change_id, detail={"applied_as": out.change["id"]})
        return out

    def reject(self, change_id: str, actor: str) -> dict[str, Any]:
        rec = self.get(change_id)
        if rec["status"] != "held":
            raise Conflict(f"change {change_id} is {rec['status']}; only a held change can be rejected")
        with self.inv.tx() as db:
            db.execute("UPDATE change_records SET status = 'rejected', decided_at = ?, decided_by = ? WHERE seq = ?",
                       (self.clock(), actor, seq_of(change_id)))
        self.audit(actor, "reject", change_id=change_id)
        return self.get(change_id)

    def reset_breaker(self, actor: str) -> dict[str, Any]:
        if self.breaker_open is None:
            raise Conflict("the withdrawal breaker is not open")
        was, self.breaker_open = self.breaker_open, None
        self.recent.clear()  # the window that tripped it is judged; withdrawals count afresh
        self.audit(actor, "breaker_reset", change_id=was["change"], detail=was)
        return {"was": was}

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


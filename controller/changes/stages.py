"""The staged rollout: a change is made at one PoP first (the guardrail ``staged`` holds every
other change meanwhile), its health window passes, and the health signal decides: promoted to
every PoP, or rolled back at the PoP that had it. The other PoPs keep announcing what they
announced until then (``overlay``, the reconciler's view)."""

from __future__ import annotations

import json
from typing import Any

from controller.changes.kinds import StageRollback
from controller.changes.records import PropagationFailed, id_of_change


class StagedRollout:
    """The pipeline's staged rollout (a part of ``Changes``)."""

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
            moved = delta.moved
            result = self.on_change([p for p in prefixes if p.cidr in moved]) if self.on_change and moved else {}
        if self.edge is not None and delta.bound:
            self._to_edge(delta.bound)
        with self.inv.tx() as db:
            seq = self._next_seq()
            db.execute("INSERT INTO change_records (seq, at, actor, kind, status, args, diff, delta, reason) "
                       "VALUES (?, ?, 'guardrail:staged', 'stage_promote', 'applied', ?, ?, ?, ?)",
                       (seq, self.clock(), json.dumps({"stage": st["id"]}), json.dumps(st["diff"]),
                        json.dumps(delta.as_json()),
                        f"{st['id']} healthy at {st['pop']}: on to every PoP"))
        self.state.apply(delta)
        self.stages["promoted"] += 1
        self.audit("guardrail:staged", "stage_promoted", change_id=st["id"], prefixes=st["diff"]["withdraw"],
                   detail={"pop": st["pop"], "health": health, "as": id_of_change(seq), "sync_errors": result.get("errors")})
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
        out = self.run("guardrail:staged", StageRollback(st["id"], st["before"]), approved=f"rollback of {st['id']}")
        self.stages["rolled_back"] += 1
        self.audit("guardrail:staged", "stage_rolled_back", change_id=st["id"], prefixes=st["diff"]["withdraw"],
                   detail={"pop": st["pop"], "health": health, "as": out.change["id"]})
        return "rolled_back"


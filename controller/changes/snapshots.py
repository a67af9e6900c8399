"""Snapshots of operational state. The state before the first change is kept whole; each
applied change keeps its delta; the snapshot before change N is the first state with the deltas
of the changes before N. So a snapshot is taken before every change at the cost of its delta,
and ``restore`` puts any of them back in one change, through the pipeline, packed on the wire
(one reconciler sync for every prefix it moves)."""

from __future__ import annotations

import json
from typing import Any

from controller.changes.kinds import Restore
from controller.changes.records import Delta, Outcome, State, id_of_change, id_of_snapshot, seq_of
from controller.inventory import Conflict, NotFound, cidr_of, prefix_id


class Snapshots:
    """The pipeline's snapshots (a part of ``Changes``)."""

    def snapshot(self, label: str, actor: str) -> dict[str, Any]:
        """A labelled snapshot of operational state now (every change also has one before it)."""
        with self.lock, self.inv.tx() as db:
            seq = self._next_seq()
            db.execute("INSERT INTO snapshot_labels VALUES (?, ?, ?, ?)", (seq, self.clock(), label, actor))
        self.audit(actor, "snapshot", detail={"snapshot": id_of_snapshot(seq), "label": label})
        return {"id": id_of_snapshot(seq), "label": label, **self.state.counts()}

    def snapshots(self, limit: int = 200) -> list[dict[str, Any]]:
        """Labelled snapshots and the one before each applied change, newest first."""
        with self.inv.lock:
            rows = self.inv.db.execute(
                "SELECT seq, at, label, actor, NULL AS kind FROM snapshot_labels UNION ALL "
                "SELECT seq, at, NULL, actor, kind FROM change_records WHERE status = 'applied' "
                "ORDER BY seq DESC LIMIT ?", (limit,)).fetchall()
            base = self.inv.db.execute("SELECT at FROM snapshot_base").fetchone()
        out = [{"id": id_of_snapshot(r["seq"]), "at": r["at"], "label": r["label"],
                "before_change": None if r["label"] is not None else id_of_change(r["seq"]), "by": r["actor"],
                "change_kind": r["kind"]} for r in rows]
        return out + ([{"id": id_of_snapshot(0), "at": base[0], "label": "base", "before_change": None, "by": "controller",
                        "change_kind": None}] if base and len(out) < limit else [])

    def state_at(self, snapshot_id: str) -> State:
        seq = seq_of(snapshot_id, "snap")
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
            st.apply(Delta.from_json(json.loads(delta)))
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
            return self.run(actor, Restore(snapshot_id, items))


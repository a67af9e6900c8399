"""The change pipeline's records: what a change does (its diff), the delta that applies it to
operational state, operational state itself, and how changes are stored and named."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from controller.inventory import Conflict, InventoryError, Prefix

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
class Delta:
    """What applies a change to operational state: (speaker, CIDR, announced) and
    (PoP, CIDR, the services its edge serves). Stored with the change, as JSON lists."""

    ann: list[tuple[str, str, bool]] = field(default_factory=list)
    bound: list[tuple[str, str, list[str]]] = field(default_factory=list)

    @property
    def moved(self) -> set[str]:
        """The CIDRs whose announcement changes somewhere."""
        return {c for _, c, _ in self.ann}

    def split(self, where: str) -> tuple["Delta", "Delta"]:
        """(the part at speaker or PoP ``where``, the rest)."""
        return (Delta([x for x in self.ann if x[0] == where], [x for x in self.bound if x[0] == where]),
                Delta([x for x in self.ann if x[0] != where], [x for x in self.bound if x[0] != where]))

    def as_json(self) -> dict[str, Any]:
        return {"ann": [list(x) for x in self.ann], "bound": [list(x) for x in self.bound]}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> "Delta":
        return cls([(s, c, bool(on)) for s, c, on in d.get("ann", [])],
                   [(p, c, list(v)) for p, c, v in d.get("bound", [])])


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

    def apply(self, delta: Delta) -> None:
        for s, cidr, on in delta.ann:
            (self.announced.setdefault(s, set()).add if on else self.announced.setdefault(s, set()).discard)(cidr)
        for pop, cidr, services in delta.bound:
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
    """A guardrail's decision to hold a change: which, why, and the figures it judged."""

    guardrail: str
    reason: str
    figures: dict[str, Any]


@dataclass
class Recent:
    """An applied change as the sliding windows count it."""

    at: float
    withdraw: int
    byoip_withdrawn: int
    withdrawals: int
    accounts: frozenset[str]


@dataclass
class Outcome:
    result: Any
    reconcile: dict[str, Any]
    change: dict[str, Any]  # id and diff summary
    edge: dict[str, Any]


def id_of_change(seq: int) -> str:
    return f"chg-{seq:06d}"


def id_of_snapshot(seq: int) -> str:
    return f"snap-{seq:06d}"


def seq_of(ident: str, kind: str = "chg") -> int:
    head, _, n = ident.partition("-")
    if head != kind or not n.isdigit():
        raise InventoryError(f"'{ident}' is not a {'change' if kind == 'chg' else 'snapshot'} id ({kind}-NNNNNN)")
    return int(n)


def record_of(row: Any, full: bool = False) -> dict[str, Any]:
    """A stored change as the API and the CLI show it."""
    out = {"id": id_of_change(row["seq"]), "at": row["at"], "actor": row["actor"], "kind": row["kind"],
           "status": row["status"], "diff": json.loads(row["diff"]), "guardrail": row["guardrail"],
           "reason": row["reason"], "decided_at": row["decided_at"], "decided_by": row["decided_by"]}
    if full:
        out["args"] = json.loads(row["args"])
    return out

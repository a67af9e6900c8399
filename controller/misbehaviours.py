"""The Addressing API's misbehaviours: bugs from real incidents, each a named entry a drill
switches on (``do: behaviour, <name>: true``, or ``PUT /v1/lab/behaviour``).

An entry names the incident it comes from and changes the API at one of its hooks:

- ``empty_query_flag(name)``: a true/false query flag present with an empty value. The
  correct API refuses it (a 400 naming the flag); an entry may answer instead (NO_FILTER:
  the filter is dropped).

A new incident's API bug is one class here and one line in ``TABLE``; the API asks the
switched-on entries at its hooks and knows none of them by name.
"""

from __future__ import annotations

from typing import ClassVar

NO_FILTER = "no filter"


class Misbehaviour:
    name: ClassVar[str]
    incident: ClassVar[str]
    # True: it loosens what the API accepts, so the strict_api guardrail (the API's strict
    # schema) holds it off: it cannot be switched on while strict_api is, and strict_api
    # switches it off.
    loosens_schema: ClassVar[bool] = False

    def empty_query_flag(self, name: str) -> str | None:
        """What a flag present with an empty value means (None: this entry has no say)."""
        return None


class PendingDeleteEmptyValue(Misbehaviour):
    """2026-02-20 (shared/reference/incident-2026-02-20.txt): the cleanup sub-task asked for
    ``GET /v1/prefixes?pending_delete`` with no value, and the handler guarded its filter with
    ``if v := req.URL.Query().Get("pending_delete"); v != ""``. The empty string fell through to
    "all BYOIP prefixes", every one was taken as queued for deletion, and the sub-task withdrew
    them with their service bindings until an engineer shut it down."""

    name = "pending_delete_bug"
    incident = "2026-02-20"
    loosens_schema = True

    def empty_query_flag(self, name: str) -> str | None:
        return NO_FILTER if name == "pending_delete" else None


TABLE: dict[str, Misbehaviour] = {m.name: m for m in (PendingDeleteEmptyValue(),)}
NAMES: tuple[str, ...] = tuple(TABLE)


class Behaviour:
    """Which misbehaviours are switched on (all off by default)."""

    def __init__(self, **on: bool):
        unknown = [n for n in on if n not in TABLE]
        if unknown:
            raise ValueError(f"unknown misbehaviour {unknown[0]!r} (known: {', '.join(NAMES)})")
        self.on: dict[str, bool] = {n: bool(on.get(n, False)) for n in NAMES}

    def as_dict(self) -> dict[str, bool]:
        return dict(self.on)

    def set(self, name: str, value: bool) -> None:
        if name not in TABLE:
            raise ValueError(f"unknown misbehaviour {name!r} (known: {', '.join(NAMES)})")
        self.on[name] = value

    def active(self) -> list[Misbehaviour]:
        return [TABLE[n] for n, v in self.on.items() if v]

    def hold_strict_schema(self) -> None:
        """strict_api is on: every misbehaviour that loosens the schema goes off."""
        for n in NAMES:
            if TABLE[n].loosens_schema:
                self.on[n] = False

    def empty_query_flag(self, name: str) -> str | None:
        return next((a for m in self.active() if (a := m.empty_query_flag(name)) is not None), None)

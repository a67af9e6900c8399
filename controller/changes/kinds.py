"""The changes an API write can make, one typed record each: its arguments, and how it is made
in configured state (the inventory). ``Changes.run`` takes one of these; the record is stored
with the change as JSON (``as_json``) and read back by kind (``change_of``) when an operator
approves a held change."""

from __future__ import annotations

from dataclasses import MISSING, asdict, dataclass, fields
from typing import Any, Callable, ClassVar, Union

from controller.inventory import Inventory, InventoryError

Then = Callable[[list[Any]], None]


def _put(inv: Inventory, items: list[tuple[str, bool, list[str]]], then: Then) -> Any:
    """(prefix id, advertised, services) back as they were: a restore's and a rollback's change."""
    return inv.set_state([(i, adv, s) for i, adv, s in items], then=then)


@dataclass(frozen=True)
class BgpStatus:
    """Advertise or withdraw prefixes (``PATCH /bgp-status``, one or many)."""

    kind: ClassVar[str] = "bgp_status"
    ids: list[str]
    advertised: bool

    def make(self, inv: Inventory, then: Then) -> Any:
        return inv.set_advertised(self.ids, self.advertised, then=then)


@dataclass(frozen=True)
class DeletePrefix:
    kind: ClassVar[str] = "delete_prefix"
    id: str

    def make(self, inv: Inventory, then: Then) -> Any:
        return inv.delete(self.id, then=then)


@dataclass(frozen=True)
class AddBinding:
    kind: ClassVar[str] = "add_binding"
    id: str
    service: str

    def make(self, inv: Inventory, then: Then) -> Any:
        return inv.add_binding(self.id, self.service, then=then)


@dataclass(frozen=True)
class DeleteBinding:
    kind: ClassVar[str] = "delete_binding"
    id: str
    binding: str

    def make(self, inv: Inventory, then: Then) -> Any:
        return inv.delete_binding(self.id, self.binding, then=then)


@dataclass(frozen=True)
class ConfigPush:
    """The global configuration push: (prefix id, services) pairs put back, optionally rolled
    out to the edge PoP by PoP (``rollout``: the edge's steps)."""

    kind: ClassVar[str] = "config_push"
    items: list[tuple[str, list[str]]]
    rollout: list[Any] | None = None

    def make(self, inv: Inventory, then: Then) -> Any:
        return inv.restore([(i, s) for i, s in self.items], then=then)


@dataclass(frozen=True)
class Restore:
    """Operational state back as a snapshot had it: (prefix id, advertised, services)."""

    kind: ClassVar[str] = "restore"
    snapshot: str
    items: list[tuple[str, bool, list[str]]]

    def make(self, inv: Inventory, then: Then) -> Any:
        return _put(inv, self.items, then)


@dataclass(frozen=True)
class StageRollback:
    """A staged change that failed its health window, put back as it was before it."""

    kind: ClassVar[str] = "stage_rollback"
    stage: str
    items: list[tuple[str, bool, list[str]]]

    def make(self, inv: Inventory, then: Then) -> Any:
        return _put(inv, self.items, then)


Change = Union[BgpStatus, DeletePrefix, AddBinding, DeleteBinding, ConfigPush, Restore, StageRollback]
KINDS: dict[str, type] = {c.kind: c for c in (BgpStatus, DeletePrefix, AddBinding, DeleteBinding, ConfigPush, Restore,
                                              StageRollback)}
# Changes that go everywhere at once under the staged rollout: they put known state back.
UNSTAGED = (Restore.kind, StageRollback.kind)


def as_json(change: Change) -> dict[str, Any]:
    return asdict(change)


def change_of(kind: str, args: dict[str, Any]) -> Change:
    """A stored change's record back (approving a held change makes it again)."""
    cls = KINDS.get(kind)
    if cls is None:
        raise InventoryError(f"no kind of change '{kind}' (kinds: {', '.join(KINDS)})")
    names = {f.name for f in fields(cls)}
    if not set(args) <= names:
        raise InventoryError(f"change kind '{kind}' has no argument {', '.join(sorted(set(args) - names))}")
    missing = [f.name for f in fields(cls) if f.name not in args and f.default is MISSING]
    if missing:
        raise InventoryError(f"change kind '{kind}' needs {', '.join(missing)}")
    return cls(**args)

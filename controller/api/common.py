"""What every resource of the Addressing API shares: the context its routes act on, the
answer's shape, the errors that map to statuses, the caller and its scope, and the query
parsing every route uses (strict: an unknown or repeated parameter is a 400 naming it)."""

from __future__ import annotations

import math
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Callable, Protocol

from fastapi import Request
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from pydantic import BaseModel, ConfigDict

from controller.changes import Changes
from controller.inventory import Inventory, InventoryError, Prefix
from controller.misbehaviours import NO_FILTER, Behaviour

# The most a list may ask for: more than any lab's inventory, and small enough for SQLite.
MAX_LIMIT = 1_000_000
MAX_PER_PAGE = 1000
MAX_VERIFY_WAIT = 60.0


class LabControl(Protocol):
    """What the lab's routes need from the controller: the reconciler and the observers."""

    def verify(self, wait: float = 0.0) -> dict[str, Any]: ...
    def sync(self) -> Any: ...
    def resend_all(self) -> Any: ...
    def status(self) -> dict[str, Any]: ...
    def observe(self) -> dict[str, Any]: ...


class EdgeLike(Protocol):
    delay: float
    machines: list[str]

    def changed(self, bindings: dict[str, list[str]]) -> dict[str, Any]: ...
    def push(self, bindings: dict[str, list[str]], rollout: list[dict[str, Any]]) -> dict[str, Any]: ...
    def check_rollout(self, rollout: list[dict[str, Any]]) -> str | None: ...
    def status(self) -> dict[str, Any]: ...


@dataclass
class ApiContext:
    """What the routes act on, built by the caller and handed to create_app: the inventory, the
    change pipeline (every write goes through it), the misbehaviours switched on, the edge and
    the lab's controls where there are some, the dashboard, and the clock."""

    inv: Inventory
    changes: Changes
    behaviour: Behaviour = field(default_factory=Behaviour)
    edge: EdgeLike | None = None
    lab: LabControl | None = None
    dashboard: Any = None
    clock: Callable[[], float] = time.time
    fault: dict[str, Any] | None = None  # an injected API fault (PUT /v1/lab/faults/api)


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Unauthorized(InventoryError):
    status = 401


class Forbidden(InventoryError):
    status = 403


class Unavailable(InventoryError):
    """An injected fault (PUT /v1/lab/faults/api): the API answers 503 to the callers it names."""

    status = 503


def error(status: int, message: str, **extra: Any) -> JSONResponse:
    return JSONResponse(status_code=status, content={"success": False, "errors": [{"message": message, **extra}]})


def ok(result: Any, **extra: Any) -> dict[str, Any]:
    return {"success": True, "result": result, **extra}


@dataclass(frozen=True)
class Caller:
    """Who a request is: its token's name, role and (customers) account."""

    name: str
    role: str
    account: str | None = None

    @property
    def scoped(self) -> str | None:
        """The account a customer is confined to; None for every other role."""
        return self.account if self.role == "customer" else None


def caller(request: Request) -> str | None:
    """The account a customer's request is confined to; None for every other role."""
    return request.state.caller.scoped


def who(request: Request) -> str:
    """The caller as the audit log names it: role:name."""
    c: Caller = request.state.caller
    return f"{c.role}:{c.name}"


def own(account: str | None, prefixes: list[Prefix]) -> None:
    if account is None:
        return
    foreign = [p.id for p in prefixes if p.account_id != account]
    if foreign:
        raise Forbidden(f"account '{account}' does not own {', '.join(repr(f) for f in foreign[:5])}")


def flag(raw: str | None, name: str, behaviour: Behaviour | None = None) -> bool | None:
    """Parse a true/false query flag. Absent: no filter. Present but empty: an error, or
    (with a misbehaviour that says so, the 2026-02-20 handler's) silently no filter at all."""
    if raw is None:
        return None
    value = raw.strip().lower()
    if value in ("true", "1"):
        return True
    if value in ("false", "0"):
        return False
    if value == "" and behaviour is not None and behaviour.empty_query_flag(name) == NO_FILTER:
        return None
    raise InventoryError(f"query parameter '{name}' needs a value, true or false (got {raw!r})")


def family(raw: str | None) -> int | None:
    if raw is None:
        return None
    if raw in ("ipv4", "4"):
        return 4
    if raw in ("ipv6", "6"):
        return 6
    raise InventoryError(f"query parameter 'family' is ipv4 or ipv6 (got {raw!r})")


def paging(q: Any) -> tuple[int, int | None]:
    """page (from 1) and per_page (1..MAX_PER_PAGE); per_page None when the client asked no paging."""
    def whole(name: str, lo: int, hi: int) -> int:
        raw = q[name]
        if not raw.isdigit() or not lo <= int(raw) <= hi:
            raise InventoryError(f"query parameter '{name}' is an integer from {lo} to {hi} (got {raw[:40]!r})")
        return int(raw)

    if "page" in q and "per_page" not in q:
        raise InventoryError("query parameter 'page' needs 'per_page'")
    per_page = whole("per_page", 1, MAX_PER_PAGE) if "per_page" in q else None
    page = whole("page", 1, MAX_LIMIT) if "page" in q else 1
    return page, per_page


def limit(request: Request, default: int = 200) -> int:
    raw = request.query_params.get("limit")
    if raw is None:
        return default
    if not raw.isdigit() or not 1 <= int(raw) <= 10_000:
        raise InventoryError(f"query parameter 'limit' is an integer from 1 to 10000 (got {raw[:40]!r})")
    return int(raw)


def verify_wait(raw: str | None) -> float:
    if raw is None:
        return 5.0
    try:
        wait = float(raw)
    except ValueError:
        wait = math.nan
    if not math.isfinite(wait) or not 0 <= wait <= MAX_VERIFY_WAIT:
        raise InventoryError(f"query parameter 'wait' is seconds from 0 to {MAX_VERIFY_WAIT:g} (got {raw!r})")
    return wait


def strict_query(request: Request) -> None:
    """Every route: a query parameter given twice, or one the route does not take, is a 400
    that names it (a repeated flag once silently took its last value)."""
    params = request.query_params.multi_items()
    repeated = sorted(k for k, n in Counter(k for k, _ in params).items() if n > 1)
    if repeated:
        raise InventoryError(f"query parameter {', '.join(repr(r) for r in repeated)} given more than once; give it once")
    route = request.scope.get("route")
    if isinstance(route, APIRoute):
        known = _declared_query(route.dependant)
        known |= getattr(route.endpoint, "query_params", set())
        unknown = sorted({k for k, _ in params} - known)
        if unknown:
            takes = f"it takes {', '.join(sorted(known))}" if known else "it takes none"
            raise InventoryError(f"unknown query parameter {', '.join(repr(u) for u in unknown)} for {route.path} ({takes})")


def _declared_query(dependant: Any) -> set[str]:
    """The query parameters a route declares, its dependencies' included."""
    names = {p.alias for p in dependant.query_params}
    for sub in dependant.dependencies:
        names |= _declared_query(sub)
    return names

"""The Addressing API: HTTP over the inventory, shaped like the addressing APIs operators know.

Every change that can alter what is advertised is handed to ``on_change`` (the
reconciler) before the response is sent: the API is authoritative and propagates at
once, as in the incident. Bad input gets a 4xx that says what is wrong, and nothing
changes.

The 2026-02-20 handler behaviour (``pending_delete_bug``): a ``pending_delete`` flag
present with an empty value was taken as "no filter", so every prefix came back.
Off by default; a drill turns it on through ``PUT /v1/lab/behaviour``.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import math
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any, Callable, Literal, Protocol

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, StreamingResponse
from fastapi.routing import APIRoute
from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from controller.changes import STATUSES, Changes, Guardrails, Held, PropagationFailed
from controller.inventory import SERVICES, Conflict, Inventory, InventoryError, NotFound, Pinned, Prefix

OnChange = Callable[[list[Prefix]], dict[str, Any]]
Service = Literal[SERVICES]  # the inventory's service names, as a type the API validates against

# The most a list may ask for: more than any lab's inventory, and small enough for SQLite.
MAX_LIMIT = 1_000_000
MAX_VERIFY_WAIT = 60.0


class LabControl(Protocol):
    """What the lab's routes need from the controller: the reconciler and the observers."""

    def verify(self, wait: float = 0.0) -> dict[str, Any]: ...
    def sync(self) -> Any: ...
    def resend_all(self) -> Any: ...
    def status(self) -> dict[str, Any]: ...
    def observe(self) -> dict[str, Any]: ...


@dataclass
class Behaviour:
    pending_delete_bug: bool = False


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class BgpStatus(_Body):
    advertised: StrictBool


class Selector(_Body):
    """Which prefixes a bulk change applies to: explicit ids, or at least one filter
    (account_id, family, byoip), or ``all: true``; ``advertised`` and ``count`` only narrow
    what those name. An empty or narrowing-only selector names nothing: it is refused."""

    ids: list[str] | None = None
    account_id: str | None = None
    family: Literal["ipv4", "ipv6"] | None = None
    byoip: StrictBool | None = None
    all: StrictBool | None = None
    advertised: StrictBool | None = None
    count: StrictInt | None = Field(default=None, ge=1, le=MAX_LIMIT)


class BulkBgpStatus(_Body):
    advertised: StrictBool
    selector: Selector


class NewBinding(_Body):
    service: Service


class PushItem(_Body):
    id: str
    services: list[Service] = Field(min_length=1)


class RolloutStep(_Body):
    machine: str  # "<pop>/<n>", as GET /v1/lab/edge names them
    at: float  # when this machine applies the push (lab clock, time.time())


class ConfigPush(_Body):
    prefixes: list[PushItem] = Field(min_length=1)
    rollout: list[RolloutStep] = []  # empty: every machine at once, after the edge's delay


class EdgeTiming(_Body):
    delay: float = Field(ge=0, le=3600)


class Unauthorized(InventoryError):
    status = 401


class Forbidden(InventoryError):
    status = 403


class Unavailable(InventoryError):
    """An injected fault (PUT /v1/lab/faults/api): the API answers 503 to the callers it names."""

    status = 503


class ApiFault(_Body):
    """The API misbehaving for a while, as a team's automation would meet it on a bad day:
    ``unavailable`` answers 503 (with Retry-After), ``slow`` answers after ``delay`` seconds.
    ``actor`` confines it to one token (role:name); the drill's own calls are not disturbed."""

    kind: Literal["unavailable", "slow", "none"]
    seconds: float = Field(default=0, ge=0, le=3600)
    delay: float = Field(default=0, ge=0, le=30)
    actor: str | None = None


class EdgeLike(Protocol):
    delay: float

    def changed(self, bindings: dict[str, list[str]]) -> dict[str, Any]: ...
    def push(self, bindings: dict[str, list[str]], rollout: list[dict[str, Any]]) -> dict[str, Any]: ...
    def check_rollout(self, rollout: list[dict[str, Any]]) -> str | None: ...
    def status(self) -> dict[str, Any]: ...


class SnapshotBody(_Body):
    label: str = Field(min_length=1, max_length=200)


class BehaviourBody(_Body):
    pending_delete_bug: StrictBool


def dashboard_html() -> str:
    from controller.dashboard import PAGE

    return PAGE.read_text()


def _error(status: int, message: str, **extra: Any) -> JSONResponse:
    return JSONResponse(status_code=status, content={"success": False, "errors": [{"message": message, **extra}]})


def _ok(result: Any, **extra: Any) -> dict[str, Any]:
    return {"success": True, "result": result, **extra}


def _flag(raw: str | None, name: str, behaviour: Behaviour | None = None) -> bool | None:
    """Parse a true/false query flag. Absent: no filter. Present but empty: an error, or
    (with the 2026-02-20 behaviour) silently no filter at all."""
    if raw is None:
        return None
    value = raw.strip().lower()
    if value in ("true", "1"):
        return True
    if value in ("false", "0"):
        return False
    if value == "" and behaviour is not None and behaviour.pending_delete_bug:
        # The incident's handler: `if value != ""` guarded the filter, so an empty
        # value fell through to "all prefixes".
        return None
    raise InventoryError(f"query parameter '{name}' needs a value, true or false (got {raw!r})")


def _family(raw: str | None) -> int | None:
    if raw is None:
        return None
    if raw in ("ipv4", "4"):
        return 4
    if raw in ("ipv6", "6"):
        return 6
    raise InventoryError(f"query parameter 'family' is ipv4 or ipv6 (got {raw!r})")


def select(inv: Inventory, sel: Selector, withdraw: bool = False) -> list[Prefix]:
    """The prefixes a selector names, and never any other: ids must all exist; filters AND together."""
    if sel.ids is not None:
        if not sel.ids:
            raise InventoryError("selector.ids is empty: name at least one prefix")
        if any(v is not None for v in (sel.account_id, sel.family, sel.byoip, sel.advertised)):
            raise InventoryError("selector takes either ids or filters (account_id, family, byoip, advertised), not both")
        found = {p.id: p for p in inv.prefixes(ids=sel.ids)}
        missing = [i for i in sel.ids if i not in found]
        if missing:
            raise NotFound(f"no prefix {', '.join(repr(m) for m in missing[:5])} in this lab's inventory")
        chosen = [found[i] for i in dict.fromkeys(sel.ids)]
    else:
        filters = [k for k in ("account_id", "family", "byoip") if getattr(sel, k) is not None]
        if sel.all is False:
            raise InventoryError("selector.all: false names nothing; leave it out and give a filter")
        if sel.all and filters:
            raise InventoryError(f"selector.all: true selects every prefix; it cannot be combined with {', '.join(filters)}")
        if not filters and not sel.all:
            raise InventoryError("selector names no prefixes: give ids, or at least one of account_id, family, byoip "
                                 "(advertised and count only narrow a selection); to act on every prefix, say all: true")
        if sel.account_id is not None and not inv.account_exists(sel.account_id):
            raise NotFound(f"no account '{sel.account_id}'")
        chosen = inv.prefixes(
            account=sel.account_id,
            family=_family(sel.family),
            byoip=sel.byoip,
            advertised=sel.advertised,
            onboarding_order=True,
        )
        if withdraw:
            # Filters select what a withdrawal can act on: pinned prefixes (the operator holds
            # them) are left out, and the answer counts them. Named by id, they are refused.
            chosen = [p for p in chosen if not p.pinned]
    return chosen[: sel.count] if sel.count is not None else chosen


# Roles a token can have, and what each may do. A customer's reads and writes are its own
# account's prefixes only (the dashboard); a task is what a drill or a team's automation is given.
ROLES: dict[str, frozenset[str]] = {
    "admin": frozenset({"read", "lab_read", "write", "snapshot", "admin"}),
    "operator": frozenset({"read", "lab_read", "write", "snapshot"}),
    "task": frozenset({"read", "lab_read", "write"}),
    "customer": frozenset({"read", "write"}),
    "read-only": frozenset({"read", "lab_read"}),
}
# Every route's permission (method, path as declared); None: open (the health check).
# A route missing here fails at start (create_app checks): none is reachable by accident.
PERMISSIONS: dict[tuple[str, str], str | None] = {
    ("GET", "/v1/health"): None,
    ("GET", "/v1/accounts"): "lab_read",
    ("GET", "/v1/prefixes"): "read",
    ("GET", "/v1/prefixes/{prefix_id}"): "read",
    ("GET", "/v1/prefixes/{prefix_id}/bgp/status"): "read",
    ("PATCH", "/v1/prefixes/{prefix_id}/bgp/status"): "write",
    ("PATCH", "/v1/prefixes/bgp/status"): "write",
    ("GET", "/v1/bindings"): "lab_read",
    ("GET", "/v1/prefixes/{prefix_id}/bindings"): "read",
    ("POST", "/v1/prefixes/{prefix_id}/bindings"): "write",
    ("DELETE", "/v1/prefixes/{prefix_id}/bindings/{bid}"): "write",
    ("POST", "/v1/prefixes/{prefix_id}/deletion_request"): "write",
    ("DELETE", "/v1/prefixes/{prefix_id}/deletion_request"): "write",
    ("DELETE", "/v1/prefixes/{prefix_id}"): "write",
    ("GET", "/v1/lab/behaviour"): "lab_read",
    ("PUT", "/v1/lab/behaviour"): "admin",
    ("POST", "/v1/lab/config_push"): "admin",
    ("GET", "/v1/lab/resolver"): "lab_read",
    ("GET", "/v1/lab/credentials"): "admin",
    ("GET", "/v1/lab/tokens"): "admin",
    ("POST", "/v1/lab/tokens"): "admin",
    ("GET", "/v1/lab/edge"): "lab_read",
    ("PUT", "/v1/lab/edge"): "admin",
    ("GET", "/v1/lab/services"): "read",
    ("GET", "/v1/changes"): "lab_read",
    ("GET", "/v1/changes/{change_id}"): "lab_read",
    ("POST", "/v1/changes/{change_id}/approve"): "admin",
    ("POST", "/v1/changes/{change_id}/reject"): "admin",
    ("GET", "/v1/lab/guardrails"): "lab_read",
    ("PUT", "/v1/lab/guardrails"): "admin",
    ("POST", "/v1/lab/breaker/reset"): "admin",
    ("GET", "/v1/snapshots"): "lab_read",
    ("POST", "/v1/snapshots"): "snapshot",
    ("GET", "/v1/snapshots/{snapshot_id}"): "lab_read",
    ("GET", "/v1/snapshots/{snapshot_id}/diff"): "lab_read",
    ("POST", "/v1/snapshots/{snapshot_id}/restore"): "admin",
    ("GET", "/v1/audit"): "lab_read",
    ("GET", "/v1/lab/observe"): "lab_read",
    ("GET", "/v1/lab/reconcile"): "lab_read",
    ("POST", "/v1/lab/verify"): "lab_read",
    ("POST", "/v1/lab/sync"): "admin",
    ("GET", "/v1/lab/faults/api"): "lab_read",
    ("GET", "/dashboard"): None,  # the page alone (no data): it reads the stream with the token it is given
    ("GET", "/v1/lab/stream"): "lab_read",
    ("PUT", "/v1/lab/drill"): "admin",
    ("PUT", "/v1/lab/faults/api"): "admin",
}


class NewToken(_Body):
    role: Literal[tuple(ROLES)]  # type: ignore[valid-type]
    name: str = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.:@-]+$")
    account: str | None = None


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


MAX_PER_PAGE = 1000


def _paging(q: Any) -> tuple[int, int | None]:
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


def _verify_wait(raw: str | None) -> float:
    if raw is None:
        return 5.0
    try:
        wait = float(raw)
    except ValueError:
        wait = math.nan
    if not math.isfinite(wait) or not 0 <= wait <= MAX_VERIFY_WAIT:
        raise InventoryError(f"query parameter 'wait' is seconds from 0 to {MAX_VERIFY_WAIT:g} (got {raw!r})")
    return wait


class DrillClockBody(_Body):
    """What a drill runner tells the dashboard: its clock, speed, window, next step, steps so far."""

    name: str = Field(max_length=200)
    clock: str = Field(max_length=20)
    speed: float = Field(gt=0)
    window: str | None = Field(default=None, max_length=200)
    next_step: str | None = Field(default=None, max_length=300)
    marks: list[dict[str, Any]] = Field(default_factory=list, max_length=500)
    state: Literal["running", "settling", "done"] = "running"


def create_app(inv: Inventory, on_change: OnChange | None = None, behaviour: Behaviour | None = None,
               lab: LabControl | None = None, edge: "EdgeLike | None" = None,
               clock: Callable[[], float] = time.time, dashboard: Any = None) -> FastAPI:
    def authorize(request: Request) -> None:
        """Every route: a bearer token of this lab's (401 otherwise), whose role grants the
        route's permission (403 otherwise). The caller is kept for the route."""
        route = request.scope.get("route")
        need = PERMISSIONS[(request.method, route.path)] if isinstance(route, APIRoute) else None
        if need is None:
            return
        auth = request.headers.get("authorization")
        if auth is None and getattr(route.endpoint, "token_in_query", False) and "token" in request.query_params:
            # a browser's EventSource cannot send headers: the dashboard's stream takes ?token=
            auth = f"Bearer {request.query_params['token']}"
        if auth is None:
            raise Unauthorized("this API needs a token: Authorization: Bearer <token> (the lab's admin token is in "
                               "/run/bgplab/<lab>/admin.token; bgplab token create makes others)")
        kind, _, token = auth.partition(" ")
        info = inv.token_info(token.strip()) if kind.lower() == "bearer" else None
        if info is None:
            raise Unauthorized("the Authorization header holds no token of this lab's (Bearer <token>)")
        who = Caller(**info)
        request.state.caller = who  # kept before the check: a refusal is audited with its caller
        if need not in ROLES[who.role]:
            raise Forbidden(f"{request.method} {route.path} needs the '{need}' permission; token '{who.name}' "
                            f"({who.role}) has {', '.join(sorted(ROLES[who.role]))}")
        fault = app.state.fault
        if fault and fault["until"] > clock() and fault.get("actor") in (None, f"{who.role}:{who.name}"):
            if fault["kind"] == "slow":
                time.sleep(fault["delay"])
            else:
                raise Unavailable(f"the API is unavailable (an injected fault, {fault['until'] - clock():.1f} s left)")

    app = FastAPI(
        title="bgplab Addressing API",
        version="1",
        description="The lab's source of truth for every prefix: BGP status, service bindings, deletion.",
        dependencies=[Depends(authorize), Depends(strict_query)],
    )
    behaviour = behaviour or Behaviour()
    app.state.behaviour = behaviour
    app.state.fault = None  # an injected API fault (PUT /v1/lab/faults/api)
    # Every write goes through the change pipeline: configured state, the guardrails' decision
    # on its diff against operational state, then the speakers (on_change) and the edge.
    pops = sorted({m.rpartition("/")[0] for m in edge.machines}) if edge is not None else None
    changes = Changes(inv, on_change, edge, pops, clock=clock)
    app.state.changes = changes
    if changes.guardrails.strict_api:
        behaviour.pending_delete_bug = False

    @app.exception_handler(PropagationFailed)
    async def propagation_failed(_: Request, e: PropagationFailed) -> JSONResponse:
        # The inventory is back as it was; speakers that took the change are brought back to it
        # (the one that failed is resent in full once it answers again).
        again = await run_in_threadpool(on_change, e.prefixes) if on_change else {}
        return _error(503, str(e), failed=e.result.get("failed", {}), prefixes=len(e.prefixes),
                      rolled_back=True, speakers_restored=again.get("ok", False))

    @app.exception_handler(InventoryError)
    async def inventory_error(request: Request, e: InventoryError) -> JSONResponse:
        c: Caller | None = getattr(request.state, "caller", None)
        if isinstance(e, Forbidden) and c is not None:
            # Every refusal of scope is in the audit log: a drill grades an automation by them.
            await run_in_threadpool(changes.audit, f"{c.role}:{c.name}", "denied",
                                    detail={"method": request.method, "path": request.url.path, "error": str(e)[:300]})
        if isinstance(e, Unavailable):
            return JSONResponse(status_code=503, content={"success": False, "errors": [{"message": str(e)}]},
                                headers={"Retry-After": "1"})
        if isinstance(e, Held):
            r = e.record
            return _error(e.status, str(e), change=r["id"], guardrail=r["guardrail"], reason=r["reason"],
                          diff=r["diff_summary"], figures=r["figures"])
        if isinstance(e, Pinned):
            return _error(e.status, str(e), pinned=e.ids)
        return _error(e.status, str(e))

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

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, e: StarletteHTTPException) -> JSONResponse:
        # no such route (404), or not this method (405): in the API's own error shape
        return _error(e.status_code, f"{request.method} {request.url.path}: {e.detail}")

    @app.exception_handler(RequestValidationError)
    async def bad_request(_: Request, e: RequestValidationError) -> JSONResponse:
        problems = []
        for err in e.errors():
            loc = ".".join(str(x) for x in err["loc"])
            problems.append(f"{loc}: {err['msg']}")
        return _error(400, "; ".join(problems), problems=problems)

    @app.get("/v1/health")
    def health() -> dict[str, Any]:
        return _ok({"prefixes": len(inv.prefixes()), "behaviour": vars(behaviour)})

    @app.get("/v1/accounts")
    def accounts() -> dict[str, Any]:
        return _ok(inv.accounts())

    @app.get("/v1/prefixes")
    def list_prefixes(request: Request) -> JSONResponse:
        q = request.query_params  # unknown and repeated parameters were refused by strict_query
        if "cidr" in q:
            net = q["cidr"]
            try:
                ipaddress.ip_network(net, strict=True)
            except ValueError as e:
                raise InventoryError(f"cidr {net!r} is not a prefix in CIDR form ({e})") from None
            try:
                found = inv.by_cidr(net)
                own(caller(request), [found])
                return _ok([found.as_dict()])
            except NotFound:
                raise NotFound(f"the lab does not own {net}: it is in none of its pools' announced prefixes") from None
        limit = None
        if "limit" in q:
            try:
                limit = int(q["limit"])
                if not 1 <= limit <= MAX_LIMIT:
                    raise ValueError
            except ValueError:
                raise InventoryError(f"query parameter 'limit' is an integer from 1 to {MAX_LIMIT} (got {q['limit'][:40]!r})") from None
        page, per_page = _paging(q)
        if limit is not None and per_page is not None:
            raise InventoryError("give either limit or page/per_page, not both")
        account = q.get("account_id")
        scoped = caller(request)
        if scoped is not None:  # a customer lists its own prefixes, and no one else's
            if account is not None and account != scoped:
                raise Forbidden(f"account '{scoped}' cannot list account '{account}'")
            account = scoped
        if account is not None and not inv.account_exists(account):
            raise NotFound(f"no account '{account}'")
        filters = dict(
            account=account,
            advertised=_flag(q.get("advertised"), "advertised"),
            pending_delete=_flag(q.get("pending_delete"), "pending_delete", behaviour),
            family=_family(q.get("family")),
            byoip=_flag(q.get("byoip"), "byoip"),
        )
        # The API's own order: oldest onboarded first, then by id, as a paging API over a
        # created-at index lists (documented in the README); pages are numbered from 1.
        # Plain JSON values already: rendered directly, not walked by FastAPI's encoder (which
        # took most of a 500-prefix page's time).
        if per_page is None:
            rows = inv.prefixes(**filters, limit=limit, onboarding_order=True)
            return JSONResponse(_ok([p.as_dict() for p in rows], count=len(rows)))
        rows = inv.prefixes(**filters, limit=per_page + 1, offset=(page - 1) * per_page, onboarding_order=True)
        more = len(rows) > per_page
        rows = rows[:per_page]
        return JSONResponse(_ok([p.as_dict() for p in rows], count=len(rows),
                                result_info={"page": page, "per_page": per_page, "count": len(rows), "more": more}))

    list_prefixes.query_params = {"account_id", "advertised", "pending_delete", "family", "byoip", "cidr", "limit",
                                  "page", "per_page"}

    @app.get("/v1/prefixes/{prefix_id}")
    def get_prefix(prefix_id: str, request: Request) -> dict[str, Any]:
        p = inv.get(prefix_id)
        own(caller(request), [p])
        return _ok(p.as_dict())

    @app.get("/v1/prefixes/{prefix_id}/bgp/status")
    def get_status(prefix_id: str, request: Request) -> dict[str, Any]:
        p = inv.get(prefix_id)
        own(caller(request), [p])
        return _ok({"prefix": p.cidr, "advertised": p.advertised, "modified": p.modified})

    @app.patch("/v1/prefixes/{prefix_id}/bgp/status")
    def set_status(prefix_id: str, body: BgpStatus, request: Request) -> dict[str, Any]:
        account = caller(request)
        own(account, [inv.get(prefix_id)])
        out = changes.run(who(request), "bgp_status", {"ids": [prefix_id], "advertised": body.advertised})
        [p] = out.result
        return _ok({"prefix": p.cidr, "advertised": p.advertised, "modified": p.modified}, reconcile=out.reconcile,
                   change=out.change)

    @app.patch("/v1/prefixes/bgp/status")
    def bulk_status(body: BulkBgpStatus, request: Request) -> dict[str, Any]:
        account = caller(request)
        if account is not None and body.selector.ids:
            # a customer's scope first: naming another account's prefix is a 403, deleted or not
            own(account, inv.prefixes(ids=body.selector.ids, include_deleted=True))
        chosen = select(inv, body.selector, withdraw=not body.advertised)
        own(account, chosen)
        skipped = 0
        if not body.advertised and body.selector.ids is None:
            skipped = len([p for p in select(inv, body.selector) if p.pinned])
        if not chosen:
            return _ok({"prefixes": 0, "advertised": body.advertised, "pinned_skipped": skipped}, reconcile={})
        out = changes.run(who(request), "bgp_status", {"ids": [p.id for p in chosen], "advertised": body.advertised})
        return _ok({"prefixes": len(out.result), "advertised": body.advertised, "ids": [p.id for p in out.result],
                    "pinned_skipped": skipped}, reconcile=out.reconcile, change=out.change)

    @app.get("/v1/bindings")
    def all_bindings() -> dict[str, Any]:
        """Every service binding of every prefix (a snapshot for drills and audits)."""
        rows = inv.bindings()
        return _ok([b.as_dict() for b in rows], count=len(rows))

    @app.get("/v1/prefixes/{prefix_id}/bindings")
    def list_bindings(prefix_id: str, request: Request) -> dict[str, Any]:
        own(caller(request), [inv.get(prefix_id)])
        return _ok([b.as_dict() for b in inv.bindings(prefix_id)])

    @app.post("/v1/prefixes/{prefix_id}/bindings", status_code=201)
    def add_binding(prefix_id: str, body: NewBinding, request: Request) -> dict[str, Any]:
        account = caller(request)
        own(account, [inv.get(prefix_id)])
        out = changes.run(who(request), "add_binding", {"id": prefix_id, "service": body.service})
        return _ok(out.result.as_dict(), change=out.change)

    @app.delete("/v1/prefixes/{prefix_id}/bindings/{bid}")
    def delete_binding(prefix_id: str, bid: str, request: Request) -> dict[str, Any]:
        account = caller(request)
        own(account, [inv.get(prefix_id)])
        out = changes.run(who(request), "delete_binding", {"id": prefix_id, "binding": bid})
        return _ok({"id": bid, "deleted": True}, change=out.change)

    @app.post("/v1/prefixes/{prefix_id}/deletion_request")
    def request_deletion(prefix_id: str, request: Request) -> dict[str, Any]:
        own(caller(request), [inv.get(prefix_id)])
        return _ok(inv.request_deletion(prefix_id).as_dict())

    @app.delete("/v1/prefixes/{prefix_id}/deletion_request")
    def cancel_deletion(prefix_id: str, request: Request) -> dict[str, Any]:
        own(caller(request), [inv.get(prefix_id)])
        return _ok(inv.cancel_deletion(prefix_id).as_dict())

    @app.delete("/v1/prefixes/{prefix_id}")
    def delete_prefix(prefix_id: str, request: Request) -> dict[str, Any]:
        account = caller(request)
        own(account, [inv.get(prefix_id)])
        out = changes.run(who(request), "delete_prefix", {"id": prefix_id})
        return _ok(out.result.as_dict(), reconcile=out.reconcile, change=out.change)

    @app.get("/v1/lab/behaviour")
    def get_behaviour() -> dict[str, Any]:
        return _ok(vars(behaviour))

    @app.put("/v1/lab/behaviour")
    def set_behaviour(body: BehaviourBody, request: Request) -> dict[str, Any]:
        if body.pending_delete_bug and changes.guardrails.strict_api:
            raise Conflict("the strict_api guardrail holds the API's strict schema: the 2026-02-20 handler "
                           "cannot be switched on (PUT /v1/lab/guardrails to lift it)")
        behaviour.pending_delete_bug = body.pending_delete_bug
        return _ok(vars(behaviour))

    @app.post("/v1/lab/config_push")
    def config_push(body: ConfigPush, request: Request) -> dict[str, Any]:
        """The operator's global config push: re-create bindings and re-advertise, deleted or not.
        The bindings reach the edge machine by machine (``rollout``), the advertisement at once."""
        steps = [r.model_dump() for r in body.rollout]
        if steps:
            if edge is None:
                raise InventoryError("this API has no edge to roll a push out to; leave rollout out")
            problem = edge.check_rollout(steps)
            if problem:
                raise InventoryError(f"rollout: {problem}")
        items = [(i.id, list(dict.fromkeys(i.services))) for i in body.prefixes]
        out = changes.run(who(request), "config_push", {"items": items, "rollout": steps})
        return _ok({"prefixes": len(out.result), "rollout": out.edge}, reconcile=out.reconcile, change=out.change)

    @app.get("/v1/lab/resolver")
    def resolver() -> dict[str, Any]:
        """The resolver's two prefixes: its website's (pinned BYOIP) and its DNS service's."""
        return _ok({"web": inv.meta("resolver_web"), "dns": inv.meta("resolver_dns")})

    @app.get("/v1/lab/credentials")
    def credentials(request: Request) -> dict[str, Any]:
        """Every account's token, for drills that act as customers (a lab's secrets are the lab's)."""
        return _ok(inv.tokens())

    if edge is not None:
        @app.get("/v1/lab/edge")
        def edge_status() -> dict[str, Any]:
            return _ok(edge.status())

        @app.put("/v1/lab/edge")
        def edge_timing(body: EdgeTiming, request: Request) -> dict[str, Any]:
            """How long a binding change takes to reach each PoP (lab seconds)."""
            edge.delay = body.delay
            return _ok(edge.status())

    # -- the change pipeline: held changes, guardrails, snapshots, audit (controller.changes) --

    def _limit(request: Request, default: int = 200) -> int:
        raw = request.query_params.get("limit")
        if raw is None:
            return default
        if not raw.isdigit() or not 1 <= int(raw) <= 10_000:
            raise InventoryError(f"query parameter 'limit' is an integer from 1 to 10000 (got {raw[:40]!r})")
        return int(raw)

    @app.get("/v1/changes")
    def list_changes(request: Request) -> dict[str, Any]:
        """Changes newest first; ``status`` (applied, held, approved, rejected) and ``actor`` (the
        audit log's role:name) narrow them; ``full=true`` adds each change's arguments."""
        status = request.query_params.get("status")
        if status is not None and status not in STATUSES:
            raise InventoryError(f"query parameter 'status' is one of {', '.join(STATUSES)} (got {status[:40]!r})")
        full = _flag(request.query_params.get("full"), "full")
        rows = changes.list(status, _limit(request), actor=request.query_params.get("actor"), full=bool(full))
        return _ok(rows, count=len(rows), totals=changes.counts())

    list_changes.query_params = {"status", "limit", "actor", "full"}

    @app.get("/v1/changes/{change_id}")
    def show_change(change_id: str) -> dict[str, Any]:
        return _ok(changes.get(change_id))

    @app.post("/v1/changes/{change_id}/approve")
    def approve_change(change_id: str, request: Request) -> dict[str, Any]:
        """Apply a held change past the guardrails (the operator's decision, in the audit log)."""
        out = changes.approve(change_id, who(request))
        return _ok({"approved": change_id, "applied_as": out.change["id"], "diff": out.change["diff"]},
                   reconcile=out.reconcile)

    @app.post("/v1/changes/{change_id}/reject")
    def reject_change(change_id: str, request: Request) -> dict[str, Any]:
        return _ok(changes.reject(change_id, who(request)))

    @app.get("/v1/lab/guardrails")
    def get_guardrails() -> dict[str, Any]:
        return _ok(changes.status())

    @app.put("/v1/lab/guardrails")
    def set_guardrails(body: Guardrails, request: Request) -> dict[str, Any]:
        """Which guardrails act and their limits (windows in lab seconds)."""
        changes.set_guardrails(body, who(request))
        if body.strict_api:
            behaviour.pending_delete_bug = False
        return _ok(changes.status())

    @app.post("/v1/lab/breaker/reset")
    def reset_breaker(request: Request) -> dict[str, Any]:
        return _ok(changes.reset_breaker(who(request)))

    @app.get("/v1/snapshots")
    def list_snapshots(request: Request) -> dict[str, Any]:
        rows = changes.snapshots(_limit(request))
        return _ok(rows, count=len(rows))

    list_snapshots.query_params = {"limit"}

    @app.post("/v1/snapshots", status_code=201)
    def take_snapshot(body: SnapshotBody, request: Request) -> dict[str, Any]:
        return _ok(changes.snapshot(body.label, who(request)))

    @app.get("/v1/snapshots/{snapshot_id}")
    def show_snapshot(snapshot_id: str) -> dict[str, Any]:
        return _ok({"id": snapshot_id, **changes.state_at(snapshot_id).counts()})

    @app.get("/v1/snapshots/{snapshot_id}/diff")
    def diff_snapshot(snapshot_id: str) -> dict[str, Any]:
        """What restoring the snapshot would change in operational state now."""
        return _ok(changes.snapshot_diff(snapshot_id))

    @app.post("/v1/snapshots/{snapshot_id}/restore")
    def restore_snapshot(snapshot_id: str, request: Request) -> dict[str, Any]:
        """Operational state back as the snapshot had it: one change through the pipeline."""
        out = changes.restore(snapshot_id, who(request))
        return _ok({"snapshot": snapshot_id, "prefixes": len(out.result), "diff": out.change["diff"],
                    "change": out.change["id"]}, reconcile=out.reconcile)

    @app.get("/v1/audit")
    def audit(request: Request) -> dict[str, Any]:
        """The audit log, oldest first after ``after`` (a sequence number)."""
        raw = request.query_params.get("after", "0")
        if not raw.isdigit():
            raise InventoryError(f"query parameter 'after' is a sequence number (got {raw[:40]!r})")
        rows = changes.audit_log(_limit(request), int(raw))
        return _ok(rows, count=len(rows))

    audit.query_params = {"limit", "after"}

    @app.get("/v1/lab/tokens")
    def list_tokens() -> dict[str, Any]:
        """The lab's tokens (not the customers' account tokens: GET /v1/lab/credentials), secrets left out."""
        return _ok(inv.token_list())

    @app.post("/v1/lab/tokens", status_code=201)
    def create_token(body: NewToken, request: Request) -> dict[str, Any]:
        """A token for a role; a customer token names its account. The secret is in this answer only."""
        if (body.role == "customer") != (body.account is not None):
            raise InventoryError("a customer token names its account, and no other role takes one")
        if body.account is not None and not inv.account_exists(body.account):
            raise NotFound(f"no account '{body.account}'")
        secret = inv.create_token(body.role, body.name, body.account)
        changes.audit(who(request), "token_create", detail={"name": body.name, "role": body.role, "account": body.account})
        return _ok({"name": body.name, "role": body.role, "account": body.account, "token": secret})

    @app.get("/v1/lab/faults/api")
    def get_api_fault() -> dict[str, Any]:
        f = app.state.fault
        return _ok(None if not f or f["until"] <= clock() else {**f, "left": round(f["until"] - clock(), 3)})

    @app.put("/v1/lab/faults/api")
    def set_api_fault(body: ApiFault, request: Request) -> dict[str, Any]:
        """Make the API misbehave for ``seconds`` (kind none: end a fault now)."""
        if body.kind == "slow" and body.delay <= 0:
            raise InventoryError("a 'slow' fault needs delay, seconds each answer waits (0 < delay <= 30)")
        if body.kind != "none" and body.seconds <= 0:
            raise InventoryError(f"a '{body.kind}' fault needs seconds, how long it lasts (0 < seconds <= 3600)")
        app.state.fault = None if body.kind == "none" else {
            "kind": body.kind, "until": clock() + body.seconds, "delay": body.delay, "actor": body.actor}
        changes.audit(who(request), "api_fault", detail=body.model_dump())
        return get_api_fault()

    if dashboard is not None:
        dashboard.changes = changes

        @app.get("/dashboard", response_class=HTMLResponse)
        def dashboard_page() -> HTMLResponse:
            """The live dashboard (the page; its data comes from /v1/lab/stream with the token in
            the page's address: bgplab dashboard prints it)."""
            return HTMLResponse(dashboard_html())

        @app.get("/v1/lab/stream")
        async def stream(request: Request) -> StreamingResponse:
            """Server-sent events: the lab's topology first, then a frame a second (controller.dashboard)."""
            interval = 1.0
            raw = request.query_params.get("frames")
            if raw is not None and (not raw.isdigit() or not 1 <= int(raw) <= 100_000):
                raise InventoryError(f"query parameter 'frames' is a count from 1 to 100000 (got {raw[:40]!r})")
            limit = int(raw) if raw else None  # a script (or a test) can ask for a few frames and an end

            async def frames():
                nonlocal limit
                dashboard.connect()
                try:
                    yield f"event: topology\ndata: {json.dumps(dashboard.topology)}\n\n"
                    after = hunted = 0
                    while not await request.is_disconnected():
                        f = await run_in_threadpool(dashboard.frame, after, hunted)
                        if f["events"]:
                            after = f["events"][-1]["seq"]
                        if f["hunting"]:
                            hunted = f["hunting"][-1]["n"]
                        yield f"data: {json.dumps(f)}\n\n"
                        if limit is not None:
                            limit -= 1
                            if limit == 0:
                                return
                        await asyncio.sleep(interval)
                finally:
                    dashboard.disconnect()

            return StreamingResponse(frames(), media_type="text/event-stream",
                                     headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})

        stream.query_params = {"token", "frames"}
        stream.token_in_query = True

        @app.put("/v1/lab/drill")
        def drill_clock(body: DrillClockBody) -> dict[str, Any]:
            dashboard.drill = {**body.model_dump(), "at": clock()}
            return _ok(dashboard.drill)

    @app.get("/v1/lab/services")
    def services() -> dict[str, Any]:
        return _ok(list(SERVICES))

    if lab is not None:
        @app.get("/v1/lab/observe")
        def observe() -> dict[str, Any]:
            return _ok(lab.observe())

        @app.get("/v1/lab/reconcile")
        def reconcile_status() -> dict[str, Any]:
            return _ok(lab.status())

        @app.post("/v1/lab/verify")
        def verify(request: Request) -> dict[str, Any]:
            """Compare what the peers received with what was intended, waiting up to ``wait`` seconds."""
            return _ok(lab.verify(wait=_verify_wait(request.query_params.get("wait"))))

        verify.query_params = {"wait"}

        @app.post("/v1/lab/sync")
        def sync(request: Request) -> dict[str, Any]:
            """Push the inventory to the speakers; ``full=true`` resends everything (after a difference).
            A speaker that cannot be reached: 503, naming it."""
            full = _flag(request.query_params.get("full"), "full")
            result = (lab.resend_all() if full else lab.sync()).as_dict()
            if result["errors"]:
                return _error(503, "; ".join(result["errors"]), failed=result["failed"], result=result)
            return _ok(result)

        sync.query_params = {"full"}
    missing = [f"{m} {r.path}" for r in app.routes if isinstance(r, APIRoute) for m in r.methods
               if (m, r.path) not in PERMISSIONS]
    if missing:
        raise AssertionError(f"routes without a permission in api.PERMISSIONS: {', '.join(missing)}")
    return app

"""/v1/prefixes: the inventory's prefixes, their BGP status (one or a selection), deletion
requests and deletion; and /v1/accounts."""

from __future__ import annotations

import ipaddress
from typing import Any, Literal

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import Field, StrictBool, StrictInt

from controller.api.common import (MAX_LIMIT, ApiContext, Body, Forbidden, caller, family, flag, ok, own, paging,
                                       who)
from controller.changes import kinds as change
from controller.inventory import Inventory, InventoryError, NotFound, Prefix


class BgpStatus(Body):
    advertised: StrictBool


class Selector(Body):
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


class BulkBgpStatus(Body):
    advertised: StrictBool
    selector: Selector


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
            family=family(sel.family),
            byoip=sel.byoip,
            advertised=sel.advertised,
            onboarding_order=True,
        )
        if withdraw:
            # Filters select what a withdrawal can act on: pinned prefixes (the operator holds
            # them) are left out, and the answer counts them. Named by id, they are refused.
            chosen = [p for p in chosen if not p.pinned]
    return chosen[: sel.count] if sel.count is not None else chosen


def router(ctx: ApiContext) -> APIRouter:
    r = APIRouter()
    inv, changes, behaviour = ctx.inv, ctx.changes, ctx.behaviour

    @r.get("/v1/accounts")
    def accounts() -> dict[str, Any]:
        return ok(inv.accounts())

    @r.get("/v1/prefixes")
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
                return ok([found.as_dict()])
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
        page, per_page = paging(q)
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
            advertised=flag(q.get("advertised"), "advertised", behaviour),
            pending_delete=flag(q.get("pending_delete"), "pending_delete", behaviour),
            family=family(q.get("family")),
            byoip=flag(q.get("byoip"), "byoip", behaviour),
        )
        # The API's own order: oldest onboarded first, then by id, as a paging API over a
        # created-at index lists (documented in the README); pages are numbered from 1.
        # Plain JSON values already: rendered directly, not walked by FastAPI's encoder (which
        # took most of a 500-prefix page's time).
        if per_page is None:
            rows = inv.prefixes(**filters, limit=limit, onboarding_order=True)
            return JSONResponse(ok([p.as_dict() for p in rows], count=len(rows)))
        rows = inv.prefixes(**filters, limit=per_page + 1, offset=(page - 1) * per_page, onboarding_order=True)
        more = len(rows) > per_page
        rows = rows[:per_page]
        return JSONResponse(ok([p.as_dict() for p in rows], count=len(rows),
                               result_info={"page": page, "per_page": per_page, "count": len(rows), "more": more}))

    list_prefixes.query_params = {"account_id", "advertised", "pending_delete", "family", "byoip", "cidr", "limit",
                                  "page", "per_page"}

    @r.get("/v1/prefixes/{prefix_id}")
    def get_prefix(prefix_id: str, request: Request) -> dict[str, Any]:
        p = inv.get(prefix_id)
        own(caller(request), [p])
        return ok(p.as_dict())

    @r.get("/v1/prefixes/{prefix_id}/bgp/status")
    def get_status(prefix_id: str, request: Request) -> dict[str, Any]:
        p = inv.get(prefix_id)
        own(caller(request), [p])
        return ok({"prefix": p.cidr, "advertised": p.advertised, "modified": p.modified})

    @r.patch("/v1/prefixes/{prefix_id}/bgp/status")
    def set_status(prefix_id: str, body: BgpStatus, request: Request) -> dict[str, Any]:
        account = caller(request)
        own(account, [inv.get(prefix_id)])
        out = changes.run(who(request), change.BgpStatus([prefix_id], body.advertised))
        [p] = out.result
        return ok({"prefix": p.cidr, "advertised": p.advertised, "modified": p.modified}, reconcile=out.reconcile,
                  change=out.change)

    @r.patch("/v1/prefixes/bgp/status")
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
            return ok({"prefixes": 0, "advertised": body.advertised, "pinned_skipped": skipped}, reconcile={})
        out = changes.run(who(request), change.BgpStatus([p.id for p in chosen], body.advertised))
        return ok({"prefixes": len(out.result), "advertised": body.advertised, "ids": [p.id for p in out.result],
                   "pinned_skipped": skipped}, reconcile=out.reconcile, change=out.change)

    @r.post("/v1/prefixes/{prefix_id}/deletion_request")
    def request_deletion(prefix_id: str, request: Request) -> dict[str, Any]:
        own(caller(request), [inv.get(prefix_id)])
        return ok(inv.request_deletion(prefix_id).as_dict())

    @r.delete("/v1/prefixes/{prefix_id}/deletion_request")
    def cancel_deletion(prefix_id: str, request: Request) -> dict[str, Any]:
        own(caller(request), [inv.get(prefix_id)])
        return ok(inv.cancel_deletion(prefix_id).as_dict())

    @r.delete("/v1/prefixes/{prefix_id}")
    def delete_prefix(prefix_id: str, request: Request) -> dict[str, Any]:
        account = caller(request)
        own(account, [inv.get(prefix_id)])
        out = changes.run(who(request), change.DeletePrefix(prefix_id))
        return ok(out.result.as_dict(), reconcile=out.reconcile, change=out.change)

    return r

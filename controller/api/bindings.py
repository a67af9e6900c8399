"""Service bindings: which of the operator's services (controller.products) a prefix is bound
to, listed, added and removed; every change goes through the pipeline (the edge follows)."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Request

from controller.api.common import ApiContext, Body, caller, ok, own, who
from controller.changes import kinds as change
from controller.products import SERVICES

Service = Literal[SERVICES]  # the inventory's service names, as a type the API validates against


class NewBinding(Body):
    service: Service


def router(ctx: ApiContext) -> APIRouter:
    r = APIRouter()
    inv, changes = ctx.inv, ctx.changes

    @r.get("/v1/bindings")
    def all_bindings() -> dict[str, Any]:
        """Every service binding of every prefix (a snapshot for drills and audits)."""
        rows = inv.bindings()
        return ok([b.as_dict() for b in rows], count=len(rows))

    @r.get("/v1/prefixes/{prefix_id}/bindings")
    def list_bindings(prefix_id: str, request: Request) -> dict[str, Any]:
        own(caller(request), [inv.get(prefix_id)])
        return ok([b.as_dict() for b in inv.bindings(prefix_id)])

    @r.post("/v1/prefixes/{prefix_id}/bindings", status_code=201)
    def add_binding(prefix_id: str, body: NewBinding, request: Request) -> dict[str, Any]:
        account = caller(request)
        own(account, [inv.get(prefix_id)])
        out = changes.run(who(request), change.AddBinding(prefix_id, body.service))
        return ok(out.result.as_dict(), change=out.change)

    @r.delete("/v1/prefixes/{prefix_id}/bindings/{bid}")
    def delete_binding(prefix_id: str, bid: str, request: Request) -> dict[str, Any]:
        account = caller(request)
        own(account, [inv.get(prefix_id)])
        out = changes.run(who(request), change.DeleteBinding(prefix_id, bid))
        return ok({"id": bid, "deleted": True}, change=out.change)

    @r.get("/v1/lab/services")
    def services() -> dict[str, Any]:
        return ok(list(SERVICES))

    return r

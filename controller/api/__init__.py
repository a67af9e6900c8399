"""The Addressing API: HTTP over the inventory, shaped like the addressing APIs operators know.

One router per resource (prefixes, bindings, the change pipeline, tokens, the lab, the
dashboard's stream), over an ``ApiContext`` the caller builds: the inventory, the change
pipeline (controller.changes, built with its speakers, edge, clock and health signal), the
misbehaviours switched on, the edge and the lab's controls. Nothing reaches into the app to
patch them afterwards.

Every change that can alter what is advertised goes through the pipeline, which hands it to
the speakers (the reconciler) before the response is sent: the API is authoritative and
propagates at once, as in the incident. Bad input gets a 4xx that says what is wrong, and
nothing changes. The API's misbehaviours (controller.misbehaviours: the 2026-02-20
``pending_delete`` handler first) are off by default; a drill turns one on by name through
``PUT /v1/lab/behaviour``.
"""

from __future__ import annotations

from typing import Any

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from controller.api import bindings, lab, pipeline, prefixes, stream, tokens
from controller.api.auth import PERMISSIONS, ROLES, authorizer
from controller.api.common import (ApiContext, Caller, EdgeLike, Forbidden, LabControl, Unauthorized, Unavailable,
                                       error, strict_query)
from controller.changes import Held, PropagationFailed
from controller.inventory import InventoryError, Pinned
from controller.misbehaviours import Behaviour
from controller.peer import peer_uid

__all__ = ["ApiContext", "Behaviour", "EdgeLike", "LabControl", "PERMISSIONS", "ROLES", "create_app", "routes"]


def routes(app: Any) -> list[Any]:
    """Every route of the app, its routers' included: FastAPI keeps an included router as one
    entry of ``app.routes`` and its routes inside it."""
    out = []
    for r in app.routes:
        inner = getattr(r, "original_router", None)
        out += routes(inner) if inner is not None else [r]
    return out


def create_app(ctx: ApiContext) -> FastAPI:
    app = FastAPI(
        title="bgplab Addressing API",
        version="1",
        description="The lab's source of truth for every prefix: BGP status, service bindings, deletion.",
        dependencies=[Depends(authorizer(ctx)), Depends(strict_query)],
    )
    changes = ctx.changes
    if changes.guardrails.strict_api:
        ctx.behaviour.hold_strict_schema()

    @app.exception_handler(PropagationFailed)
    async def propagation_failed(_: Request, e: PropagationFailed) -> JSONResponse:
        # The inventory is back as it was; speakers that took the change are brought back to it
        # (the one that failed is resent in full once it answers again).
        again = await run_in_threadpool(changes.on_change, e.prefixes) if changes.on_change else {}
        return error(503, str(e), failed=e.result.get("failed", {}), prefixes=len(e.prefixes),
                     rolled_back=True, speakers_restored=again.get("ok", False))

    @app.exception_handler(InventoryError)
    async def inventory_error(request: Request, e: InventoryError) -> JSONResponse:
        c: Caller | None = getattr(request.state, "caller", None)
        if isinstance(e, Forbidden) and c is not None:
            # Every refusal of scope is in the audit log: a drill grades an automation by them.
            await run_in_threadpool(changes.audit, f"{c.role}:{c.name}", "denied",
                                    detail={"method": request.method, "path": request.url.path, "error": str(e)[:300]})
        elif isinstance(e, Unauthorized):
            # No token of the lab's (a guessed or derived one): no caller to name, but the local
            # user whose socket asked (the API is on loopback), so a drill can tell its automation's.
            client = request.client
            uid = peer_uid(client.host, client.port) if client else None
            await run_in_threadpool(changes.audit, "unknown", "unauthorized",
                                    detail={"method": request.method, "path": request.url.path, "uid": uid,
                                            "error": str(e)[:300]})
        if isinstance(e, Unavailable):
            return JSONResponse(status_code=503, content={"success": False, "errors": [{"message": str(e)}]},
                                headers={"Retry-After": "1"})
        if isinstance(e, Held):
            r = e.record
            return error(e.status, str(e), change=r["id"], guardrail=r["guardrail"], reason=r["reason"],
                         diff=r["diff_summary"], figures=r["figures"])
        if isinstance(e, Pinned):
            return error(e.status, str(e), pinned=e.ids)
        return error(e.status, str(e))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, e: StarletteHTTPException) -> JSONResponse:
        # no such route (404), or not this method (405): in the API's own error shape
        return error(e.status_code, f"{request.method} {request.url.path}: {e.detail}")

    @app.exception_handler(RequestValidationError)
    async def bad_request(_: Request, e: RequestValidationError) -> JSONResponse:
        problems = [f"{'.'.join(str(x) for x in err['loc'])}: {err['msg']}" for err in e.errors()]
        return error(400, "; ".join(problems), problems=problems)

    for resource in (lab, prefixes, bindings, pipeline, tokens):
        app.include_router(resource.router(ctx))
    if ctx.dashboard is not None:
        app.include_router(stream.router(ctx))
    missing = [f"{m} {r.path}" for r in routes(app) if isinstance(r, APIRoute) for m in r.methods
               if (m, r.path) not in PERMISSIONS]
    if missing:
        raise AssertionError(f"routes without a permission in api.PERMISSIONS: {', '.join(missing)}")
    return app

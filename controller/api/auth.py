"""The check every request passes (a bearer token of this lab's, a role that grants the route's
permission), with the API fault a drill injected applied to the callers it names."""

from __future__ import annotations

import time
from typing import Callable

from fastapi import Request
from fastapi.routing import APIRoute

from controller.api.common import ApiContext, Caller, Forbidden, Unauthorized, Unavailable
from controller.roles import PERMISSIONS, ROLES

def authorizer(ctx: ApiContext) -> Callable[[Request], None]:
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
        info = ctx.inv.token_info(token.strip()) if kind.lower() == "bearer" else None
        if info is None:
            raise Unauthorized("the Authorization header holds no token of this lab's (Bearer <token>)")
        c = Caller(**info)
        request.state.caller = c  # kept before the check: a refusal is audited with its caller
        if need not in ROLES[c.role]:
            raise Forbidden(f"{request.method} {route.path} needs the '{need}' permission; token '{c.name}' "
                            f"({c.role}) has {', '.join(sorted(ROLES[c.role]))}")
        fault = ctx.fault
        if fault and fault["until"] > ctx.clock() and fault.get("actor") in (None, f"{c.role}:{c.name}"):
            if fault["kind"] == "slow":
                time.sleep(fault["delay"])
            else:
                raise Unavailable(f"the API is unavailable (an injected fault, {fault['until'] - ctx.clock():.1f} s left)")

    return authorize

"""/v1/lab/tokens: the lab's tokens, listed by name and role (their secrets are kept as
digests, nowhere to list), and made for a role; a customer's names its account."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Request
from pydantic import Field

from controller.api.auth import ROLES
from controller.api.common import ApiContext, Body, ok, who
from controller.inventory import InventoryError, NotFound


class NewToken(Body):
    role: Literal[tuple(ROLES)]  # type: ignore[valid-type]
    name: str = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.:@-]+$")
    account: str | None = None


def router(ctx: ApiContext) -> APIRouter:
    r = APIRouter()
    inv, changes = ctx.inv, ctx.changes

    @r.get("/v1/lab/tokens")
    def list_tokens() -> dict[str, Any]:
        """The lab's tokens, by name, role and account: the secrets are nowhere to list (kept as digests)."""
        return ok(inv.token_list())

    @r.post("/v1/lab/tokens", status_code=201)
    def create_token(body: NewToken, request: Request) -> dict[str, Any]:
        """A token for a role; a customer token names its account. The secret is in this answer only."""
        if (body.role == "customer") != (body.account is not None):
            raise InventoryError("a customer token names its account, and no other role takes one")
        if body.account is not None and not inv.account_exists(body.account):
            raise NotFound(f"no account '{body.account}'")
        secret = inv.create_token(body.role, body.name, body.account)
        changes.audit(who(request), "token_create", detail={"name": body.name, "role": body.role, "account": body.account})
        return ok({"name": body.name, "role": body.role, "account": body.account, "token": secret})

    return r

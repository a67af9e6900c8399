"""The lab's own resources: its health, the API's misbehaviours, the operator's global config
push, the resolver, the edge's timing, the faults a drill injects into the API, and (with a
running lab) the reconciler's status, verify and sync and the observers' view."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Request
from pydantic import Field, StrictBool, create_model

from controller.api.bindings import Service
from controller.api.common import ApiContext, Body, error, flag, ok, verify_wait, who
from controller.changes import kinds as change
from controller.inventory import Conflict, InventoryError
from controller.misbehaviours import TABLE as MISBEHAVIOURS

# {misbehaviour: on}: one optional field per entry of the table
BehaviourBody = create_model("BehaviourBody", __base__=Body, **{n: (StrictBool | None, None) for n in MISBEHAVIOURS})


class PushItem(Body):
    id: str
    services: list[Service] = Field(min_length=1)


class RolloutStep(Body):
    machine: str  # "<pop>/<n>", as GET /v1/lab/edge names them
    at: float  # when this machine applies the push (lab clock, time.time())


class ConfigPush(Body):
    prefixes: list[PushItem] = Field(min_length=1)
    rollout: list[RolloutStep] = []  # empty: every machine at once, after the edge's delay


class EdgeTiming(Body):
    delay: float = Field(ge=0, le=3600)


class ApiFault(Body):
    """The API misbehaving for a while, as a team's automation would meet it on a bad day:
    ``unavailable`` answers 503 (with Retry-After), ``slow`` answers after ``delay`` seconds.
    ``actor`` confines it to one token (role:name); the drill's own calls are not disturbed."""

    kind: Literal["unavailable", "slow", "none"]
    seconds: float = Field(default=0, ge=0, le=3600)
    delay: float = Field(default=0, ge=0, le=30)
    actor: str | None = None


def router(ctx: ApiContext) -> APIRouter:
    r = APIRouter()
    inv, changes, behaviour, edge, lab, clock = ctx.inv, ctx.changes, ctx.behaviour, ctx.edge, ctx.lab, ctx.clock

    @r.get("/v1/health")
    def health() -> dict[str, Any]:
        return ok({"prefixes": len(inv.prefixes()), "behaviour": behaviour.as_dict()})

    @r.get("/v1/lab/behaviour")
    def get_behaviour() -> dict[str, Any]:
        return ok(behaviour.as_dict())

    @r.put("/v1/lab/behaviour")
    def set_behaviour(body: BehaviourBody, request: Request) -> dict[str, Any]:
        asked = {n: v for n, v in body.model_dump().items() if v is not None}
        if not asked:  # a body that names nothing changes nothing: the client meant something else
            raise InventoryError(f"name at least one misbehaviour to switch ({', '.join(MISBEHAVIOURS)})")
        held = [n for n, v in asked.items() if v and MISBEHAVIOURS[n].loosens_schema and changes.guardrails.strict_api]
        if held:
            raise Conflict(f"the strict_api guardrail holds the API's strict schema: {held[0]} (the "
                           f"{MISBEHAVIOURS[held[0]].incident} handler) cannot be switched on (PUT /v1/lab/guardrails "
                           "to lift it)")
        for n, v in asked.items():
            behaviour.set(n, v)
        return ok(behaviour.as_dict())

    @r.post("/v1/lab/config_push")
    def config_push(body: ConfigPush, request: Request) -> dict[str, Any]:
        """The operator's global config push: re-create bindings and re-advertise, deleted or not.
        The bindings reach the edge machine by machine (``rollout``), the advertisement at once."""
        steps = [s.model_dump() for s in body.rollout]
        if steps:
            if edge is None:
                raise InventoryError("this API has no edge to roll a push out to; leave rollout out")
            problem = edge.check_rollout(steps)
            if problem:
                raise InventoryError(f"rollout: {problem}")
        items = [(i.id, list(dict.fromkeys(i.services))) for i in body.prefixes]
        out = changes.run(who(request), change.ConfigPush(items, steps))
        return ok({"prefixes": len(out.result), "rollout": out.edge}, reconcile=out.reconcile, change=out.change)

    @r.get("/v1/lab/resolver")
    def resolver() -> dict[str, Any]:
        """The resolver's two prefixes: its website's (pinned BYOIP) and its DNS service's."""
        return ok({"web": inv.meta("resolver_web"), "dns": inv.meta("resolver_dns")})

    if edge is not None:
        @r.get("/v1/lab/edge")
        def edge_status() -> dict[str, Any]:
            return ok(edge.status())

        @r.put("/v1/lab/edge")
        def edge_timing(body: EdgeTiming, request: Request) -> dict[str, Any]:
            """How long a binding change takes to reach each PoP (lab seconds)."""
            edge.delay = body.delay
            return ok(edge.status())

    @r.get("/v1/lab/faults/api")
    def get_api_fault() -> dict[str, Any]:
        f = ctx.fault
        return ok(None if not f or f["until"] <= clock() else {**f, "left": round(f["until"] - clock(), 3)})

    @r.put("/v1/lab/faults/api")
    def set_api_fault(body: ApiFault, request: Request) -> dict[str, Any]:
        """Make the API misbehave for ``seconds`` (kind none: end a fault now)."""
        if body.kind == "slow" and body.delay <= 0:
            raise InventoryError("a 'slow' fault needs delay, seconds each answer waits (0 < delay <= 30)")
        if body.kind != "none" and body.seconds <= 0:
            raise InventoryError(f"a '{body.kind}' fault needs seconds, how long it lasts (0 < seconds <= 3600)")
        ctx.fault = None if body.kind == "none" else {
            "kind": body.kind, "until": clock() + body.seconds, "delay": body.delay, "actor": body.actor}
        changes.audit(who(request), "api_fault", detail=body.model_dump())
        return get_api_fault()

    if lab is not None:
        @r.get("/v1/lab/observe")
        def observe() -> dict[str, Any]:
            return ok(lab.observe())

        @r.get("/v1/lab/reconcile")
        def reconcile_status() -> dict[str, Any]:
            return ok(lab.status())

        @r.post("/v1/lab/verify")
        def verify(request: Request) -> dict[str, Any]:
            """Compare what the peers received with what was intended, waiting up to ``wait`` seconds."""
            return ok(lab.verify(wait=verify_wait(request.query_params.get("wait"))))

        verify.query_params = {"wait"}

        @r.post("/v1/lab/sync")
        def sync(request: Request) -> dict[str, Any]:
            """Push the inventory to the speakers; ``full=true`` resends everything (after a difference).
            A speaker that cannot be reached: 503, naming it."""
            full = flag(request.query_params.get("full"), "full")
            result = (lab.resend_all() if full else lab.sync()).as_dict()
            if result["errors"]:
                return error(503, "; ".join(result["errors"]), failed=result["failed"], result=result)
            return ok(result)

        sync.query_params = {"full"}

    return r

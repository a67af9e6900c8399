"""The change pipeline's resources (controller.changes): changes (held, approved, rejected),
guardrails and the breaker, snapshots and their restore, and the audit log."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from pydantic import Field

from controller.api.common import ApiContext, Body, flag, limit, ok, who
from controller.changes import STATUSES
from controller.guardrails import Guardrails
from controller.inventory import InventoryError


class SnapshotBody(Body):
    label: str = Field(min_length=1, max_length=200)


def router(ctx: ApiContext) -> APIRouter:
    r = APIRouter()
    changes, behaviour = ctx.changes, ctx.behaviour

    @r.get("/v1/changes")
    def list_changes(request: Request) -> dict[str, Any]:
        """Changes newest first; ``status`` (applied, held, approved, rejected) and ``actor`` (the
        audit log's role:name) narrow them; ``full=true`` adds each change's arguments."""
        status = request.query_params.get("status")
        if status is not None and status not in STATUSES:
            raise InventoryError(f"query parameter 'status' is one of {', '.join(STATUSES)} (got {status[:40]!r})")
        full = flag(request.query_params.get("full"), "full")
        rows = changes.list(status, limit(request), actor=request.query_params.get("actor"), full=bool(full))
        return ok(rows, count=len(rows), totals=changes.counts())

    list_changes.query_params = {"status", "limit", "actor", "full"}

    @r.get("/v1/changes/{change_id}")
    def show_change(change_id: str) -> dict[str, Any]:
        return ok(changes.get(change_id))

    @r.post("/v1/changes/{change_id}/approve")
    def approve_change(change_id: str, request: Request) -> dict[str, Any]:
        """Apply a held change past the guardrails (the operator's decision, in the audit log)."""
        out = changes.approve(change_id, who(request))
        return ok({"approved": change_id, "applied_as": out.change["id"], "diff": out.change["diff"]},
                  reconcile=out.reconcile)

    @r.post("/v1/changes/{change_id}/reject")
    def reject_change(change_id: str, request: Request) -> dict[str, Any]:
        return ok(changes.reject(change_id, who(request)))

    @r.get("/v1/lab/guardrails")
    def get_guardrails() -> dict[str, Any]:
        return ok(changes.status())

    @r.put("/v1/lab/guardrails")
    def set_guardrails(body: Guardrails, request: Request) -> dict[str, Any]:
        """Which guardrails act and their limits (windows in lab seconds)."""
        changes.set_guardrails(body, who(request))
        if body.strict_api:
            behaviour.hold_strict_schema()
        return ok(changes.status())

    @r.post("/v1/lab/breaker/reset")
    def reset_breaker(request: Request) -> dict[str, Any]:
        return ok(changes.reset_breaker(who(request)))

    @r.get("/v1/snapshots")
    def list_snapshots(request: Request) -> dict[str, Any]:
        rows = changes.snapshots(limit(request))
        return ok(rows, count=len(rows))

    list_snapshots.query_params = {"limit"}

    @r.post("/v1/snapshots", status_code=201)
    def take_snapshot(body: SnapshotBody, request: Request) -> dict[str, Any]:
        return ok(changes.snapshot(body.label, who(request)))

    @r.get("/v1/snapshots/{snapshot_id}")
    def show_snapshot(snapshot_id: str) -> dict[str, Any]:
        return ok({"id": snapshot_id, **changes.state_at(snapshot_id).counts()})

    @r.get("/v1/snapshots/{snapshot_id}/diff")
    def diff_snapshot(snapshot_id: str) -> dict[str, Any]:
        """What restoring the snapshot would change in operational state now."""
        return ok(changes.snapshot_diff(snapshot_id))

    @r.post("/v1/snapshots/{snapshot_id}/restore")
    def restore_snapshot(snapshot_id: str, request: Request) -> dict[str, Any]:
        """Operational state back as the snapshot had it: one change through the pipeline."""
        out = changes.restore(snapshot_id, who(request))
        return ok({"snapshot": snapshot_id, "prefixes": len(out.result), "diff": out.change["diff"],
                   "change": out.change["id"]}, reconcile=out.reconcile)

    @r.get("/v1/audit")
    def audit(request: Request) -> dict[str, Any]:
        """The audit log, oldest first after ``after`` (a sequence number)."""
        raw = request.query_params.get("after", "0")
        if not raw.isdigit():
            raise InventoryError(f"query parameter 'after' is a sequence number (got {raw[:40]!r})")
        rows = changes.audit_log(limit(request), int(raw))
        return ok(rows, count=len(rows))

    audit.query_params = {"limit", "after"}

    return r

"""The live dashboard: its page (no data), the server-sent stream it reads (the lab's topology,
then a frame a second: controller.dashboard) and the drill clock a runner tells it."""

from __future__ import annotations

import asyncio
import json
from typing import Any, Literal

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, StreamingResponse
from pydantic import Field
from starlette.concurrency import run_in_threadpool

from controller.api.common import ApiContext, Body, ok
from controller.dashboard import PAGE
from controller.inventory import InventoryError


class DrillClockBody(Body):
    """What a drill runner tells the dashboard: its clock, speed, window, next step, steps so far."""

    name: str = Field(max_length=200)
    clock: str = Field(max_length=20)
    speed: float = Field(gt=0)
    window: str | None = Field(default=None, max_length=200)
    next_step: str | None = Field(default=None, max_length=300)
    marks: list[dict[str, Any]] = Field(default_factory=list, max_length=500)
    state: Literal["running", "settling", "done"] = "running"


def router(ctx: ApiContext) -> APIRouter:
    r = APIRouter()
    dashboard, clock = ctx.dashboard, ctx.clock

    @r.get("/dashboard", response_class=HTMLResponse)
    def dashboard_page() -> HTMLResponse:
        """The live dashboard (the page; its data comes from /v1/lab/stream with the token in
        the page's address: bgplab dashboard prints it)."""
        return HTMLResponse(PAGE.read_text())

    @r.get("/v1/lab/stream")
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

    @r.put("/v1/lab/drill")
    def drill_clock(body: DrillClockBody) -> dict[str, Any]:
        dashboard.drill = {**body.model_dump(), "at": clock()}
        return ok(dashboard.drill)

    return r

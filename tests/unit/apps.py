"""Unit tests' Addressing API: the pipeline built first and handed to create_app, as the
service and the mechanism do (controller.api.ApiContext)."""

from __future__ import annotations

import time
from typing import Any, Callable

from fastapi import FastAPI

from controller.api import ApiContext, create_app
from controller.changes import Changes
from controller.misbehaviours import Behaviour


def make_context(inv: Any, on_change: Callable | None = None, behaviour: Behaviour | None = None, *, lab: Any = None,
                 edge: Any = None, clock: Callable[[], float] = time.time, dashboard: Any = None,
                 health: Callable | None = None, on_stage: Callable | None = None) -> ApiContext:
    changes = Changes(inv, on_change, edge, clock=clock, health=health, on_stage=on_stage)
    return ApiContext(inv, changes, behaviour or Behaviour(), edge=edge, lab=lab, dashboard=dashboard, clock=clock)


def make_app(*args: Any, **kw: Any) -> FastAPI:
    return create_app(make_context(*args, **kw))

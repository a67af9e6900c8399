"""The drill file's timeline: one class per kind of step, each named by its ``do`` literal, and
the ``Step`` union of them. The mechanism has one handler per kind (``_do_<kind>`` in
controller.drills.events)."""

from __future__ import annotations

from typing import Annotated, Any, Literal, Union

from pydantic import AfterValidator, ConfigDict, Field, field_validator, model_serializer, model_validator

from controller.drills.clock import parse_clock
from controller.drills.expect import Expect, Strict
from controller.misbehaviours import NAMES as MISBEHAVIOURS
from controller.units import parse_duration
from lab.faults import FAULTS

_Strict = Strict


def _duration_text(v: str) -> str:
    parse_duration(v)
    return v


Duration = Annotated[str, AfterValidator(_duration_text), Field(description="90s, 8m, 1h 7m")]


class _Step(_Strict):
    at: str
    label: str = ""

    @field_validator("at")
    @classmethod
    def _at(cls, v: str) -> str:
        if v.startswith("+"):
            parse_duration(v[1:])
        else:
            parse_clock(v)
        return v


class SetBehaviour(_Step):
    """Switch misbehaviours of the Addressing API on or off by name (controller.misbehaviours:
    ``pending_delete_bug: true``, the 2026-02-20 handler)."""

    do: Literal["behaviour"]
    misbehaviours: dict[str, bool]

    @model_validator(mode="before")
    @classmethod
    def _by_name(cls, v: Any) -> Any:
        """Each misbehaviour is named as a key of the step; they are gathered here."""
        if not isinstance(v, dict) or "misbehaviours" in v:
            return v
        names = {k: v[k] for k in v if k in MISBEHAVIOURS}
        if not names:
            raise ValueError(f"a behaviour step names at least one misbehaviour: {', '.join(MISBEHAVIOURS)}")
        return {**{k: x for k, x in v.items() if k not in names}, "misbehaviours": names}

    @model_serializer(mode="wrap")
    def _as_written(self, handler: Any) -> dict[str, Any]:
        """Dumped as the drill file says it: each misbehaviour a key of the step."""
        d = handler(self)
        return {**{k: x for k, x in d.items() if k != "misbehaviours"}, **d.get("misbehaviours", {})}


class TaskStart(_Step):
    do: Literal["task_start"]
    task: str


class TaskStop(_Step):
    do: Literal["task_stop"]
    task: str


class Detect(_Step):
    """Arm detection: when the canary's probes fail (three rounds in a row), the operators
    stop the task ``response`` after the first of those failed probes."""

    do: Literal["detect"]
    task: str
    # resolver: the resolver's website (as on 2026-02-20); first: the first prefix the task
    # will meet; auto: the first of the sampled probe targets the task will meet; or a prefix.
    canary: str = "resolver"
    response: Duration = "0s"


class Dashboard(_Step):
    """Affected customers re-advertise their prefixes from the dashboard (the API), spread over a window."""

    do: Literal["dashboard"]
    fraction: float = Field(gt=0, le=1, description="share of the affected customers who use the dashboard")
    window: Duration = "0s"  # when each of them starts: spread over this window
    click: Duration = "1m"  # a customer toggles one prefix per click, in the dashboard's (the API's) order
    seed: int = 1


class Revert(_Step):
    """The change is reverted: the withdrawn prefixes that kept a binding are re-advertised."""

    do: Literal["revert"]


class ConfigPushStep(_Step):
    """A global config push: every prefix the drill affected gets its bindings back and is
    re-advertised at once; the bindings reach the edge machine by machine, ``per_machine``
    apart (incident time), in the edge's order."""

    do: Literal["config_push"]
    per_machine: Duration = "0s"


class Api(_Step):
    do: Literal["api"]
    method: Literal["GET", "POST", "PATCH", "PUT", "DELETE"]
    path: str
    json_body: dict[str, Any] | None = Field(default=None, alias="json")
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class Fault(_Step):
    """A fault primitive (lab.faults). Times (down_for) are lab seconds: faults act on real timers."""

    do: Literal["fault"]
    fault: str = Field(description="a kind in lab.faults.FAULTS")
    node: str
    peer: str | None = None
    daemon: str | None = None
    action: Literal["kill", "stop", "cont", "start"] | None = None
    down_for: float = Field(default=2.0, gt=0)
    times: int = Field(default=1, ge=1)
    delay_ms: float = Field(default=0, ge=0)
    jitter_ms: float = Field(default=0, ge=0)
    loss_pct: float = Field(default=0, ge=0, le=100)
    rate_kbit: int | None = Field(default=None, ge=8)

    @field_validator("fault")
    @classmethod
    def _kind(cls, v: str) -> str:
        if v not in FAULTS:
            raise ValueError(f"unknown fault '{v}' (faults: {', '.join(FAULTS)})")
        return v

    @model_validator(mode="after")
    def _needs(self) -> "Fault":
        if self.fault in ("session_reset", "link_down", "link_up", "link_flap", "impair", "clear_impairment") and not self.peer:
            raise ValueError(f"fault '{self.fault}' needs a peer (the other end of the link or session)")
        if self.fault == "daemon" and not (self.daemon and self.action):
            raise ValueError("fault 'daemon' needs daemon (zebra, bgpd, exabgp) and action (kill, stop, cont, start)")
        return self


class DeletionRequests(_Step):
    """Customers ask for ``count`` of their BYOIP prefixes to be deleted (POST
    /deletion_request): the work a cleanup automation is asked to do. Drawn with ``seed``
    from prefixes the probes do not target and nobody pinned."""

    do: Literal["deletion_requests"]
    count: int = Field(ge=1, le=1000)
    seed: int = 1


class ApiFaultStep(_Step):
    """The Addressing API misbehaves for ``for`` (incident time) towards a task's token:
    ``unavailable`` answers 503, ``slow`` answers ``delay`` lab seconds late."""

    do: Literal["api_fault"]
    kind: Literal["unavailable", "slow"]
    duration: Duration = Field(alias="for")
    delay: float = Field(default=0, ge=0, le=30)
    task: str | None = None  # whose token (default: every task's)
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @model_validator(mode="after")
    def _delay(self) -> "ApiFaultStep":
        if self.kind == "slow" and self.delay <= 0:
            raise ValueError("a 'slow' API fault needs delay (lab seconds each answer waits, up to 30)")
        return self


class Mark(_Step):
    do: Literal["mark"]


class TakeSnapshot(_Step):
    """A labelled snapshot of operational state (controller.changes), named for a later restore."""

    do: Literal["snapshot"]
    name: str = Field(min_length=1)


class RestoreSnapshot(_Step):
    """Operational state back as a named snapshot had it, in one change through the pipeline."""

    do: Literal["restore"]
    snapshot: str


class Checkpoint(_Step):
    do: Literal["checkpoint"]
    expect: Expect


Step = Annotated[
    Union[SetBehaviour, TaskStart, TaskStop, Detect, Dashboard, Revert, ConfigPushStep, Api, Fault, Mark, Checkpoint,
          TakeSnapshot, RestoreSnapshot, DeletionRequests, ApiFaultStep],
    Field(discriminator="do"),
]

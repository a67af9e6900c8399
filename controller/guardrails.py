"""The guardrails' settings, once: for a lab through the API (``PUT /v1/lab/guardrails``,
windows in lab seconds) and for a drill (its ``guardrails:``, windows on the incident clock,
brought to lab seconds by ``at_speed``). A window is given in seconds or as duration text
('10m'). What each guardrail does with them is in controller.changes (``GUARDRAILS``)."""

from __future__ import annotations

from typing import ClassVar

from pydantic import BaseModel, ConfigDict, Field, StrictBool

from controller.units import Seconds


class _Cfg(BaseModel):
    model_config = ConfigDict(extra="forbid")
    WINDOWS: ClassVar[tuple[str, ...]] = ()  # its fields that are times (scaled by the drill's speed)

    def at_speed(self, speed: float) -> "_Cfg":
        """The same settings with every window divided by ``speed``: incident seconds to lab seconds."""
        return self.model_copy(update={w: getattr(self, w) / speed for w in self.WINDOWS})


class BlastRadius(_Cfg):
    """Hold a change that, alone or with the changes of the last ``window`` seconds, withdraws
    more than ``max_prefixes`` prefixes or ``max_share`` of the BYOIP prefixes, or touches
    (withdraws from, or removes a binding of) more than ``max_accounts`` accounts."""

    WINDOWS = ("window",)
    max_prefixes: int | None = Field(default=None, ge=1)
    max_share: float | None = Field(default=None, gt=0, le=1)
    max_accounts: int | None = Field(default=None, ge=1)
    window: Seconds = Field(default=0.0, ge=0, description="seconds; 0: each change alone")


class Breaker(_Cfg):
    """Trip when the withdrawals of the last ``window`` seconds, this change's included, would
    exceed ``max_withdrawals``: prefixes withdrawn plus service bindings removed (a removed
    binding withdraws a service from the edge). Open, it holds every withdrawal until reset."""

    WINDOWS = ("window",)
    max_withdrawals: int = Field(ge=1)
    window: Seconds = Field(gt=0, description="seconds")


class Staged(_Cfg):
    """A withdrawing change goes to one PoP first (``first``; default the first PoP) and waits
    ``health_window`` seconds; the probes in that window decide: at most ``max_unhealthy`` of
    the end hosts' probe results not ok, and it goes on to every other PoP; more, and it is
    rolled back on the PoP that has it. One change at a time: a withdrawing change that comes
    while another is in its window is held. Restores and approved changes go everywhere at once."""

    WINDOWS = ("health_window",)
    first: str | None = None
    health_window: Seconds = Field(gt=0, description="seconds")
    max_unhealthy: float = Field(default=0.01, ge=0, le=1)


class Guardrails(_Cfg):
    """Which guardrails act, and their limits. ``strict_api``: the Addressing API's strict
    schema is locked on (no misbehaviour that loosens it can be switched on)."""

    strict_api: StrictBool = False
    blast_radius: BlastRadius | None = None
    breaker: Breaker | None = None
    staged: Staged | None = None

    NAMES: ClassVar[tuple[str, ...]] = ("strict_api", "blast_radius", "breaker", "staged")

    def at_speed(self, speed: float) -> "Guardrails":
        return self.model_copy(update={n: g.at_speed(speed) for n in self.NAMES if isinstance(g := getattr(self, n), _Cfg)})

    def for_api(self, speed: float) -> dict:
        """The settings PUT /v1/lab/guardrails takes: a drill's windows (incident time) in lab
        seconds at ``speed``; the guardrails it does not set left out."""
        return self.at_speed(speed).model_dump(exclude_none=True)

    def active(self) -> list[str]:
        return [n for n in self.NAMES if getattr(self, n)]

"""What every `bgplab` command shares: the command group (a BgplabError becomes a message and
an exit code; each command's module is imported when the command runs, not at every start),
and the lab a command acts on (``--lab``, default the only lab that is up), opened once."""

from __future__ import annotations

import importlib
from functools import cached_property
from typing import Any

import click

from controller.client import ApiClient
from lab import lifecycle
from lab.errors import BgplabError, LabNotFound, UsageError
from lab.running import RunningLab


class BgplabGroup(click.Group):
    """The command group: a BgplabError from any command is printed and becomes its exit code.
    ``lazy`` names each command's module (controller.cli.<module>:<name>): `bgplab status`
    does not import the drills' analysis or scapy to run."""

    def __init__(self, *args: Any, lazy: dict[str, str] | None = None, **kw: Any):
        super().__init__(*args, **kw)
        self.lazy = lazy or {}

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self.lazy})

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name in self.lazy:
            module, _, attr = self.lazy[name].partition(":")
            return getattr(importlib.import_module(module), attr)
        return super().get_command(ctx, name)

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except BgplabError as e:
            click.echo(f"error: {e}", err=True)
            for note in getattr(e, "__notes__", []):
                click.echo(f"  {note}", err=True)
            ctx.exit(e.exit_code)


def pick_lab(lab: str | None) -> str:
    """``lab``, or the only lab that is up."""
    if lab:
        return lab
    running = lifecycle.labs()
    if len(running) == 1:
        return running[0]
    if not running:
        raise LabNotFound("no lab is up (`bgplab up` brings one up)")
    raise UsageError(f"several labs are up ({', '.join(running)}): name one with --lab")


class LabContext:
    """The lab a command acts on: its name (picked when first asked), the running lab (opened
    once) and its Addressing API."""

    def __init__(self, given: str | None):
        self.given = given

    @cached_property
    def name(self) -> str:
        return pick_lab(self.given)

    @cached_property
    def running(self) -> RunningLab:
        return RunningLab.open(self.name)

    def api(self) -> ApiClient:
        return ApiClient(self.name)


def _to_lab(ctx: click.Context, param: click.Parameter, value: str | None) -> LabContext:
    return LabContext(value)


# The one --lab option: every command that acts on a lab takes it, as a LabContext.
lab_option = click.option("--lab", "lab", callback=_to_lab, help="lab name (default: the only lab that is up)")
lab_argument = click.argument("lab", required=False, callback=_to_lab)

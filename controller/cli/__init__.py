"""The `bgplab` command: parse arguments, call the library, print. No logic a test cannot reach.

One module per command group (``COMMANDS`` says which), each imported when its command runs;
what they share (the group, ``--lab`` and the lab it names) is in controller.cli.base."""

from __future__ import annotations

import click

from controller.cli.base import BgplabGroup

# command -> module:attribute
COMMANDS = {
    "up": "controller.cli.lab:up",
    "down": "controller.cli.lab:down",
    "status": "controller.cli.lab:status",
    "exec": "controller.cli.lab:exec_",
    "vtysh": "controller.cli.lab:vtysh",
    "watch": "controller.cli.lab:watch",
    "timeline": "controller.cli.lab:timeline",
    "dashboard": "controller.cli.lab:dashboard",
    "prefixes": "controller.cli.addressing:prefixes",
    "bindings": "controller.cli.addressing:bindings",
    "token": "controller.cli.addressing:token",
    "changes": "controller.cli.pipeline:changes",
    "guardrails": "controller.cli.pipeline:guardrails",
    "snapshots": "controller.cli.pipeline:snapshots",
    "drill": "controller.cli.drill:drill",
    "report": "controller.cli.drill:report",
    "capture": "controller.cli.capture:capture_group",
    "fault": "controller.cli.faults:fault",
    "topology": "controller.cli.topology:topology",
    "export": "controller.cli.topology:export",
    "experiment": "controller.cli.experiment:experiment",
}


@click.group(cls=BgplabGroup, lazy=COMMANDS, context_settings={"help_option_names": ["-h", "--help"]})
def cli() -> None:
    """bgplab: a live BGP lab for outage drills."""


def main() -> None:
    cli()

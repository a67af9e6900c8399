"""`bgplab fault`: break the lab on purpose (links, impairments, daemons, sessions)."""

from __future__ import annotations

import click

from controller.cli.base import lab_option
from lab import faults


@click.group()
def fault() -> None:
    """Break the lab on purpose: links, impairments, daemons, sessions."""


def _link_fault(name: str, help_text: str, action) -> None:
    """A fault command that takes a link (NODE PEER) and nothing else."""

    @fault.command(name=name, help=help_text)
    @lab_option
    @click.argument("node")
    @click.argument("peer")
    def command(lab, node, peer) -> None:
        action(lab.running, node, peer)


_link_fault("link-down", "Carrier down at both ends of the link NODE-PEER.",
            lambda lab, n, p: faults.set_link(lab, n, p, up=False))
_link_fault("link-up", "Carrier up again at both ends of the link NODE-PEER.",
            lambda lab, n, p: faults.set_link(lab, n, p, up=True))
_link_fault("clear", "Remove an impairment from the link NODE-PEER.",
            lambda lab, n, p: faults.clear_impairment(lab, n, p))
_link_fault("session-reset", "Reset the BGP session NODE-PEER (clear bgp on NODE).",
            lambda lab, n, p: faults.session_reset(lab, n, p))


@fault.command(name="flap")
@lab_option
@click.argument("node")
@click.argument("peer")
@click.option("--down", "down_for", type=float, default=2.0, show_default=True, help="seconds down each time")
@click.option("--up", "up_for", type=float, default=2.0, show_default=True, help="seconds up between")
@click.option("--times", type=int, default=1, show_default=True)
def fault_flap(lab, node, peer, down_for, up_for, times) -> None:
    faults.flap(lab.running, node, peer, down_for, times, up_for)


@fault.command(name="impair")
@lab_option
@click.argument("node")
@click.argument("peer")
@click.option("--delay", "delay_ms", type=float, default=0, help="ms")
@click.option("--jitter", "jitter_ms", type=float, default=0, help="ms")
@click.option("--loss", "loss_pct", type=float, default=0, help="%")
@click.option("--rate", "rate_kbit", type=int, help="kbit/s")
def fault_impair(lab, node, peer, delay_ms, jitter_ms, loss_pct, rate_kbit) -> None:
    """Delay, jitter, loss and rate on both ends of the link NODE-PEER (replaces an earlier one)."""
    faults.impair(lab.running, node, peer, delay_ms=delay_ms, jitter_ms=jitter_ms, loss_pct=loss_pct, rate_kbit=rate_kbit)


@fault.command(name="daemon")
@lab_option
@click.argument("node")
@click.argument("name")
@click.argument("action", type=click.Choice(["kill", "stop", "cont", "start"]))
def fault_daemon(lab, node, name, action) -> None:
    """Kill, stop (SIGSTOP), continue or start a daemon: bgplab fault daemon t1 bgpd kill."""
    pid = faults.daemon(lab.running, node, name, action)
    click.echo(f"{name} on {node}: {action} (pid {pid})")



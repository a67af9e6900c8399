"""`bgplab experiment clique`: experiments that check the lab against theory."""

from __future__ import annotations

from pathlib import Path

import click

from controller.experiments import clique
from lab.errors import UsageError
from lab.routers import ROUTERS


@click.group()
def experiment() -> None:
    """Experiments that check the lab against theory."""


def _ints(text: str) -> list[int]:
    try:
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise click.BadParameter(f"{text!r}: a comma-separated list of integers, such as 3,4,5") from None


@experiment.command(name="clique")
@click.option("--n", "ns", default="3,4,5,6", show_default=True, help="clique sizes, comma-separated")
@click.option("--mrai", "mrais", default="0,5,30", show_default=True, help="advertisement intervals (s), comma-separated")
@click.option("--runs", default=3, show_default=True, type=click.IntRange(1, 20), help="withdrawals per case")
@click.option("--out", default="runs/clique", show_default=True, type=click.Path(file_okay=False))
@click.option("--implementation", type=click.Choice(list(ROUTERS)), default="frr", show_default=True,
              help="the routers' implementation (one without an MRAI runs with --mrai 0 only)")
def experiment_clique(ns, mrais, runs, out, implementation) -> None:
    """Labovitz's clique: T_down and UPDATEs after a withdrawal in a full mesh of n FRR
    routers, for each MRAI, beside the (n-2) x MRAI staircase. Writes clique.json and clique.png."""
    sizes, intervals = _ints(ns), _ints(mrais)
    bad = [n for n in sizes if not 3 <= n <= 12] + [m for m in intervals if not 0 <= m <= 600]
    if not sizes or not intervals or bad:
        raise UsageError(f"--n takes sizes from 3 to 12 and --mrai seconds from 0 to 600 (got --n {ns} --mrai {mrais})")
    result = clique.run_grid(sizes, intervals, runs, Path(out), progress=lambda s: click.echo(s, err=True),
                             implementation=implementation)
    click.echo(f"{result['experiment']}; beside: {result['prediction']}")
    click.echo(f"{'n':>3} {'MRAI':>5} {'T_down (s)':>11} {'(n-2)MRAI':>10} {'target band':>16} {'UPDATEs':>8} {'spread':>7}")
    for c in result["cases"]:
        lo, hi = c["bounds_s"]
        click.echo(f"{c['n']:>3} {c['mrai']:>5} {c['t_down_median_s']:>11.2f} {c['staircase_s']:>10} "
                   f"{f'[{lo:g}, {hi:g}]':>16} {c['updates_median']:>8g} {c['spread']:>7.1%}"
                   f"{'' if c['within_bounds'] else '  OUTSIDE'}")
    click.echo(f"wrote {Path(out) / 'clique.json'} and {Path(out) / 'clique.png'}")

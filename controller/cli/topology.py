"""`bgplab topology generate` and `bgplab export containerlab`: topology files in and out."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import click
import yaml

from lab import generate
from lab.export import containerlab
from lab.images.build import image_tag
from lab.plan import build_plan
from lab.topology import load_topology, parse_topology


@click.group()
def topology() -> None:
    """Topology files: generate an Internet-like one."""


def _shares(text: str) -> tuple[tuple[str, float], ...]:
    out = []
    for part in text.split(","):
        name, sep, share = part.strip().partition("=")
        try:
            out.append((name.strip(), float(share) if sep else 1.0))
        except ValueError:
            raise click.BadParameter(f"'{part}': a share is a number (frr=0.5)", param_hint="--implementations") from None
    return tuple(out)


@topology.command(name="generate")
@click.option("--tier1", default=4, show_default=True, help="tier-1 networks (a clique of peers)")
@click.option("--tier2", default=12, show_default=True, help="tier-2 networks (customers of 2-3 tier-1s)")
@click.option("--stubs", default=28, show_default=True, help="stub and eyeball networks (customers of 2 tier-2s)")
@click.option("--pops", default=4, show_default=True, help="the edge's PoPs, each an ExaBGP speaker")
@click.option("--hosts", default=4, show_default=True, help="eyeball networks with an end host")
@click.option("--vantage-points", default=8, show_default=True, help="routers feeding the collector")
@click.option("--tier2-peering", default=0.3, show_default=True, help="chance that two tier-2s peer")
@click.option("--edge-peers", default=4, show_default=True, help="networks each PoP peers with")
@click.option("--mrai", default=30, show_default=True, help="advertisement interval of every session, seconds")
@click.option("--keepalive", default=30, show_default=True)
@click.option("--hold", default=90, show_default=True)
@click.option("--seed", default=1, show_default=True)
@click.option("--implementations", default="frr=1", show_default=True, metavar="NAME=SHARE,...",
              help="router implementations and their shares, e.g. frr=0.5,bird=0.3,gobgp=0.2 (the collector stays frr)")
@click.option("--name", default="internet", show_default=True, help="the topology's (and default lab) name")
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="write here (default: standard output)")
def topology_generate(tier1, tier2, stubs, pops, hosts, vantage_points, tier2_peering, edge_peers, mrai, keepalive,
                      hold, seed, implementations, name, output) -> None:
    """Generate an Internet-like topology: tiers, business relationships, the edge's PoPs,
    the observer and a route collector. The same options give the same file."""

    sizes = generate.Sizes(tier1=tier1, tier2=tier2, stubs=stubs, pops=pops, hosts=hosts, vantage_points=vantage_points,
                           tier2_peering=tier2_peering, edge_peers=edge_peers, seed=seed, mrai=mrai,
                           keepalive=keepalive, hold=hold, implementations=_shares(implementations))
    defaults = generate.Sizes()
    args = " ".join(f"--{k.replace('_', '-')} {v}" for k, v in asdict(sizes).items()
                    if getattr(defaults, k) != v and k != "implementations")
    if sizes.implementations != defaults.implementations:
        args += f" --implementations {implementations}"
    args = " ".join(filter(None, [args, f"--name {name}" if name != "internet" else ""]))
    text = generate.render(sizes, name, args)
    parse_topology(yaml.safe_load(text), output or "<generated>")  # what it writes validates like any file
    if output:
        Path(output).write_text(text)
        click.echo(f"wrote {output}: {sizes.ases} ASes", err=True)
    else:
        click.echo(text, nl=False)


@click.group()
def export() -> None:
    """Write a lab in another tool's format."""


@export.command(name="containerlab")
@click.argument("topology")
@click.option("--name", help="lab name (default: the topology's name)")
@click.option("--out", type=click.Path(file_okay=False), help="directory to write (default: clab-<lab>)")
@click.option("--image", help="node image (default: bgplab:<version>, as `make image` builds it)")
def export_containerlab(topology: str, name: str | None, out: str | None, image: str | None) -> None:
    """TOPOLOGY as a containerlab topology, with each node's configs and start script."""
    plan = build_plan(load_topology(topology), name)
    dest = Path(out or f"clab-{plan.lab}")
    path = containerlab.export(plan, dest, image or image_tag())
    click.echo(f"{path}: {len(plan.nodes)} nodes, {len(plan.topology.links)} links; "
               f"deploy with `containerlab deploy -t {path}`")

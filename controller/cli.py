"""The `bgplab` command: parse arguments, call the library, print. No logic a test cannot reach."""

from __future__ import annotations

import json
import os
import sys
from dataclasses import asdict

import click

from lab import lifecycle
from lab.errors import BgplabError, LabNotFound, UsageError
from lab.runtime import RUNTIMES, get_runtime

DEFAULT_TOPOLOGY = "topologies/byoip-incident.yaml"


def _fail(e: BgplabError) -> None:
    click.echo(f"error: {e}", err=True)
    sys.exit(e.exit_code)


def _pick_lab(lab: str | None) -> str:
    if lab:
        return lab
    running = lifecycle.labs()
    if len(running) == 1:
        return running[0]
    if not running:
        raise LabNotFound("no lab is up (`bgplab up` brings one up)")
    raise UsageError(f"several labs are up ({', '.join(running)}): name one with --lab")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def cli() -> None:
    """bgplab: a live BGP lab for outage drills."""


@cli.command()
@click.argument("topology", default=DEFAULT_TOPOLOGY, required=False)
@click.option("--name", help="lab name (default: the topology's name)")
@click.option("--runtime", type=click.Choice(RUNTIMES), default="netns", show_default=True)
@click.option("--json", "as_json", is_flag=True, help="print the timings as JSON")
@click.option("--status", "show_status", is_flag=True, help="print the status table once it is up")
def up(topology: str, name: str | None, runtime: str, as_json: bool, show_status: bool) -> None:
    """Bring a lab up from TOPOLOGY and wait until it has converged."""
    try:
        report = lifecycle.up(topology, name, runtime=runtime, progress=lambda s: click.echo(f"... {s}", err=True))
    except BgplabError as e:
        _fail(e)
    if as_json:
        click.echo(json.dumps({"lab": report.lab, "frr_version": report.frr_version, "timings": report.timings}))
        return
    counts = report.plan.counts()
    t = report.timings
    click.echo(
        f"lab '{report.lab}' is up: {len(report.plan.nodes)} nodes, {counts['prefixes']} prefixes "
        f"({counts['byoip']} BYOIP), FRR {report.frr_version}"
    )
    click.echo(
        f"  network {t['network']:.2f} s, sessions {t['sessions_established']:.2f} s, "
        f"observer full {t['observer_full']:.2f} s, kernel tables {t['kernel_converged']:.2f} s"
    )
    if show_status:
        click.echo()
        _print_status(report.lab)


@cli.command()
@click.argument("lab", required=False)
@click.option("--all", "all_", is_flag=True, help="every lab on this machine")
def down(lab: str | None, all_: bool) -> None:
    """Remove everything a lab made. Works without its topology file and after a crash."""
    try:
        if all_ and lab:
            raise UsageError("give a lab name or --all, not both")
        targets = lifecycle.labs() if all_ else [_pick_lab(lab)] if not lab else [lab]
        failed = []
        for name in targets:
            try:
                r = lifecycle.down(name)
            except BgplabError as e:
                failed.append(e)
                continue
            msg = f"lab '{name}' removed in {r.seconds:.2f} s" if r.existed else f"lab '{name}' was not up: nothing to do"
            click.echo(msg)
        if not targets:
            click.echo("no lab is up: nothing to do")
        if failed:
            raise failed[0] if len(failed) == 1 else BgplabError("\n".join(str(e) for e in failed))
    except BgplabError as e:
        _fail(e)


def _fmt(counts: dict[str, int] | None) -> str:
    if counts is None:
        return "-"
    return "/".join(str(counts.get(f, 0)) for f in ("ipv4", "ipv6"))


@cli.command()
@click.argument("lab", required=False)
@click.option("--json", "as_json", is_flag=True)
def status(lab: str | None, as_json: bool) -> None:
    """Nodes, daemons, sessions and prefix counts of a lab."""
    try:
        name = _pick_lab(lab)
        if as_json:
            click.echo(json.dumps([asdict(n) for n in lifecycle.status(name)], indent=2))
            return
        _print_status(name)
    except BgplabError as e:
        _fail(e)


def _print_status(name: str) -> None:
    nodes = lifecycle.status(name)
    click.echo(f"lab '{name}'   (prefix counts are ipv4/ipv6)")
    click.echo(f"{'NODE':<11} {'KIND':<7} {'ROLE':<10} {'AS':<7} {'DAEMONS':<22} {'SESSIONS':<9} {'BGP TABLE':<10} {'KERNEL':<10}")
    for n in nodes:
        daemons = " ".join(f"{d}{'' if ok else '(dead)'}" for d, ok in n.daemons.items()) or "-"
        est = sum(s["state"] == "Established" for s in n.sessions)
        sess = f"{est}/{len(n.sessions)}" if n.sessions else "-"
        click.echo(
            f"{n.name:<11} {n.kind:<7} {n.role:<10} {n.asn or '-':<7} {daemons:<22} {sess:<9} {_fmt(n.received):<10} {_fmt(n.installed):<10}"
        )
    click.echo("\nSESSIONS (as the router sees them; received/sent are ipv4/ipv6 prefixes)")
    for n in nodes:
        for s in n.sessions:
            click.echo(
                f"  {n.name:<10} -> {s['peer']:<10} {s.get('address', ''):<14} {s['state']:<12} "
                f"received {_fmt(s.get('received')):<10} sent {_fmt(s.get('sent'))}"
            )
    bad = [f"{n.name}->{s['peer']}" for n in nodes for s in n.sessions if s["state"] != "Established"]
    dead = [f"{n.name}/{d}" for n in nodes for d, ok in n.daemons.items() if not ok]
    if bad or dead:
        click.echo(f"\nnot healthy: {', '.join(dead + bad)}", err=True)
        sys.exit(1)


@cli.command(name="exec", context_settings={"ignore_unknown_options": True})
@click.option("--lab", help="lab name (default: the only lab that is up)")
@click.argument("node")
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
def exec_(lab: str | None, node: str, command: tuple[str, ...]) -> None:
    """Run COMMAND inside NODE's namespace: bgplab exec t1 -- ip route."""
    try:
        name = _pick_lab(lab)
        _, plan = lifecycle.load_plan(name)
        if node not in plan.nodes:
            raise UsageError(f"lab '{name}' has no node '{node}' (nodes: {', '.join(plan.nodes)})")
        argv = get_runtime("netns").exec_argv(name, node, list(command))
    except BgplabError as e:
        _fail(e)
    os.environ["BGPLAB_LAB"] = name
    os.execvp(argv[0], argv)


@cli.command()
@click.option("--lab", help="lab name (default: the only lab that is up)")
@click.argument("node")
@click.option("-c", "commands", multiple=True, help="a vtysh command (repeatable); none: interactive")
def vtysh(lab: str | None, node: str, commands: tuple[str, ...]) -> None:
    """FRR's shell on router NODE."""
    try:
        name = _pick_lab(lab)
        state, plan = lifecycle.load_plan(name)
        if node not in plan.nodes or plan.nodes[node].kind.value != "frr":
            routers = ", ".join(n.name for n in plan.routers())
            raise UsageError(f"lab '{name}' has no router '{node}' (routers: {routers})")
    except BgplabError as e:
        _fail(e)
    argv = ["vtysh", "--vty_socket", str(state.node_dir(node))]
    for c in commands:
        argv += ["-c", c]
    os.execvp(argv[0], argv)


def main() -> None:
    cli()


if __name__ == "__main__":
    main()

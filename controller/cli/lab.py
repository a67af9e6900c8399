"""`bgplab up`, `down`, `status`, `exec`, `vtysh`, `watch`, `timeline` and `dashboard`: a lab's life and a look inside it."""

from __future__ import annotations

import json
import os
import secrets
import sys
import time
import webbrowser
from dataclasses import asdict

import click

from controller import launch
from controller.cli.base import LabContext, lab_argument, lab_option, pick_lab
from controller.client import ApiClient
from controller.observe import mrt
from lab import lifecycle
from lab.errors import BgplabError, UsageError
from lab.procs import mark_env
from lab.kinds import router_of
from lab.routers import ROUTERS
from lab.running import RunningLab
from lab.routers import routers_text
from lab.runtime import RUNTIMES
from lab.topology import Kind


DEFAULT_TOPOLOGY = "topologies/byoip-incident.yaml"

@click.command()
@click.argument("topology", default=DEFAULT_TOPOLOGY, required=False)
@click.option("--name", help="lab name (default: the topology's name)")
@click.option("--runtime", type=click.Choice(RUNTIMES), default="netns", show_default=True)
@click.option("--json", "as_json", is_flag=True, help="print the timings as JSON")
@click.option("--status", "show_status", is_flag=True, help="print the status table once it is up")
@click.option("--controller/--no-controller", default=True, show_default=True,
              help="start the lab's Addressing API and reconciler")
@click.option("--withdrawn", is_flag=True, help="start with every prefix withdrawn (the API advertises them)")
@click.option("--seed", type=int, default=20260220, show_default=True, help="inventory seed")
@click.option("--implementation", type=click.Choice(list(ROUTERS)),
              help="run every router but the collector with this implementation")
def up(topology: str, name: str | None, runtime: str, as_json: bool, show_status: bool,
       controller: bool, withdrawn: bool, seed: int, implementation: str | None) -> None:
    """Bring a lab up from TOPOLOGY and wait until it has converged."""
    progress = lambda s: click.echo(f"... {s}", err=True)  # noqa: E731
    t0 = time.monotonic()
    if withdrawn and not controller:
        raise UsageError("--withdrawn needs the controller: nothing else would ever announce")
    # The controller starts as soon as every daemon runs, and readies itself (its inventory, the
    # edge, its imports) while the lab converges; it touches the lab once `up` has it up.
    pids: list[int] = []

    def start_controller(state, _plan) -> None:
        pids.append(launch.spawn(state, seed=seed, during_up=not withdrawn))

    report = lifecycle.up(topology, name, runtime=runtime, progress=progress, announce=not withdrawn,
                          daemons_started=start_controller if controller else None, implementation=implementation)
    if controller:
        progress("wait for the controller")
        try:
            info = launch.wait(report.running().state, pids[0])
        except BaseException as e:
            # all or nothing: a lab whose controller did not start is removed
            lifecycle.down(report.lab)
            raise BgplabError(f"lab '{report.lab}' did not come up: the controller failed: {e}; the lab was removed") from e
        report.timings["controller"] = round(time.monotonic() - t0, 3)
    if as_json:
        click.echo(json.dumps({"lab": report.lab, "router_versions": report.router_versions, "timings": report.timings,
                               "api": info["url"] if controller else None}))
        return
    counts = report.plan.counts()
    t = report.timings
    tables = "".join(f", Internet table '{n}' ({p.ipv4:,} IPv4 + {p.ipv6:,} IPv6{', not announced yet' if withdrawn else ''})"
                     for n, p in report.plan.tables.items())
    click.echo(
        f"lab '{report.lab}' is up: {len(report.plan.nodes)} nodes, {counts['prefixes']} prefixes "
        f"({counts['byoip']} BYOIP){tables}, {routers_text(report.router_versions)}"
    )
    click.echo(
        f"  network {t['network']:.2f} s, sessions {t['sessions_established']:.2f} s, "
        + (f"observer full {t['observer_full']:.2f} s, kernel tables {t['kernel_converged']:.2f} s" if not withdrawn
           else "nothing announced yet")
    )
    if controller:
        click.echo(f"  Addressing API: {info['url']}  (OpenAPI: {info['url']}/docs)")
    if show_status:
        click.echo()
        _print_status(report.running())


@click.command()
@click.argument("lab", required=False)
@click.option("--all", "all_", is_flag=True, help="every lab on this machine")
def down(lab: str | None, all_: bool) -> None:
    """Remove everything a lab made. Works without its topology file and after a crash."""
    if all_ and lab:
        raise UsageError("give a lab name or --all, not both")
    targets = lifecycle.labs() if all_ else [pick_lab(lab)]
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


def _fmt(counts: dict[str, int] | None) -> str:
    if not counts:  # None, or an implementation that does not count it ({})
        return "-"
    return "/".join(str(counts.get(f, 0)) for f in ("ipv4", "ipv6"))


@click.command()
@lab_argument
@click.option("--json", "as_json", is_flag=True)
def status(lab: LabContext, as_json: bool) -> None:
    """Nodes, daemons, sessions and prefix counts of a lab."""
    running = lab.running
    if as_json:
        click.echo(json.dumps([asdict(n) for n in running.status()], indent=2))
        return
    _print_status(running)


def _print_status(running: RunningLab) -> None:
    nodes = running.status()
    name, runtime = running.name, running.runtime.name
    kind = "containers" if runtime == "docker" else "namespaces"
    click.echo(f"lab '{name}' on the {runtime} runtime ({kind} bgplab-{name}-<node>)   (prefix counts are ipv4/ipv6)")
    click.echo(f"{'NODE':<11} {'KIND':<16} {'ROLE':<10} {'AS':<7} {'DAEMONS':<22} {'SESSIONS':<9} {'BGP TABLE':<10} {'KERNEL':<10}")
    for n in nodes:
        daemons = " ".join(f"{d}{'' if ok else '(dead)'}" for d, ok in n.daemons.items()) or "-"
        est = sum(s["state"] == "Established" for s in n.sessions)
        sess = f"{est}/{len(n.sessions)}" if n.sessions else "-"
        click.echo(
            f"{n.name:<11} {(n.kind + ' ' + n.version if n.version else n.kind):<16} {n.role:<10} {n.asn or '-':<7} {daemons:<22} {sess:<9} {_fmt(n.received):<10} {_fmt(n.installed):<10}"
        )
    click.echo("\nSESSIONS (as the router sees them; received/sent are ipv4/ipv6 prefixes; max UPDATE size as negotiated)")
    for n in nodes:
        for s in n.sessions:
            click.echo(
                f"  {n.name:<10} -> {s['peer']:<10} {s.get('address', ''):<14} {s['state']:<12} "
                f"received {_fmt(s.get('received')):<10} sent {_fmt(s.get('sent')):<10} "
                f"max UPDATE {s.get('message_size') or '?'}"
            )
    bad = [f"{n.name}->{s['peer']}" for n in nodes for s in n.sessions if s["state"] != "Established"]
    dead = [f"{n.name}/{d}" for n in nodes for d, ok in n.daemons.items() if not ok]
    if bad or dead:
        click.echo(f"\nnot healthy: {', '.join(dead + bad)}", err=True)
        sys.exit(1)


@click.command(name="exec", context_settings={"ignore_unknown_options": True})
@lab_option
@click.argument("node")
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
def exec_(lab: LabContext, node: str, command: tuple[str, ...]) -> None:
    """Run COMMAND inside NODE (its namespace, or its container): bgplab exec t1 -- ip route."""
    running = lab.running
    running.node(node)
    argv = running.runtime.exec_argv(running.name, node, list(command), tty=sys.stdin.isatty() and sys.stdout.isatty())
    os.execvpe(argv[0], argv, mark_env(running.name))


@click.command()
@lab_option
@click.argument("node")
@click.option("-c", "commands", multiple=True, help="a command of the router's shell (repeatable); none: interactive")
def vtysh(lab: LabContext, node: str, commands: tuple[str, ...]) -> None:
    """The router's own shell on router NODE (FRR's vtysh)."""
    running = lab.running
    name, plan = running.name, running.plan
    if node not in plan.nodes or plan.nodes[node].kind is not Kind.router:
        routers = ", ".join(n.name for n in plan.routers())
        raise UsageError(f"lab '{name}' has no router '{node}' (routers: {routers})")
    argv = router_of(plan.nodes[node]).shell(running.node_dir(node), list(commands))
    # Inside the node: the container's own shell on the docker runtime (the node's directory
    # is mounted at the same path).
    argv = running.runtime.exec_argv(name, node, argv, tty=sys.stdin.isatty() and not commands)
    os.execvpe(argv[0], argv, mark_env(name))




@click.command()
@lab_option
@click.option("--interval", type=float, default=0.5, show_default=True)
@click.option("--once", is_flag=True, help="print one frame and exit")
def watch(lab, interval, once) -> None:
    """Live prefix counts per router (kernel), at the observer (BGP), and probe results."""
    try:
        with lab.api() as api:
            while True:
                r = api.call("GET", "/v1/lab/observe")["result"]
                frame = _watch_frame(r)
                if once:
                    click.echo(frame)
                    return
                click.clear()
                click.echo(frame)
                time.sleep(interval)
    except KeyboardInterrupt:
        pass


def _watch_frame(r: dict) -> str:
    sample = r.get("sample") or {}
    lines = [time.strftime("%H:%M:%S", time.localtime(sample.get("t", time.time()))) + "  (ipv4/ipv6 lab prefixes)"]
    lines.append(f"{'ROUTER':<12} {'KERNEL':<12}")
    for router, c in sorted(sample.get("kernel", {}).items()):
        lines.append(f"{router:<12} {_fmt(c):<12}")
    for name, c in sorted(sample.get("observer_received", {}).items()):
        how = "its BGP table (no session to a speaker)" if c.get("from") == "table" else "received from the edge"
        lines.append(f"observer {name}, {how}: {_fmt(c) if 'error' not in c else c['error']}")
    probes = r.get("probes", {})
    if probes:
        lines.append("")
        lines.append("PROBES (last 1.5 s)")
        for host, results in sorted(probes.items()):
            total = sum(results.values())
            ok = results.get("ok", 0)
            detail = ", ".join(f"{k} {v}" for k, v in sorted(results.items()))
            lines.append(f"{host:<12} {100 * ok / total:5.1f}% ok   {detail}")
    return "\n".join(lines)


@click.command()
@lab_option
@click.argument("prefix")
def timeline(lab, prefix) -> None:
    """What the collector heard about PREFIX: every announce (with AS path) and withdraw, to the microsecond."""
    running = lab.running
    collectors = [n for n in running.plan.routers() if n.role.value == "collector"]
    if not collectors:
        raise UsageError(f"lab '{running.name}' has no collector")
    peers = {str(s.peer_v4): s.peer for s in collectors[0].sessions}
    feed = router_of(collectors[0]).feed(running.node_dir(collectors[0].name))
    if feed is None:
        raise UsageError(f"the collector '{collectors[0].name}' keeps no MRT feed")
    events = mrt.events(feed, prefix)
    for e in events:
        when = time.strftime("%H:%M:%S", time.localtime(e.t)) + f".{int(e.t % 1 * 1e6):06d}"
        path = " ".join(map(str, e.as_path)) if e.as_path else ""
        click.echo(f"{when}  from {peers.get(e.peer_ip, e.peer_ip):<8} {e.kind:<9} {path}")
    if not events:
        click.echo(f"the collector heard nothing about {prefix}")


def dashboard_url(api: ApiClient, lab: str) -> str:
    """The dashboard's address, with a read-only token of its own in the fragment (never sent
    to a server but the lab's, never in a log line of the API's)."""
    token = api.call("POST", "/v1/lab/tokens", json={"role": "read-only",
                                                     "name": f"dashboard-{secrets.token_hex(3)}"})["result"]["token"]
    return f"{api.url}/dashboard#lab={lab}&token={token}"


@click.command()
@lab_option
@click.option("--open", "open_", is_flag=True, help="open it in a browser when this machine has a display")
def dashboard(lab, open_) -> None:
    """Print the live dashboard's address (loopback; a read-only token in it)."""
    with lab.api() as api:
        url = dashboard_url(api, lab.name)
    click.echo(url)
    if open_:
        open_in_browser(url)


def open_in_browser(target: str) -> None:
    if not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        click.echo("no display here (DISPLAY is not set): open the address above in a browser", err=True)
        return
    if not webbrowser.open(target):
        click.echo("no browser found: open the address above in one", err=True)

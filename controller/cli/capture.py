"""`bgplab capture`: packet captures for Wireshark, merged with a drill's steps as comments."""

from __future__ import annotations

import os
import shlex
import shutil
import time
from pathlib import Path

import click

from controller.cli.base import lab_option
from controller.drills.rundir import RunDir
from controller.drills.captures import step_comments
from controller.observe import wire
from lab import capture
from lab.errors import BgplabError, UsageError
from lab.procs import mark_env
from lab.runtime.netns import net_argv


@click.group(name="capture")
def capture_group() -> None:
    """Packet captures for Wireshark: per interface, merged with drill steps as comments."""


@capture_group.command(name="start")
@lab_option
@click.option("--node", help="every interface of this node")
@click.option("--link", help="both ends of the link A:B")
@click.option("--all", "all_", is_flag=True, help="every interface of the lab (both ends of each link: a merge "
              "holds each packet twice)")
@click.option("--links", "each_link_once", is_flag=True,
              help="one end of every link: each packet once, as a drill captures (merge it for Wireshark)")
@click.option("--bgp-only", is_flag=True, help="only TCP port 179")
@click.option("--ring", type=click.IntRange(min=1), help="ring buffer: files of this many MB (10 files)")
@click.option("--dir", "dest", type=click.Path(file_okay=False), help="where the files go (default: captures/<lab>-<time>)")
def capture_start(lab, node, link, all_, each_link_once, bgp_only, ring, dest) -> None:
    """tcpdump on a node's interfaces, a link's two ends, one end of every link, or everything."""
    running = lab.running
    d = Path(dest) if dest else Path("captures") / f"{running.name}-{time.strftime('%Y%m%dT%H%M%S')}"
    started = capture.start(running, d, node=node, link=link, all_=all_, each_link_once=each_link_once,
                            bgp_only=bgp_only, ring_mb=ring)
    for c in started:
        click.echo(f"{c['node']:<10} {c['iface']:<6} -> {c['file']}")


@capture_group.command(name="stop")
@lab_option
def capture_stop(lab) -> None:
    """Stop every capture of the lab; the files are complete when this returns."""
    stopped = capture.stop(lab.running)
    for c in stopped:
        click.echo(c["file"])
    if not stopped:
        click.echo("no capture was running")


@capture_group.command(name="list")
@lab_option
def capture_list(lab) -> None:
    """The lab's captures and whether they still run."""
    caps = capture.list_(lab.running)
    for c in caps:
        click.echo(f"{c['node']:<10} {c['iface']:<6} {'running' if c['running'] else 'stopped':<8} {c['file']}")


@capture_group.command(name="merge")
@click.argument("directory", type=click.Path(exists=True, file_okay=False))
@click.option("--out", type=click.Path(dir_okay=False), help="default: capture.pcapng beside the captures")
def capture_merge(directory, out) -> None:
    """Merge a run's (or a capture directory's) files into one pcapng, drill steps as packet comments."""
    rd = RunDir(Path(directory))
    capdir = rd.captures if rd.captures.is_dir() else rd.path
    merged = capture.merge(capture.files_in(capdir), Path(out) if out else rd.capture, step_comments(rd))
    click.echo(str(merged))


@capture_group.command(name="wireshark")
@click.argument("path", type=click.Path(exists=True))
def capture_wireshark(path) -> None:
    """The command that opens a merged capture with a BGP display filter (run where there is a display)."""
    p = Path(path)
    merged = p / "capture.pcapng" if p.is_dir() else p
    argv = capture.wireshark_command(merged)
    if os.environ.get("DISPLAY") and shutil.which("wireshark"):
        os.execvp(argv[0], argv)
    click.echo(" ".join(shlex.quote(a) for a in argv))


@capture_group.command(name="stream")
@lab_option
@click.argument("target")
@click.option("--bgp-only", is_flag=True)
def capture_stream(lab, target, bgp_only) -> None:
    """Live capture to stdout: bgplab capture stream t1:eth2 | wireshark -k -i -"""
    running = lab.running
    node, _, iface = target.partition(":")
    if node not in running.plan.nodes or iface not in [i.name for i in running.plan.nodes[node].interfaces]:
        raise UsageError(f"'{target}' is not NODE:IFACE of lab '{running.name}'")
    argv = capture.tcpdump_argv(iface, None, bgp_only=bgp_only)
    full = net_argv(running.name, node, argv)
    os.execvpe(full[0], full, mark_env(running.name))


@capture_group.command(name="analyse")
@click.argument("directory", type=click.Path(exists=True, file_okay=False))
@click.option("--prefix", help="also the AS paths this prefix carried, link by link")
def capture_analyse(directory, prefix) -> None:
    """UPDATEs and NLRI per link direction (controller.observe.wire); path hunting of one prefix on the wire."""
    d = Path(directory)
    files = capture.files_in(d / "captures" if (d / "captures").is_dir() else d)
    if not files:
        raise BgplabError(f"no capture files in {directory}")
    for link, c in sorted(wire.link_counts(files).items()):
        click.echo(f"{link:<32} updates {c['updates']:>5}  announced {c['announced']:>6}  withdrawn {c['withdrawn']:>6}")
    if prefix:
        for t, link, kind, path in wire.prefix_paths(files, prefix):
            click.echo(f"{t:.6f} {link:<32} {kind:<9} {' '.join(map(str, path or ()))}")



"""ExaBGP commands built from typed objects: every one names its neighbors."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest

from lab.daemons.exabgp import Announce, SpeakerChannel, Withdraw, announcements
from lab.errors import SpeakerError
from lab.plan import build_plan
from lab.topology import load_topology

ROOT = Path(__file__).resolve().parents[2]
PLAN = build_plan(load_topology(ROOT / "topologies/byoip-incident.yaml"), "u")
N = ipaddress.ip_network


def test_announce_renders_selector_and_nlri() -> None:
    a = Announce((ipaddress.ip_address("198.18.0.1"), ipaddress.ip_address("198.18.0.3")), None, (N("100.64.0.0/24"), N("100.64.1.0/24")))
    assert a.render() == (
        "neighbor 198.18.0.1 , neighbor 198.18.0.3 announce attributes next-hop self origin igp "
        "nlri 100.64.0.0/24 100.64.1.0/24"
    )


def test_withdraw_renders() -> None:
    w = Withdraw((ipaddress.ip_address("198.18.0.1"),), (N("2001:db8:4000::/48"),))
    assert w.render() == "neighbor 198.18.0.1 withdraw attributes nlri 2001:db8:4000::/48"


@pytest.mark.parametrize("cmd", [Announce((), None, (N("100.64.0.0/24"),)), Withdraw((ipaddress.ip_address("1.1.1.1"),), ())])
def test_empty_commands_are_refused(cmd) -> None:
    with pytest.raises(ValueError):
        cmd.render()


def test_announcements_batch_and_split_families() -> None:
    speaker = PLAN.nodes["edge-fra"]
    prefixes = [p.prefix for p in PLAN.originated_by("edge-fra")]
    cmds = announcements(speaker.sessions, prefixes, batch=1000)
    v4 = [c for c in cmds if c.next_hop is None]
    v6 = [c for c in cmds if c.next_hop is not None]
    assert len(v4) == 6 and all(len(c.neighbors) == 3 for c in v4)
    # 6,000 IPv4: the anycast ones and the PoP's own /24 (not the other PoP's)
    assert sum(len(c.prefixes) for c in v4) == 6000
    # IPv6 per session, each with that session's own IPv6 next hop
    assert len(v6) == 3
    assert {c.next_hop for c in v6} == {s.local_v6 for s in speaker.sessions}
    assert all(len(c.prefixes) == 500 and c.prefixes[0].version == 6 for c in v6)
    assert all(c.render().startswith("neighbor ") for c in cmds)


def test_channel_refuses_command_without_neighbor(tmp_path: Path) -> None:
    import socket

    path = tmp_path / "s.sock"
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(str(path))
    srv.listen(1)
    with SpeakerChannel("edge", path, timeout=1) as ch:
        with pytest.raises(SpeakerError, match="names no neighbor"):
            ch.send("announce route 100.64.0.0/24 next-hop self")
    srv.close()


def test_channel_unreachable_names_speaker(tmp_path: Path) -> None:
    with pytest.raises(SpeakerError, match="speaker edge: cannot reach its API channel"):
        SpeakerChannel("edge", tmp_path / "nothing.sock")


def test_every_command_that_takes_a_lab_gets_the_one_lab_context() -> None:
    """--lab (and status's LAB) is the one shared option: it gives the command a LabContext, never
    a bare name (a command wired otherwise failed with AttributeError when it first ran)."""
    import click

    from controller.cli import cli
    from controller.cli.base import LabContext

    def commands(group: click.Group, ctx: click.Context, path: str = ""):
        for name in group.list_commands(ctx):
            c = group.get_command(ctx, name)
            if isinstance(c, click.Group):
                yield from commands(c, click.Context(c, parent=ctx), f"{path}{name} ")
            else:
                yield f"{path}{name}", c

    checked = 0
    for name, c in commands(cli, click.Context(cli)):
        for p in c.params:
            if p.name == "lab" and name != "down":  # down takes lab names, or --all
                got = p.process_value(click.Context(c), "lab1")
                assert isinstance(got, LabContext) and got.given == "lab1", name
                checked += 1
    assert checked >= 30

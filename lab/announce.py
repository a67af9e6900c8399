"""What the speakers announce when a lab comes up: the pools they originate, and the synthetic
Internet tables (lab.table), each through the speaker's channel, every speaker at once."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable

from lab import feed as gobgp_feed
from lab.daemons import exabgp
from lab.plan import LabPlan, NodePlan
from lab.state import LabState


def _parallel(fn: Callable[[NodePlan], Any], nodes: list[NodePlan]) -> None:
    """Run a per-node step on every node at once; raise the first failure."""
    if not nodes:
        return
    with ThreadPoolExecutor(max_workers=min(8, len(nodes))) as pool:
        for f in [pool.submit(fn, n) for n in nodes]:
            f.result()


def announce_pools(plan: LabPlan, state: LabState) -> None:
    """Every prefix of the pools each speaker originates."""
    def feed(node: NodePlan) -> None:
        prefixes = [p.prefix for p in plan.originated_by(node.name)]
        if not prefixes:
            return
        with exabgp.SpeakerChannel(node.name, exabgp.ExabgpPaths(state.node_dir(node.name)).socket) as ch:
            ch.send_many(exabgp.announcements(node.sessions, prefixes))

    _parallel(feed, plan.speakers())


def announce_tables(plan: LabPlan, state: LabState) -> dict[str, int]:
    """Announce every synthetic Internet table its speakers originate (lab.table), each through
    its feeder (lab.feed): ExaBGP's channel (commands per speaker), or GoBGP given an MRT dump
    (prefixes per speaker)."""
    sent = {}

    def feed(node: NodePlan) -> None:
        if node.feeder == "gobgp":
            tables = [plan.table(pool) for pool in plan.tables_of(node.name)]
            if tables:
                sent[node.name] = sum(gobgp_feed.inject(node, state.node_dir(node.name), tables).prefixes.values())
            return
        commands = []
        for pool in plan.tables_of(node.name):
            commands += exabgp.table_announcements(node.sessions, plan.table(pool))
        if commands:
            with exabgp.SpeakerChannel(node.name, exabgp.ExabgpPaths(state.node_dir(node.name)).socket,
                                       timeout=120) as ch:
                ch.send_many(commands, window=256)
            sent[node.name] = len(commands)

    _parallel(feed, plan.speakers())
    return sent

"""Breaking a lab on purpose: a BGP session reset, a link down and up, a speaker killed and
started again. Each names what it touched; the drill records when.

(The captures issue adds flaps, netem impairments and daemon stops of every kind on top.)
"""

from __future__ import annotations

import signal

from pyroute2 import NetNS

from lab import lifecycle
from lab.daemons import frr
from lab.errors import BgplabError


def _link(lab: str, node: str, peer: str | None):
    _, plan = lifecycle.load_plan(lab)
    if node not in plan.nodes:
        raise BgplabError(f"lab '{lab}' has no node '{node}'")
    if peer is None:
        raise BgplabError(f"a link or session fault on {node} needs a peer")
    iface = next((i for i in plan.nodes[node].interfaces if i.peer == peer), None)
    if iface is None:
        raise BgplabError(f"{node} has no link to '{peer}' (its peers: {', '.join(i.peer for i in plan.nodes[node].interfaces)})")
    return plan, iface


def session_reset(lab: str, node: str, peer: str) -> None:
    """`clear bgp <peer>` on the router: the session goes down and comes back."""
    plan, iface = _link(lab, node, peer)
    if plan.nodes[node].kind.value != "frr":
        raise BgplabError(f"session reset runs on a router; {node} is a {plan.nodes[node].kind.value}")
    state = lifecycle.LabState.load(lab)
    frr.vtysh(frr.FrrPaths(state.node_dir(node)), f"clear bgp {_peer_addr(plan, node, peer)}")


def _peer_addr(plan, node: str, peer: str) -> str:
    return str(next(s.peer_v4 for s in plan.nodes[node].sessions if s.peer == peer))


def set_link(lab: str, node: str, peer: str, up: bool) -> None:
    """Carrier down (or up) at both ends of the link between node and peer, as a router sees it."""
    plan, iface = _link(lab, node, peer)
    for n, ifname in ((node, iface.name), (peer, iface.peer_ifname)):
        with NetNS(plan.nodes[n].namespace) as ns:
            idx = ns.link_lookup(ifname=ifname)[0]
            ns.link("set", index=idx, state="up" if up else "down")


def apply(lab: str, fault: str, node: str, peer: str | None = None) -> None:
    if fault == "session_reset":
        session_reset(lab, node, peer)
    elif fault in ("link_down", "link_up"):
        set_link(lab, node, peer, fault == "link_up")
    elif fault == "kill_speaker":
        lifecycle.stop_daemon(lab, node, "exabgp", sig=signal.SIGKILL)
    elif fault == "start_speaker":
        lifecycle.start_daemon(lab, node, "exabgp")
    else:
        raise BgplabError(f"unknown fault '{fault}' (faults: session_reset, link_down, link_up, kill_speaker, start_speaker)")

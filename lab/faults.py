"""Breaking a lab on purpose: links down, up and flapping; delay, jitter, loss and rate on a
link; a daemon killed, stopped, continued or started again; one BGP session reset.

Every fault is written to ``/run/bgplab/<lab>/faults.jsonl`` with its time, so reports
and merged captures can mark it. Impairments go on both ends of a link, inside the
nodes' namespaces (never on the host).
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from typing import Any

from pyroute2 import NetNS, netns
from pyroute2.netlink.exceptions import NetlinkError

from lab import lifecycle
from lab.daemons import frr
from lab.errors import BgplabError
from lab.state import LabState, lab_dir


def record(lab: str, fault: str, **detail: Any) -> None:
    with open(lab_dir(lab) / "faults.jsonl", "a") as f:
        f.write(json.dumps({"t": time.time(), "fault": fault, **detail}) + "\n")


def _link(lab: str, node: str, peer: str | None):
    _, plan = lifecycle.load_plan(lab)
    if node not in plan.nodes:
        raise BgplabError(f"lab '{lab}' has no node '{node}' (nodes: {', '.join(plan.nodes)})")
    if peer is None:
        raise BgplabError(f"a link or session fault on {node} needs a peer")
    iface = next((i for i in plan.nodes[node].interfaces if i.peer == peer), None)
    if iface is None:
        raise BgplabError(f"{node} has no link to '{peer}' (its peers: {', '.join(i.peer for i in plan.nodes[node].interfaces)})")
    return plan, iface


def _ends(lab: str, node: str, peer: str):
    plan, iface = _link(lab, node, peer)
    return [(plan.nodes[node].namespace, iface.name), (plan.nodes[peer].namespace, iface.peer_ifname)]


def session_reset(lab: str, node: str, peer: str) -> None:
    """`clear bgp <peer>` on the router: the session goes down and comes back."""
    plan, _ = _link(lab, node, peer)
    if plan.nodes[node].kind.value != "frr":
        raise BgplabError(f"session reset runs on a router; {node} is a {plan.nodes[node].kind.value}")
    addr = next(s.peer_v4 for s in plan.nodes[node].sessions if s.peer == peer)
    frr.vtysh(frr.FrrPaths(LabState.load(lab).node_dir(node)), f"clear bgp {addr}")
    record(lab, "session_reset", node=node, peer=peer)


def set_link(lab: str, node: str, peer: str, up: bool) -> None:
    """Carrier down (or up) at both ends of the link between node and peer, as a router sees it."""
    for ns_name, ifname in _ends(lab, node, peer):
        with NetNS(ns_name) as ns:
            idx = ns.link_lookup(ifname=ifname)[0]
            ns.link("set", index=idx, state="up" if up else "down")
    record(lab, "link_up" if up else "link_down", node=node, peer=peer)


def flap(lab: str, node: str, peer: str, down_for: float, times: int = 1, up_for: float = 0.0,
         background: bool = False) -> threading.Thread | None:
    """Down for ``down_for`` seconds, up again, ``times`` times (``up_for`` seconds between)."""

    def run() -> None:
        for i in range(times):
            set_link(lab, node, peer, up=False)
            time.sleep(down_for)
            set_link(lab, node, peer, up=True)
            if i + 1 < times:
                time.sleep(up_for)

    record(lab, "flap", node=node, peer=peer, down_for=down_for, times=times, up_for=up_for)
    if background:
        t = threading.Thread(target=run, name=f"flap-{node}-{peer}", daemon=True)
        t.start()
        return t
    run()
    return None


def impair(lab: str, node: str, peer: str, *, delay_ms: float = 0, jitter_ms: float = 0, loss_pct: float = 0,
           rate_kbit: int | None = None) -> None:
    """Delay, jitter, loss (netem) and/or a rate limit on both ends of a link; replaces any earlier one.

    A rate alone uses tbf, so it works where the kernel has no netem.
    """
    if jitter_ms and not delay_ms:
        raise BgplabError("jitter needs a delay")
    if not (delay_ms or loss_pct or rate_kbit):
        raise BgplabError("an impairment needs at least one of delay, loss, rate")
    for ns_name, ifname in _ends(lab, node, peer):
        with NetNS(ns_name) as ns:
            idx = ns.link_lookup(ifname=ifname)[0]
            _clear(ns, idx)
            try:
                if delay_ms or loss_pct:
                    kw: dict[str, Any] = {"delay": int(delay_ms * 1000), "jitter": int(jitter_ms * 1000), "loss": loss_pct}
                    if rate_kbit:
                        kw["rate"] = f"{rate_kbit}kbit"
                    ns.tc("add", "netem", index=idx, handle="1:", **kw)
                else:
                    ns.tc("add", "tbf", index=idx, handle="1:", rate=f"{rate_kbit}kbit", burst=32 * 1024, latency=400_000)
            except NetlinkError as e:
                if e.code == 2:  # ENOENT: the qdisc kind is not in this kernel
                    raise BgplabError(
                        "this kernel has no netem qdisc (sch_netem): delay, jitter and loss cannot be emulated here; "
                        "a rate alone works (tbf)"
                    ) from None
                raise BgplabError(f"impairing {ifname} in {ns_name}: {e}") from None
    record(lab, "impair", node=node, peer=peer, delay_ms=delay_ms, jitter_ms=jitter_ms, loss_pct=loss_pct, rate_kbit=rate_kbit)


def netem_supported() -> tuple[bool, str]:
    """Whether this kernel has the netem qdisc, asked of a scratch namespace of our own (named
    for this process, removed at once), so the answer does not depend on any lab."""
    name = f"bgplab-netem-probe-{os.getpid()}"
    try:
        with NetNS(name, flags=os.O_CREAT) as ns:
            lo = ns.link_lookup(ifname="lo")[0]
            try:
                ns.tc("add", "netem", index=lo, handle="1:", delay=1000)
            except NetlinkError as e:
                return False, f"adding a netem qdisc answered {e.code} ({e}): this kernel has no sch_netem"
            return True, "netem qdisc added and removed in a scratch namespace"
    finally:
        try:
            netns.remove(name)
        except OSError:
            pass


def _clear(ns: NetNS, idx: int) -> None:
    if any(q.get("TCA_KIND") in ("netem", "tbf") for q in ns.get_qdiscs(index=idx)):
        ns.tc("del", index=idx, root=True)  # back to the kernel's default qdisc


def clear_impairment(lab: str, node: str, peer: str) -> None:
    for ns_name, ifname in _ends(lab, node, peer):
        with NetNS(ns_name) as ns:
            _clear(ns, ns.link_lookup(ifname=ifname)[0])
    record(lab, "clear_impairment", node=node, peer=peer)


def qdiscs(lab: str, node: str, peer: str) -> list[str]:
    """The qdisc kinds on both ends of a link (to show an impairment is there, or gone)."""
    out = []
    for ns_name, ifname in _ends(lab, node, peer):
        with NetNS(ns_name) as ns:
            idx = ns.link_lookup(ifname=ifname)[0]
            out += [q.get("TCA_KIND") for q in ns.get_qdiscs(index=idx)]
    return out


def daemon(lab: str, node: str, name: str, action: str) -> int:
    """kill (SIGKILL, a crash), stop (SIGSTOP, a hang), cont (SIGCONT) or start one daemon of a node."""
    if action == "start":
        pid = lifecycle.start_daemon(lab, node, name)
    elif action == "kill":
        pid = lifecycle.stop_daemon(lab, node, name, sig=signal.SIGKILL)
    elif action in ("stop", "cont"):
        state = LabState.load(lab)
        pid = state.daemons().get(node, {}).get(name) if state else None
        if pid is None:
            raise BgplabError(f"{name} on {node} is not running")
        os.kill(pid, signal.SIGSTOP if action == "stop" else signal.SIGCONT)
    else:
        raise BgplabError(f"unknown daemon action '{action}' (kill, stop, cont, start)")
    record(lab, f"daemon_{action}", node=node, daemon=name, pid=pid)
    return pid


def apply(lab: str, fault: str, node: str, peer: str | None = None) -> None:
    """The drill steps' entry point."""
    if fault == "session_reset":
        session_reset(lab, node, peer)
    elif fault in ("link_down", "link_up"):
        set_link(lab, node, peer, fault == "link_up")
    elif fault == "kill_speaker":
        daemon(lab, node, "exabgp", "kill")
    elif fault == "start_speaker":
        daemon(lab, node, "exabgp", "start")
    else:
        raise BgplabError(f"unknown fault '{fault}' (faults: session_reset, link_down, link_up, kill_speaker, start_speaker)")

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
from typing import Any, Callable, Protocol

from pyroute2 import NetNS, netns
from pyroute2.netlink.exceptions import NetlinkError

from lab.kinds import router_of
from lab.errors import BgplabError
from lab.running import RunningLab
from lab.runtime import netns as netns_runtime
from lab.topology import Kind


def record(lab: RunningLab, fault: str, **detail: Any) -> None:
    with open(lab.dir / "faults.jsonl", "a") as f:
        f.write(json.dumps({"t": time.time(), "fault": fault, **detail}) + "\n")


def _ends(lab: RunningLab, node: str, peer: str | None) -> list[tuple[str, str]]:
    """(namespace, interface) at both ends of the link between node and peer."""
    a, b = lab.link(node, peer)
    return [(lab.node(node).namespace, a.name), (lab.node(peer).namespace, b.name)]


def session_reset(lab: RunningLab, node: str, peer: str) -> None:
    """A hard clear of the session on the router (FRR: `clear bgp <peer>`): it goes down and comes back."""
    lab.link(node, peer)
    n = lab.node(node)
    if n.kind is not Kind.router:
        raise BgplabError(f"session reset runs on a router; {node} is a {n.kind.value}")
    addr = next(s.peer_v4 for s in n.sessions if s.peer == peer)
    router_of(n).clear_session(lab.node_dir(node), str(addr))
    record(lab, "session_reset", node=node, peer=peer)


def set_link(lab: RunningLab, node: str, peer: str, up: bool) -> None:
    """Carrier down (or up) at both ends of the link between node and peer, as a router sees it.
    Up again, each end gets back the addresses and static routes the link took with it."""
    for ns_name, ifname in _ends(lab, node, peer):
        with NetNS(ns_name) as ns:
            idx = ns.link_lookup(ifname=ifname)[0]
            ns.link("set", index=idx, state="up" if up else "down")
    restored: dict[str, list[str]] = {}
    if up:
        a, b = lab.link(node, peer)
        for name, iface in ((node, a), (peer, b)):
            put_back = netns_runtime.restore_link(lab.node(name), iface)
            if put_back:
                restored[name] = put_back
    record(lab, "link_up" if up else "link_down", node=node, peer=peer, **({"restored": restored} if restored else {}))


def flap(lab: RunningLab, node: str, peer: str, down_for: float, times: int = 1, up_for: float = 0.0,
         background: bool = False) -> threading.Thread | None:
    """Down for ``down_for`` seconds, up again, ``times`` times (``up_for`` seconds between)."""
    _ends(lab, node, peer)  # a bad link fails here, not in the background

    def run() -> None:
        for i in range(times):
            set_link(lab, node, peer, up=False)
            time.sleep(down_for)  # the fault's own timing: a link held down this long
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


def impair(lab: RunningLab, node: str, peer: str, *, delay_ms: float = 0, jitter_ms: float = 0, loss_pct: float = 0,
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
        _remove_scratch(name)


def _remove_scratch(name: str) -> None:
    """The scratch namespace goes, whatever happened in it; one that cannot be removed is said,
    with how to remove it by hand (never left behind in silence)."""
    try:
        netns.remove(name)
    except FileNotFoundError:
        pass  # never made: its creation is what failed
    except OSError as e:
        raise BgplabError(f"the scratch namespace {name} could not be removed ({e.strerror}); "
                          f"remove it with: ip netns delete {name}") from e


def _clear(ns: NetNS, idx: int) -> None:
    if any(q.get("TCA_KIND") in ("netem", "tbf") for q in ns.get_qdiscs(index=idx)):
        ns.tc("del", index=idx, root=True)  # back to the kernel's default qdisc


def clear_impairment(lab: RunningLab, node: str, peer: str) -> None:
    for ns_name, ifname in _ends(lab, node, peer):
        with NetNS(ns_name) as ns:
            _clear(ns, ns.link_lookup(ifname=ifname)[0])
    record(lab, "clear_impairment", node=node, peer=peer)


def qdiscs(lab: RunningLab, node: str, peer: str) -> list[str]:
    """The qdisc kinds on both ends of a link (to show an impairment is there, or gone)."""
    out = []
    for ns_name, ifname in _ends(lab, node, peer):
        with NetNS(ns_name) as ns:
            idx = ns.link_lookup(ifname=ifname)[0]
            out += [q.get("TCA_KIND") for q in ns.get_qdiscs(index=idx)]
    return out


def daemon(lab: RunningLab, node: str, name: str, action: str) -> int:
    """kill (SIGKILL, a crash), stop (SIGSTOP, a hang), cont (SIGCONT) or start one daemon of a node."""
    if action == "start":
        pid = lab.start_daemon(node, name)
    elif action == "kill":
        pid = lab.stop_daemon(node, name, sig=signal.SIGKILL)
    elif action in ("stop", "cont"):
        pid = lab.signal_daemon(node, name, signal.SIGSTOP if action == "stop" else signal.SIGCONT)
    else:
        raise BgplabError(f"unknown daemon action '{action}' (kill, stop, cont, start)")
    record(lab, f"daemon_{action}", node=node, daemon=name, pid=pid)
    return pid


class FaultSpec(Protocol):
    """What a fault needs (a drill's fault step has these fields)."""

    node: str
    peer: str | None
    daemon: str | None
    action: str | None
    down_for: float
    times: int
    delay_ms: float
    jitter_ms: float
    loss_pct: float
    rate_kbit: int | None


# A fault kind -> what it does: one entry and one function per kind; drills name these.
FAULTS: dict[str, Callable[[RunningLab, FaultSpec], Any]] = {
    "session_reset": lambda lab, f: session_reset(lab, f.node, f.peer),
    "link_down": lambda lab, f: set_link(lab, f.node, f.peer, up=False),
    "link_up": lambda lab, f: set_link(lab, f.node, f.peer, up=True),
    "link_flap": lambda lab, f: flap(lab, f.node, f.peer, f.down_for, f.times, up_for=f.down_for, background=True),
    "impair": lambda lab, f: impair(lab, f.node, f.peer, delay_ms=f.delay_ms, jitter_ms=f.jitter_ms,
                                    loss_pct=f.loss_pct, rate_kbit=f.rate_kbit),
    "clear_impairment": lambda lab, f: clear_impairment(lab, f.node, f.peer),
    "daemon": lambda lab, f: daemon(lab, f.node, f.daemon, f.action),
    "kill_speaker": lambda lab, f: daemon(lab, f.node, "exabgp", "kill"),
    "start_speaker": lambda lab, f: daemon(lab, f.node, "exabgp", "start"),
}

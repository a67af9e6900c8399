"""A lab that is up: its plan, its runtime and its record, opened once and passed on.

Rebuilding a lab's plan from its record costs about 95 ms for the reference lab;
capture, faults, the controller and drills take a ``RunningLab`` instead of a lab
name, so a drill builds its plan once, not several times a step. The plan and the
runtime do not change while a lab is up; the record does (daemons restarted, captures
started, the controller's helpers), so ``state`` is read afresh each time it is asked.
"""

from __future__ import annotations

import os
import signal
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lab.errors import BgplabError, LabNotFound, UsageError
from lab.kernel import count_lab_routes_fast
from lab.kinds import daemon_for, router_of
from lab.plan import Interface, LabPlan, NodePlan, build_plan
from lab.procs import alive, rss_total_kib
from lab.runtime import Runtime, get_runtime
from lab.state import LabState, lab_dir
from lab.topology import Kind, parse_topology
from lab.wait import wait_until

# How many times a plan was built from a lab's record in this process: the drill reports it.
PLANS_BUILT = {"count": 0}


@dataclass
class NodeStatus:
    name: str
    kind: str
    role: str
    asn: int | None
    daemons: dict[str, bool]
    sessions: list[dict[str, Any]]
    received: dict[str, int] | None  # BGP table, pool prefixes and others
    installed: dict[str, int] | None  # kernel, pool prefixes only
    rss_kib: int
    version: str | None = None  # a router's implementation's, as the binary its node runs says


class RunningLab:
    def __init__(self, name: str, plan: LabPlan, runtime: Runtime):
        self.name, self.plan, self.runtime = name, plan, runtime

    @classmethod
    def open(cls, name: str) -> "RunningLab":
        """The lab ``name`` as its record describes it (the topology file may be gone)."""
        state = LabState.load(name)
        if state is None:
            raise LabNotFound(f"lab '{name}' is not up (labs: {', '.join(LabState.labs()) or 'none'})")
        doc = state.topology_doc
        if doc is None:
            raise LabNotFound(f"lab '{name}' has no usable state record ({state.path}); `bgplab down {name}` removes it")
        PLANS_BUILT["count"] += 1
        return cls(name, build_plan(parse_topology(doc, str(state.path)), name), get_runtime(state.runtime))

    @property
    def state(self) -> LabState:
        state = LabState.load(self.name)
        if state is None:
            raise LabNotFound(f"lab '{self.name}' is no longer up")
        return state

    @property
    def dir(self) -> Path:
        return lab_dir(self.name)

    def node_dir(self, node: str) -> Path:
        return self.dir / "nodes" / node

    def node(self, name: str) -> NodePlan:
        """The node called ``name``; the one error message for a name the lab does not have."""
        try:
            return self.plan.nodes[name]
        except KeyError:
            raise UsageError(f"lab '{self.name}' has no node '{name}' (nodes: {', '.join(self.plan.nodes)})") from None

    def link(self, node: str, peer: str | None) -> tuple[Interface, Interface]:
        """Both ends of the link between ``node`` and ``peer``: (node's interface, peer's interface)."""
        n = self.node(node)
        if peer is None:
            raise UsageError(f"a link or session fault on {node} needs a peer")
        iface = next((i for i in n.interfaces if i.peer == peer), None)
        if iface is None:
            raise UsageError(f"{node} has no link to '{peer}' (its peers: {', '.join(i.peer for i in n.interfaces)})")
        other = next(i for i in self.plan.nodes[peer].interfaces if i.link == iface.link)
        return iface, other

    # -- status -------------------------------------------------------------------------

    def status(self, *, kernel: bool = True) -> list[NodeStatus]:
        state, plan = self.state, self.plan
        out = []
        sizes = state.message_sizes  # negotiated, recorded when the sessions came up
        for node in plan.nodes.values():
            daemons = state.daemons().get(node.name, {})
            up = {d: alive(pid) for d, pid in daemons.items()}
            sessions: list[dict[str, Any]] = []
            received = installed = None
            router = router_of(node) if node.kind is Kind.router else None
            if router is not None and up.get(router.daemons[-1].name):  # its BGP daemon (started last)
                nd = self.node_dir(node.name)
                try:
                    live = router.sessions(nd)
                    received = router.received(nd)
                except BgplabError as e:
                    live = {}
                    sessions.append({"peer": "?", "state": f"{router.label} did not answer: {e}"})
                for s in node.sessions:
                    info = live.get(str(s.peer_v4), {})
                    sessions.append({"peer": s.peer, "address": str(s.peer_v4), "state": info.get("state", "unknown"),
                                     "received": info.get("received", {}), "sent": info.get("sent", {}),
                                     "message_size": sizes.get(f"{node.name}<-{s.peer}")})
            if node.kind is Kind.router and node.installs_routes and kernel:
                installed = count_lab_routes_fast(node.namespace, plan.pool_keys)
            # a router shows as its implementation (frr), as topologies used to name it; a speaker
            # as what runs it (lab.feed)
            kind = node.implementation or ("gobgp feeder" if node.feeder == "gobgp" else node.kind.value)
            out.append(NodeStatus(node.name, kind, node.role.value, node.asn, up, sessions, received, installed,
                                  rss_total_kib(pid for d, pid in daemons.items() if up[d])[0],
                                  state.router_versions.get(node.implementation) if node.implementation else None))
        return out

    # -- one daemon at a time (the fault primitives build on these) ------------------------

    def _daemon_pid(self, node: str, daemon: str) -> int | None:
        daemon_for(self.node(node), daemon)  # a name the node does not run is an error that lists what it runs
        return self.state.daemons().get(node, {}).get(daemon)

    def stop_daemon(self, node: str, daemon: str, sig: int = signal.SIGTERM, timeout: float = 5.0) -> int:
        """Signal one daemon of a node (SIGTERM by default, SIGKILL for a crash) and wait until it is gone."""
        pid = self._daemon_pid(node, daemon)
        if pid is None or not alive(pid):
            raise BgplabError(f"{daemon} on {node} is not running")
        os.kill(pid, signal.Signals(sig))
        wait_until(lambda: (not alive(pid), f"pid {pid} still alive"), timeout=timeout, what=f"{daemon} on {node} to stop")
        try:
            os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            pass
        return pid

    def signal_daemon(self, node: str, daemon: str, sig: int) -> int:
        """Send a signal to a running daemon (SIGSTOP: a hang, SIGCONT: it goes on)."""
        pid = self._daemon_pid(node, daemon)
        if pid is None or not alive(pid):
            raise BgplabError(f"{daemon} on {node} is not running")
        os.kill(pid, sig)
        return pid

    def start_daemon(self, node: str, daemon: str, timeout: float = 20.0) -> int:
        """Start one daemon of a node again, as `up` started it; return its new PID once it is ready."""
        old = self._daemon_pid(node, daemon)
        if old is not None and alive(old):
            raise BgplabError(f"{daemon} on {node} is already running (pid {old})")
        n = self.node(node)
        d = daemon_for(n, daemon)
        tools = self.runtime.tools(self.plan.tools_needed)
        nd = self.node_dir(node)
        pid = self.runtime.spawn(self.name, n, d.argv(n, nd, tools), log=nd / f"{daemon}.out", env=d.environment())
        self.state.add_daemon(node, daemon, pid)
        wait_until(lambda: (d.ready(nd), f"{d.name} not ready yet"), timeout=timeout, what=f"{daemon} on {node} to be ready")
        return pid

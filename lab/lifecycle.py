"""From a topology to running routers (`up`), what is running (`status`), and back to nothing (`down`).

`up` is all or nothing: any failure (or Ctrl-C) removes what was made and reports the
step that failed. `down` runs every step even when one fails, reports all failures,
works from the state record and from the lab's mark alone, and is a no-op the second time.
"""

from __future__ import annotations

import os
import shutil
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Callable

from lab.announce import announce_pools, announce_tables
from lab.daemons import Daemon, Toolset
from lab.errors import BgplabError, DaemonBusy, LabExists, TeardownError, UpFailed
from lab.kernel import count_bgp_routes, count_lab_routes_fast
from lab.kinds import daemons_of, router_of, start_order
from lab.plan import LabPlan, NodePlan, build_plan
from lab.procs import all_marked_labs, alive, end_processes, marked_pids
from lab.runtime import RUNTIMES, Runtime, get_runtime
from lab.runtime.base import cmd_raises
from lab.runtime import netns as netns_ops
from lab.runtime.docker import container_labs
from lab.runtime.netns import NETNS_DIR
from lab.running import RunningLab
from lab.state import LabState, lab_dir
from lab.topology import Kind, check_lab_name, load_topology, notes
from lab.wait import wait_until

Progress = Callable[[str], None]


def _quiet(_: str) -> None:
    pass


@dataclass
class Timeouts:
    daemons: float = 20.0
    sessions: float = 60.0
    converge: float = 120.0


@dataclass
class UpReport:
    lab: str
    plan: LabPlan
    router_versions: dict[str, str]  # per router implementation the lab runs: its version, asked in a node
    # Seconds from the start of `up` to each milestone.
    timings: dict[str, float] = field(default_factory=dict)
    runtime: str = "netns"

    def running(self) -> RunningLab:
        """The lab just brought up, with the plan `up` already built (not built again)."""
        return RunningLab(self.lab, self.plan, get_runtime(self.runtime))


class _Up:
    def __init__(self, plan: LabPlan, rt: Runtime, state: LabState, timeouts: Timeouts, tools: Toolset,
                 net: Any = netns_ops):
        self.plan, self.rt, self.state, self.timeouts, self.net = plan, rt, state, timeouts, net
        self.tools = tools
        self.lab = plan.lab
        self.t0 = time.monotonic()
        self.timings: dict[str, float] = {}

    def mark(self, milestone: str) -> None:
        self.timings[milestone] = round(time.monotonic() - self.t0, 3)

    def nodes_running(self, d: Daemon) -> list[NodePlan]:
        return [n for n in self.plan.nodes.values() if d in daemons_of(n)]

    def render(self) -> None:
        for node in self.plan.nodes.values():
            self.state.node_dir(node.name).mkdir(parents=True, exist_ok=True)
            for d in daemons_of(node):
                d.write(self.lab, node, self.state.node_dir(node.name), self.tools)
        self.mark("configs_written")

    def check(self) -> None:
        """Every daemon's dry run on its config, inside its node (the router and ExaBGP that will
        run it), and each router implementation's version. Needs the nodes, not their links."""

        def dry_run(d: Daemon, node: NodePlan) -> None:
            nd = self.state.node_dir(node.name)
            r = self.rt.exec(self.lab, node, d.check_argv(node, nd, self.tools), timeout=d.check_timeout,
                             env=d.environment())
            d.check_result(node, nd, r.rc, r.out, r.err)

        checks = [(d, n) for d in start_order(self.plan) for n in self.nodes_running(d)]
        with ThreadPoolExecutor(max_workers=4) as pool:
            for f in [pool.submit(dry_run, d, n) for d, n in checks]:
                f.result()
        # Each implementation's version, asked of the binary a node of it runs
        versions = {}
        for r in self.plan.routers():
            if r.implementation not in versions:
                versions[r.implementation] = router_of(r).version(
                    lambda argv, r=r: cmd_raises(self.rt.exec(self.lab, r, argv, timeout=10), f"node {r.name}").out,
                    self.tools)
        self.state.set(router_versions=versions)
        self.mark("configs_checked")

    def nodes(self) -> None:
        nodes = list(self.plan.nodes.values())
        for node in nodes:
            # Recorded before they exist: a SIGKILL between the two still gets them removed.
            self.state.will_create_namespace(node.namespace)
        self.rt.create_nodes(self.lab, nodes)
        self.mark("nodes")

    def links_and_check(self) -> None:
        """The links and routes, while the daemons' dry runs go on in their nodes beside them.
        Measured on the reference lab, 2 cores: nodes to checked 1.5-2.0 s, where one after the
        other took 1.7-2.0 s (the dry runs alone 0.6-0.8 s): the cores, not the order, are the
        limit. Both run to their end (leaving the block waits for the dry runs); the links'
        failure is said first."""
        with ThreadPoolExecutor(max_workers=1) as side:
            checked = side.submit(self.check)
            self.network()
        checked.result()

    def network(self) -> None:
        for i in range(len(self.plan.topology.links)):
            a, b = self.plan.topology.link_endpoints(i)
            na, nb = self.plan.nodes[a], self.plan.nodes[b]
            ifa = next(x for x in na.interfaces if x.link == i)
            ifb = next(x for x in nb.interfaces if x.link == i)
            self.net.add_link(na, ifa, nb, ifb)
        for node in self.plan.hosts() + self.plan.speakers():
            self.net.add_routes(node)
        self.mark("network")

    def _running(self, node: str, daemon: str) -> tuple[bool, str]:
        pid = self.state.daemons().get(node, {}).get(daemon)
        if pid is None or not alive(pid):
            tail = self.state.daemon_output(node, daemon)[-400:]
            raise BgplabError(f"{daemon} on {node} exited at start: {tail or '(no output)'}")
        return True, ""

    def start(self, d: Daemon) -> None:
        """Start ``d`` on every node that runs it, then wait until each is ready (its order
        relative to the others is the daemons' own: ``lab.kinds.start_order``).

        A daemon that exits meanwhile fails the wait at once, with the tail of its output.
        """
        nodes = self.nodes_running(d)
        for node in nodes:
            nd = self.state.node_dir(node.name)
            pid = self.rt.spawn(self.lab, node, d.argv(node, nd, self.tools), log=nd / f"{d.name}.out", env=d.environment())
            self.state.add_daemon(node.name, d.name, pid)

        def all_ready() -> tuple[bool, str]:
            missing = [n.name for n in nodes if not d.ready(self.state.node_dir(n.name))]
            for n in missing:
                self._running(n, d.name)
            return not missing, f"{d.name} not ready yet on {', '.join(missing)}"

        wait_until(all_ready, timeout=self.timeouts.daemons, what=f"{d.name} to be ready on every node")
        self.mark(f"{d.name}_started")

    def wait_sessions(self) -> None:
        def established() -> tuple[bool, str]:
            down = []
            for node in self.plan.routers():
                for addr, s in router_of(node).sessions(self.state.node_dir(node.name)).items():
                    if s["state"] != "Established":
                        down.append(f"{node.name}->{s.get('description', addr).split()[0]} {s['state']}")
            return not down, ", ".join(down[:8]) + (f" (+{len(down) - 8} more)" if len(down) > 8 else "")

        wait_until(established, timeout=self.timeouts.sessions, what="every BGP session to be Established", interval=0.1)
        self.mark("sessions_established")
        # What each session negotiated: the message size bounds how packed an UPDATE can be.
        sizes = {}
        for node in self.plan.routers():
            got = router_of(node).message_sizes(self.state.node_dir(node.name))
            for s in node.sessions:
                sizes[f"{node.name}<-{s.peer}"] = got.get(str(s.peer_v4))
        self.state.set(message_sizes=sizes)

    def announce(self) -> None:
        announce_pools(self.plan, self.state)
        if self.plan.tables:
            announce_tables(self.plan, self.state)
        self.mark("announced")

    def wait_converged(self) -> None:
        plan = self.plan
        observers = plan.peer_routers()
        # A full table takes tens of seconds, and asking a router with a million routes for
        # counts 20 times a second would take CPU from the routers it is waiting for.
        poll = 1.0 if plan.tables else 0.05
        converge = self.timeouts.converge + sum(c["ipv4"] + c["ipv6"] for c in plan.expected_table.values()) / 5000

        def observer_full() -> tuple[bool, str]:
            seen = []
            for node in observers:
                try:
                    live = router_of(node).sessions(self.state.node_dir(node.name))  # once per router and poll
                except DaemonBusy as e:  # busy converging: not yet
                    seen.append(f"{node.name} busy ({e})")
                    continue
                for s in node.sessions:
                    if s.peer_kind is not Kind.exabgp:
                        continue
                    want = {f: sum(1 for p in plan.originated_by(s.peer) if p.family == f) for f in ("ipv4", "ipv6")}
                    for pool in plan.tables_of(s.peer):
                        want["ipv4"] += plan.tables[pool].ipv4
                        want["ipv6"] += plan.tables[pool].ipv6
                    got = live.get(str(s.peer_v4), {}).get("received", {})
                    if any(got.get(f, 0) != want[f] for f in want):
                        seen.append(f"{node.name} has {got} from {s.peer}, wants {want}")
            return not seen, "; ".join(seen)

        if observers:
            wait_until(observer_full, timeout=converge, what="the observer to receive every prefix", interval=poll)
        self.mark("observer_full")

        def ribs() -> tuple[bool, str]:
            short = []
            for node in plan.routers():
                try:
                    got = router_of(node).received(self.state.node_dir(node.name))
                except DaemonBusy as e:  # a single-threaded daemon busy converging: not yet
                    short.append(f"{node.name} busy ({e})")
                    continue
                want = plan.expected_rib[node.name]
                if got != want:
                    short.append(f"{node.name} BGP table {got}, wants {want}")
            return not short, "; ".join(short)

        wait_until(ribs, timeout=converge, what="every router's BGP table to hold its prefixes", interval=poll)
        self.mark("bgp_converged")

        def kernels() -> tuple[bool, str]:
            short = []
            for node in plan.routers():
                if not node.installs_routes:
                    continue
                got = count_lab_routes_fast(node.namespace, plan.pool_keys)
                want = {f: len(s) for f, s in plan.expected[node.name].items()}
                if got != want:
                    short.append(f"{node.name} kernel {got}, wants {want}")
                table = plan.expected_table.get(node.name)
                if table:
                    # BGP routes in the kernel: the table's and the pools' (a router of a
                    # table lab originates no subnets of its own)
                    bgp = count_bgp_routes(node.namespace, router_of(node).kernel_proto)
                    want = {f: table[f] + len(plan.expected[node.name][f]) for f in table}
                    if bgp != want:
                        short.append(f"{node.name} kernel BGP routes {bgp}, wants {want}")
            return not short, "; ".join(short)

        wait_until(kernels, timeout=converge, what="every router's kernel table to hold its prefixes", interval=poll)
        self.mark("kernel_converged")


def up(
    topology_path: str | Path,
    name: str | None = None,
    *,
    runtime: str = "netns",
    progress: Progress = _quiet,
    timeouts: Timeouts | None = None,
    announce: bool = True,
    rt: Runtime | None = None,
    net: Any = netns_ops,
    daemons_started: Callable[[LabState, LabPlan], Any] | None = None,
    implementation: str | None = None,
) -> UpReport:
    """Bring a lab up and wait until it has converged; all or nothing.

    With ``announce=False`` the speakers start with nothing announced (a controller
    then decides what they say), and `up` ends once every session is Established.
    ``daemons_started`` is called with the lab's record and plan once every daemon runs, while the
    sessions come up and the lab converges (`bgplab up` starts the controller there, which
    readies itself meanwhile); what it starts is the lab's and goes with it if `up` fails.
    ``rt`` and ``net`` replace the runtime and the namespace helpers (unit tests' fakes).
    ``implementation`` runs every router but the collector with that implementation.
    """
    topology = load_topology(topology_path, implementation)  # every validation error, before anything exists
    for note in notes(topology):
        progress(f"note: {note}")
    plan = build_plan(topology, name)
    lab = plan.lab
    rt = rt or get_runtime(runtime)
    rt.prepare(progress)  # e.g. the image, built before anything of the lab exists
    leftovers = rt.nodes_of(lab)
    if leftovers or marked_pids(lab):
        raise LabExists(
            f"lab '{lab}' already has namespaces or processes ({', '.join(leftovers[:4]) or 'processes'}); "
            f"`bgplab down {lab}` removes them"
        )
    tools = rt.tools(plan.tools_needed)  # a missing implementation fails here, before anything exists
    state = LabState.create(lab, runtime, str(Path(topology_path).resolve()))
    state.set(topology_doc=topology.model_dump(mode="json"))
    u = _Up(plan, rt, state, timeouts or Timeouts(), tools, net)
    steps = [
        ("render daemon configs", u.render),
        ("create nodes", u.nodes),
        ("create links and check daemon configs", u.links_and_check),
        *[(f"start {d.name}", partial(u.start, d)) for d in start_order(plan)],
        *([("start the controller", partial(daemons_started, state, plan))] if daemons_started else []),
        ("wait for sessions", u.wait_sessions),
    ]
    if announce:
        steps += [("announce prefixes", u.announce), ("wait for convergence", u.wait_converged)]
    step = "start"
    try:
        for step, fn in steps:
            progress(step)
            fn()
    except BaseException as e:  # Ctrl-C too: never leave half a lab
        problems = _teardown(lab, state, rt)
        raise UpFailed(lab, step, e, problems) from e
    state.set(status="up", timings=u.timings, announced=announce)
    return UpReport(lab, plan, state.router_versions, u.timings, runtime)


def _runtimes(lab: str, state: LabState | None, rt: Runtime | None = None) -> list[Runtime]:
    """The lab's runtime from its record (or ``rt``); without one (or besides it), any runtime
    that finds the lab's things."""
    recorded = rt.name if rt else state.runtime if state else "netns"
    out = [rt or get_runtime(recorded)]
    # Each runtime lists only its own kind (namespaces; containers and their namespace links).
    out += [rt for rt in map(get_runtime, RUNTIMES) if rt.name != recorded and rt.nodes_of(lab)]
    return out


def _teardown(lab: str, state: LabState | None, rt: Runtime | None = None) -> list[str]:
    """Processes first (nothing may hold a node while it goes), then the nodes, then the
    lab's directory; every step runs, and all their problems are returned."""
    problems: list[str] = []
    problems += end_processes(lab, state.pids() if state else [])
    # What a runtime lists by the lab's mark covers the state record's namespaces too.
    for r in _runtimes(lab, state, rt):
        try:
            problems += r.remove(lab, r.nodes_of(lab))
        except Exception as e:  # noqa: BLE001 - reported with the others; the directory still goes
            problems.append(f"removing the nodes ({r.name} runtime): {e}")
    try:
        shutil.rmtree(lab_dir(lab))
    except FileNotFoundError:
        pass
    except OSError as e:
        problems.append(f"{lab_dir(lab)}: {e.strerror}")
    return problems


@dataclass
class DownReport:
    lab: str
    existed: bool
    seconds: float


def down(lab: str, rt: Runtime | None = None) -> DownReport:
    """Remove everything lab ``lab`` made; a no-op if nothing is left. Needs no topology file."""
    check_lab_name(lab)
    t0 = time.monotonic()
    state = LabState.load(lab)
    existed = bool(state or marked_pids(lab) or any(r.nodes_of(lab) for r in _runtimes(lab, state, rt)))
    problems = _teardown(lab, state, rt) if existed else []
    if problems:
        raise TeardownError(lab, problems)
    return DownReport(lab, existed, time.monotonic() - t0)


def labs() -> list[str]:
    """Every lab with anything left on this machine: a state record, a namespace, a container or a marked process."""
    found = set(LabState.labs()) | all_marked_labs() | container_labs()
    try:
        # Lab names hold no '-', so the lab is the second field of `bgplab-<lab>-<node>`.
        found |= {n.split("-")[1] for n in os.listdir(NETNS_DIR) if n.startswith("bgplab-") and n.count("-") >= 2}
    except FileNotFoundError:
        pass
    return sorted(found)

"""The default runtime: one network namespace per node, veth links, all through pyroute2.

Nothing here touches the host's namespace: veth pairs are created inside one node's
namespace with their peer end placed directly in the other's, so no interface ever
appears on the host, and sysctls are written from inside each namespace.
"""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
from pathlib import Path

from pyroute2 import NetNS, netns
from pyroute2.netlink.exceptions import NetlinkError

from lab.daemons import exabgp
from lab.routers import get_router
from lab.errors import BgplabError
from lab.plan import Interface, NodePlan, namespace_name
from lab.procs import mark_env
from lab.runtime.base import ExecResult, Toolset, cmd_raises

NETNS_DIR = Path("/run/netns")

# Forwarding on, DAD off (a lab's addresses are unique by plan; DAD would only delay
# IPv6 by a second), inside the namespace only.
SYSCTLS = [
    "net.ipv4.ip_forward=1",
    "net.ipv6.conf.all.forwarding=1",
    "net.ipv6.conf.default.accept_dad=0",
    "net.ipv6.conf.all.accept_dad=0",
    "net.ipv4.conf.all.rp_filter=0",
    "net.ipv4.conf.default.rp_filter=0",
    # IPv6 routes a namespace may hold: older kernels default to 4,096, a full table has 200,000
    "net.ipv6.route.max_size=2147483647",
]


def _nsenter() -> str:
    path = shutil.which("nsenter")
    if not path:
        raise BgplabError("nsenter (util-linux) is not installed; run `make lab-up` to install what is missing")
    return path


def netns_entries(lab: str, *, links: bool) -> list[str]:
    """The lab's names in /run/netns: its namespaces, or (``links``) its links to containers' namespaces."""
    prefix = namespace_name(lab, "")
    try:
        names = os.listdir(NETNS_DIR)
    except FileNotFoundError:
        return []
    return sorted(n for n in names if n.startswith(prefix) and (NETNS_DIR / n).is_symlink() == links)


def configure_loopback(node: NodePlan) -> None:
    """lo up, with the node's loopback addresses (routers and speakers)."""
    with NetNS(node.namespace) as ns:
        lo = ns.link_lookup(ifname="lo")[0]
        ns.link("set", index=lo, state="up")
        if node.kind.value != "host":
            ns.addr("add", index=lo, address=str(node.loopback_v4.ip), prefixlen=32)
            ns.addr("add", index=lo, address=str(node.loopback_v6.ip), prefixlen=128)


# -- a node's network, from the host: the same for namespaces and containers -------------
# (a container's namespace is linked under /run/netns as well, so both runtimes use these)


def ns_path(lab: str, node: str) -> str:
    return str(NETNS_DIR / namespace_name(lab, node))


def add_link(a: NodePlan, ifa: Interface, b: NodePlan, ifb: Interface) -> None:
    """A veth pair made inside a's namespace with its peer end placed straight into b's,
    addressed and up at both ends: no interface ever appears on the host."""
    with NetNS(a.namespace) as nsa:
        nsa.link("add", ifname=ifa.name, kind="veth", peer={"ifname": ifb.name, "net_ns_fd": str(NETNS_DIR / b.namespace)})
    for node, iface in ((a, ifa), (b, ifb)):
        with NetNS(node.namespace) as ns:
            idx = ns.link_lookup(ifname=iface.name)[0]
            ns.addr("add", index=idx, address=str(iface.v4.ip), prefixlen=iface.v4.network.prefixlen)
            ns.addr("add", index=idx, address=str(iface.v6.ip), prefixlen=iface.v6.network.prefixlen)
            ns.link("set", index=idx, state="up")


def _routes_via(node: NodePlan, iface: Interface | None) -> list[tuple[str, str, int]]:
    """The node's static default routes (destination, gateway, family), all or those through one interface."""
    out: list[tuple[str, str, int]] = []
    if node.gateway_v4 is not None and (iface is None or node.gateway_v4 in iface.v4.network):
        out.append(("0.0.0.0/0", str(node.gateway_v4), 2))
    if node.gateway_v6 is not None and (iface is None or node.gateway_v6 in iface.v6.network):
        out.append(("::/0", str(node.gateway_v6), 10))
    return out


def restore_link(node: NodePlan, iface: Interface) -> list[str]:
    """Put back what taking a link down took from a node: the kernel drops a link's IPv6
    addresses when it goes down (keep_addr_on_down is 0) and every route through it. A real
    router's configuration outlives a carrier loss; without this, a speaker whose first link
    went down and up again had no default route and could answer nothing but its neighbours.
    Returns what was put back."""
    done: list[str] = []
    with NetNS(node.namespace) as ns:
        idx = ns.link_lookup(ifname=iface.name)[0]
        have = {a.get_attr("IFA_ADDRESS") for a in ns.get_addr(index=idx)}
        for addr in (iface.v4, iface.v6):
            if str(addr.ip) not in have:
                ns.addr("add", index=idx, address=str(addr.ip), prefixlen=addr.network.prefixlen)
                done.append(f"{iface.name} {addr}")
        for dst, gw, family in _routes_via(node, iface):
            try:
                ns.route("add", dst=dst, gateway=gw, family=family)
                done.append(f"{dst} via {gw}")
            except NetlinkError as e:
                if e.code != errno.EEXIST:
                    raise
    return done


def add_routes(node: NodePlan) -> None:
    """Static routes a node needs before its daemons run: default routes, a speaker's local pools."""
    with NetNS(node.namespace) as ns:
        for dst, gw, family in _routes_via(node, None):
            ns.route("add", dst=dst, gateway=gw, family=family)
        lo = ns.link_lookup(ifname="lo")[0]
        for net in node.local_networks:
            # Every address of the pool is local (AnyIP), so the edge can answer on
            # any service address without one address per prefix.
            ns.route(
                "add", dst=str(net), type="local", scope=254, table=255, oif=lo, family=10 if net.version == 6 else 2
            )


def net_argv(lab: str, node: str, argv: list[str]) -> list[str]:
    """The argv that runs a host program in the node's network namespace only."""
    return [_nsenter(), f"--net={ns_path(lab, node)}", "--", *argv]


def spawn_net(lab: str, node: NodePlan, argv: list[str], *, log: Path, env: dict[str, str] | None = None) -> int:
    """Start a host program in the node's network namespace (tcpdump, responders, probes),
    marked with the lab; its PID."""
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            net_argv(lab, node.name, argv),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=mark_env(lab, env),
            # Its own session: the lab outlives the `bgplab up` that started it,
            # and a Ctrl-C in the user's terminal does not reach the daemons.
            start_new_session=True,
        )
    # nsenter execs the program (no fork for --net), so this PID is the program's.
    return proc.pid


class NetnsRuntime:
    name = "netns"

    def prepare(self, progress) -> None:
        exabgp.exabgp_binary()

    def tools(self, implementations: tuple[str, ...]) -> Toolset:
        host = {name: get_router(name).host_tools() for name in implementations}
        return Toolset({n: t[0] for n, t in host.items()}, exabgp.host_launcher(), exabgp.host_bridge(),
                       {n: t[1] for n, t in host.items()})

    def create_nodes(self, lab: str, nodes: list[NodePlan]) -> None:
        # One at a time: pyroute2 makes each namespace through a helper process.
        for node in nodes:
            if (NETNS_DIR / node.namespace).exists():
                raise BgplabError(f"namespace {node.namespace} already exists")
            netns.create(node.namespace)
            cmd_raises(self.exec(lab, node, ["sysctl", "-qw", *SYSCTLS]), f"node {node.name}")
            configure_loopback(node)

    def exec_argv(self, lab: str, node: str, argv: list[str], *, tty: bool = False) -> list[str]:
        return net_argv(lab, node, argv)

    def spawn(self, lab: str, node: NodePlan, argv: list[str], *, log: Path, env: dict[str, str] | None = None) -> int:
        # a namespace node's daemons are host programs in its namespace
        return spawn_net(lab, node, argv, log=log, env=env)

    def exec(self, lab: str, node: NodePlan, argv: list[str], *, timeout: float = 30.0,
             env: dict[str, str] | None = None) -> ExecResult:
        full = net_argv(lab, node.name, argv)
        try:
            p = subprocess.run(
                full, capture_output=True, text=True, timeout=timeout, env=mark_env(lab, env),
                stdin=subprocess.DEVNULL,
            )
        except subprocess.TimeoutExpired as e:
            return ExecResult(full, None, e.stdout or "", e.stderr or "")
        return ExecResult(full, p.returncode, p.stdout, p.stderr)

    def nodes_of(self, lab: str) -> list[str]:
        """The lab's namespaces (links to a container's namespace are the docker runtime's)."""
        return netns_entries(lab, links=False)

    def remove(self, lab: str, names: list[str]) -> list[str]:
        problems = []
        for name in names:
            if not name.startswith(f"bgplab-{lab}-"):
                problems.append(f"refused to remove namespace {name}: it is not lab '{lab}''s")
                continue
            try:
                # Removing the namespace takes its veth ends (and so their peers) with it.
                netns.remove(name)
            except FileNotFoundError:
                pass
            except Exception as e:  # report and go on: teardown runs every step
                problems.append(f"namespace {name}: {e}")
        return problems

"""The Docker runtime: one container per node, through the Docker SDK.

Each node is a container ``bgplab-<lab>-<node>`` of the project's image, labelled
``bgplab.lab=<lab>`` and ``bgplab.node=<node>``, with no Docker network
(``network_mode=none``) and only the capabilities FRR needs. Its network namespace is
linked as ``/run/netns/bgplab-<lab>-<node>`` (as containerlab does), and lab links are
veth pairs made with pyroute2 inside one container's namespace with the peer end
placed straight into the other's, so no interface ever appears on the host and no
packet touches Docker's bridge or the host's network.

Daemons run inside the containers (``docker exec``), from the image's FRR and ExaBGP;
the node's directory ``/run/bgplab/<lab>/nodes/<node>`` is mounted at the same path,
so configs, logs, vty sockets, the ExaBGP API socket and MRT dumps are where the rest
of bgplab looks for them. ``docker logs`` shows the node's daemon output and FRR logs.
"""

from __future__ import annotations

import os
import shutil
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable

from lab.errors import BgplabError
from lab.images.build import ensure_image, image_tag
from lab.kinds import daemons_of
from lab.plan import NodePlan, namespace_name
from lab.procs import MARK
from lab.runtime.base import ExecResult, Toolset
from lab.engine import engine_socket_present, engine
from lab.runtime.netns import NETNS_DIR, configure_loopback, netns_entries
from lab.routers import ROUTERS, get_router
from lab.state import lab_dir
from lab.topology import Kind

LABEL_LAB = "bgplab.lab"
LABEL_NODE = "bgplab.node"


def image_routers() -> dict[str, tuple[Path, tuple[int, int]]]:
    """The router implementations the node image holds (every one in lab.routers.ROUTERS: the
    image installs what each one's ``install`` names): where each one's daemons are, and the
    fixed IDs its daemons run as (root's where they separate their own privileges)."""
    out = {}
    for name in ROUTERS:
        i = get_router(name).install
        if not i.packages:  # nothing the image could install
            continue
        out[name] = (i.tools_dir, (i.image_user[1], i.image_user[2]) if i.image_user else (0, 0))
    return out


IMAGE_EXABGP = "/opt/bgplab/venv/bin/python /opt/bgplab/exabgp_launch.py"  # ExaBGP through the launcher
IMAGE_BRIDGE = "/opt/bgplab/venv/bin/python /opt/bgplab/exabgp_bridge.py"
# Exactly what the daemons need, each one found necessary by leaving it out: FRR's
# privilege code asks for NET_ADMIN, NET_RAW and SYS_ADMIN (zebra) and NET_BIND_SERVICE
# (bgpd, port 179) and refuses to start without them; SETUID/SETGID to drop to its
# user; DAC_OVERRIDE for the root-run start to write into files that user owns.
# Everything else is dropped.
CAPABILITIES = ["NET_ADMIN", "NET_RAW", "NET_BIND_SERVICE", "SYS_ADMIN", "SETUID", "SETGID", "DAC_OVERRIDE"]


def capabilities(implementations) -> list[str]:
    """The node's base set and what the given router implementations add (Install.capabilities)."""
    extra = {c for n in implementations for c in get_router(n).install.capabilities}
    return CAPABILITIES + sorted(extra - set(CAPABILITIES))
SYSCTLS = {
    "net.ipv4.ip_forward": "1",
    "net.ipv6.conf.all.forwarding": "1",
    "net.ipv6.conf.default.accept_dad": "0",
    "net.ipv6.conf.all.accept_dad": "0",
    "net.ipv6.conf.all.disable_ipv6": "0",
    "net.ipv4.conf.all.rp_filter": "0",
    "net.ipv4.conf.default.rp_filter": "0",
    # IPv6 routes a node may hold: older kernels default to 4,096, a full table has 200,000
    "net.ipv6.route.max_size": "2147483647",
}
# Logs a node's container prints (`docker logs`): a router's are its implementation's
# (Router.log_files), a speaker's its daemons' output (each daemon's <name>.out: lab.lifecycle),
# a host's its probe's.
HOST_LOG_FILES = ("probe.out",)


def container_name(lab: str, node: str) -> str:
    # The same name as the node's namespace link: `docker exec` and `ip netns` agree.
    return namespace_name(lab, node)


class DockerRuntime:
    """Nodes, daemons and commands are Docker's; a node's network is reached from the host
    through its namespace link, with the same helpers as the namespace runtime
    (lab.runtime.netns: links, routes, host programs in a node's network)."""

    name = "docker"

    def __init__(self) -> None:
        self._client: Any | None = None
        self._image: str | None = None

    @property
    def client(self) -> Any:
        if self._client is None:
            self._client = engine()
        return self._client

    def prepare(self, progress: Callable[[str], None]) -> None:
        self._image = ensure_image(self.client, progress)

    def tools(self, implementations: tuple[str, ...]) -> Toolset:
        held = image_routers()
        missing = [n for n in implementations if n not in held]
        if missing:
            raise BgplabError(f"the node image has no {', '.join(missing)} (it holds {', '.join(held)}): "
                              "use the netns runtime for these routers")
        return Toolset({n: held[n][0] for n in implementations}, IMAGE_EXABGP, IMAGE_BRIDGE,
                       {n: held[n][1] for n in implementations})

    # -- nodes ---------------------------------------------------------------------

    def create_nodes(self, lab: str, nodes: list[NodePlan]) -> None:
        """The containers at once (each is a round trip to the engine), then each one's namespace link and lo."""
        if self._image is None:

            self._image = image_tag()
        for node in nodes:
            link = NETNS_DIR / node.namespace
            if link.exists() or link.is_symlink():
                raise BgplabError(f"namespace {node.namespace} already exists")
        with ThreadPoolExecutor(max_workers=min(6, len(nodes) or 1)) as pool:
            pids = list(pool.map(lambda n: self._container_up(lab, n), nodes))
        NETNS_DIR.mkdir(parents=True, exist_ok=True)
        for node, pid in zip(nodes, pids):
            os.symlink(f"/proc/{pid}/ns/net", NETNS_DIR / node.namespace)
            configure_loopback(node)

    def _container_up(self, lab: str, node: NodePlan) -> int:
        """Create and start the node's container; its main PID."""
        # The Docker SDK costs ~150 ms of start-up (python -X importtime): imported where the docker
        # runtime talks to the engine, so a namespaces lab never loads it.
        import docker.errors

        name = container_name(lab, node.name)
        node_dir = lab_dir(lab) / "nodes" / node.name
        node_dir.mkdir(parents=True, exist_ok=True)
        logs = []
        router = get_router(node.implementation) if node.implementation else None
        if router:
            files = router.log_files
        elif node.kind is Kind.exabgp:
            files = tuple(f"{d.name}.out" for d in daemons_of(node))  # ExaBGP's, or GoBGP's where it feeds
        else:
            files = HOST_LOG_FILES
        for f in files:
            path = node_dir / f
            path.touch()
            if router:
                os.chown(path, *image_routers()[router.name][1])
            logs.append(str(path))
        try:
            container = self._run(lab, name, node, node_dir, logs)
        except docker.errors.APIError as e:
            raise BgplabError(f"container {name} could not be created: {e.explanation or e}") from None
        container.reload()
        pid = container.attrs["State"]["Pid"]
        if not pid:
            raise BgplabError(f"container {name} did not start: {container.attrs['State'].get('Error') or container.status}")
        return int(pid)

    def _run(self, lab: str, name: str, node: NodePlan, node_dir: Path, logs: list[str]) -> Any:
        """Create and start the node's container (run detached)."""
        return self.client.containers.run(
            self._image,
            # PID 1 is docker-init; the main process follows the node's logs for `docker logs`.
            command=["tail", "-q", "-n", "+1", "-F", *logs],
            name=name,
            hostname=node.name,
            # No network means no DNS: the node's own name comes from /etc/hosts, and any
            # other lookup is refused at once instead of timing out (ExaBGP asks for its FQDN).
            extra_hosts={node.name: "127.0.1.1"},
            dns=["127.0.0.1"],
            detach=True,
            init=True,
            network_mode="none",
            labels={LABEL_LAB: lab, LABEL_NODE: node.name},
            environment={MARK: lab},  # every `docker exec` inherits the lab's mark
            cap_drop=["ALL"],
            # the base set, and what this node's router implementation adds (none for a speaker)
            cap_add=capabilities([node.implementation] if node.implementation else []),
            sysctls=SYSCTLS,
            volumes={str(node_dir): {"bind": str(node_dir), "mode": "rw"}},
            log_config={"type": "json-file", "config": {"max-size": "10m", "max-file": "2"}},
        )

    # -- processes inside a node -----------------------------------------------------

    def exec_argv(self, lab: str, node: str, argv: list[str], *, tty: bool = False) -> list[str]:
        docker_cli = shutil.which("docker")
        if docker_cli is None:
            raise BgplabError("the docker command is not installed; `make docker-engine` installs it")
        return [docker_cli, "exec", "-it" if tty else "-i", container_name(lab, node), *argv]

    def spawn(self, lab: str, node: NodePlan, argv: list[str], *, log: Path, env: dict[str, str] | None = None) -> int:
        api = self.client.api
        # sh execs the daemon with its output appended to the log, so the PID is the daemon's.
        cmd = ["/bin/sh", "-c", 'exec "$@" >>"$0" 2>&1', str(log), *argv]
        ex = api.exec_create(container_name(lab, node.name), cmd, environment={MARK: lab, **(env or {})})
        api.exec_start(ex["Id"], detach=True)
        deadline = time.monotonic() + 10
        while True:
            info = api.exec_inspect(ex["Id"])
            if info.get("Pid"):
                return int(info["Pid"])
            if not info.get("Running") and info.get("ExitCode") is not None:
                raise BgplabError(f"{argv[0]} in {node.name} exited at start ({info['ExitCode']}): "
                                  f"{log.read_text(errors='replace')[-400:] if log.exists() else ''}")
            if time.monotonic() > deadline:
                raise BgplabError(f"{argv[0]} in {node.name} did not start within 10 s")
            time.sleep(0.01)

    def exec(self, lab: str, node: NodePlan, argv: list[str], *, timeout: float = 30.0,
             env: dict[str, str] | None = None) -> ExecResult:
        api = self.client.api
        # The engine has no timeout for exec; coreutils' timeout does it inside (124 = timed out).
        full = ["timeout", "--kill-after=2", str(timeout), *argv]
        ex = api.exec_create(container_name(lab, node.name), full, environment={MARK: lab, **(env or {})})
        out, err = api.exec_start(ex["Id"], demux=True)
        rc = api.exec_inspect(ex["Id"]).get("ExitCode")
        text = (out or b"").decode(errors="replace"), (err or b"").decode(errors="replace")
        return ExecResult(argv, None if rc in (124, 137) else rc, *text)

    # -- what a lab left, and its removal ---------------------------------------------

    def containers(self, lab: str) -> list[Any]:
        if self._client is None and not engine_socket_present():
            return []
        try:
            client = self.client
        except BgplabError:
            return []  # no engine: no containers to find (the netns links are still listed)
        return client.containers.list(all=True, filters={"label": f"{LABEL_LAB}={lab}"})

    def nodes_of(self, lab: str) -> list[str]:
        # with the namespace links, also those left by a crash whose containers are gone
        return sorted({c.name for c in self.containers(lab)} | set(netns_entries(lab, links=True)))

    def remove(self, lab: str, names: list[str]) -> list[str]:
        problems = []
        prefix = f"bgplab-{lab}-"
        mine = {c.name: c for c in self.containers(lab)}

        def remove_one(name: str) -> str | None:
            if not name.startswith(prefix):
                return f"refused to remove {name}: it is not lab '{lab}''s"
            link = NETNS_DIR / name
            c = mine.get(name)
            try:
                if c is not None:
                    if (c.labels or {}).get(LABEL_LAB) != lab:
                        return f"refused to remove container {name}: its label is not bgplab.lab={lab}"
                    c.remove(force=True)  # its namespace, and the veth ends in it, go with it
                if link.is_symlink():
                    link.unlink()
                elif link.exists():  # a bind-mounted namespace of the same name: not ours to judge
                    return f"{link} is not a link to a container's namespace; left alone"
            except Exception as e:  # report and go on: teardown runs every step
                return f"container {name}: {str(e).splitlines()[0][:200]}"
            return None

        with ThreadPoolExecutor(max_workers=8) as pool:
            for p in pool.map(remove_one, names):
                if p:
                    problems.append(p)
        # A `bgplab up` killed while the engine was creating a container: the engine
        # finishes it after its client is gone. Look again, briefly, for such late ones.
        for _ in range(3):
            time.sleep(0.2)
            late = {c.name: c for c in self.containers(lab)}
            if not late:
                break
            mine.update(late)
            with ThreadPoolExecutor(max_workers=8) as pool:
                problems += [p for p in pool.map(remove_one, sorted(late)) if p]
        return problems


def container_labs() -> set[str]:
    """Labs that have containers on the local engine; empty when no engine answers."""
    if not engine_socket_present():
        return set()
    try:
        client = engine(timeout=10)
    except BgplabError:
        return set()
    return {(c.labels or {}).get(LABEL_LAB) for c in client.containers.list(all=True, filters={"label": LABEL_LAB})} - {None}


def lab_containers(lab: str) -> list[dict[str, Any]]:
    """name, node, status and main PID of each of a lab's containers (for status and tests)."""
    rt = DockerRuntime()
    return [
        {"name": c.name, "node": (c.labels or {}).get(LABEL_NODE), "status": c.status,
         "pid": c.attrs.get("State", {}).get("Pid")}
        for c in rt.containers(lab)
    ]


"""A lab's data plane, started by its controller: each PoP's front ends (the edge's machines)
and egress gateway, and the end hosts' servers and probes, each in its node's namespace."""

from __future__ import annotations

import ipaddress
import json
import os
import sys
from pathlib import Path

from controller.edge import EdgeFiles
from controller.inventory import Inventory
from controller.observe.targets import egress_targets, pop_sources, probe_targets
from controller.paths import observe_dir
from controller.products import BY_NAME
from lab.plan import LabPlan
from lab.procs import alive
from lab.runtime.netns import spawn_net
from lab.state import LabState
from lab.wait import wait_until


def start_data_plane(state: LabState, plan: LabPlan, inv: Inventory, seed: int, probes: int,
                     extra: list[str] = (), machines: int = 4) -> None:
    """Each PoP's front ends (controller.observe.responder) and egress gateway, and the end
    hosts' servers and probes, each in its node's namespace."""
    obs = observe_dir(state)
    lengths = ",".join(sorted({f"{p.prefix.version}:{p.prefix.prefixlen}" for p in plan.prefixes}))
    running = state.daemons()
    hosts = plan.hosts()
    host_addr = {h.name: str(h.interfaces[0].v4.ip) for h in hosts}
    origin = f"{host_addr[hosts[0].name]}:9000" if hosts else None
    site = f"{host_addr[hosts[-1].name]}:9001" if hosts else None
    sources = pop_sources(plan)
    dns = inv.meta("resolver_dns")
    web = inv.meta("resolver_web")
    # A speaker that carries only a synthetic table (no pool of the inventory's) serves nothing.
    serving = [n for n in plan.speakers() if plan.originated_by(n.name)]
    for host in hosts:
        if not alive(running.get(host.name, {}).get("origin", -1)):
            argv = [sys.executable, "-m", "controller.observe.origin", "--host", host.name]
            state.add_daemon(host.name, "origin", spawn_net(state.lab, host, argv, log=state.node_dir(host.name) / "origin.out"))
    for node in serving:
        if alive(running.get(node.name, {}).get("responder", -1)):
            continue
        argv = [sys.executable, "-m", "controller.observe.responder", "--edge-db", str(edge_db(state, node.name)),
                "--pop", node.name, "--machines", str(machines), "--lengths", lengths]
        if node.name in sources:
            argv += ["--source", sources[node.name]]
            argv += ["--origin", origin] if origin else []
            argv += ["--site", site] if site else []
        if dns:
            argv += ["--dns-prefix", dns, "--dns-answer", str(ipaddress.ip_network(web).network_address + 1)]
        state.add_daemon(node.name, "responder", spawn_net(state.lab, node, argv, log=state.node_dir(node.name) / "responder.out"))

    # Probes start once every front end and server listens: a refused probe at start is not an outage.
    def listening() -> tuple[bool, str]:
        d = state.daemons()
        waiting = [n.name for n in serving if not _listens(d[n.name]["responder"], 80)]
        waiting += [h.name for h in hosts if not _listens(d[h.name]["origin"], 9000)]
        return not waiting, f"no listener yet on {', '.join(waiting)}"

    wait_until(listening, timeout=20, what="the edge's front ends and the hosts' servers to listen")
    if (probes <= 0 and not extra) or not hosts:
        return
    targets = probe_targets(plan, inv, seed, probes, extra)
    if not sources:
        # Without a PoP's own address the proxies cannot reach an origin: those products are not probed.
        targets = [t for t in targets if BY_NAME[t["product"]].probe != "relay"]
    (obs / "probe-targets.json").write_text(json.dumps(targets, indent=1))
    if not (obs / STAGE_TARGETS).exists():
        write_stage_targets(obs, [])
    for host in hosts:
        if alive(running.get(host.name, {}).get("probe", -1)):
            continue
        argv = [sys.executable, "-m", "controller.observe.probe", "--host", host.name, "--targets",
                str(obs / "probe-targets.json"), "--out", str(obs / "probes.jsonl"),
                "--stage-targets", str(obs / STAGE_TARGETS), "--stage-out", str(obs / STAGE_PROBES)]
        state.add_daemon(host.name, "probe", spawn_net(state.lab, host, argv, log=state.node_dir(host.name) / "probe.out"))
    egress = egress_targets(inv, seed, probes)
    if not egress:
        return
    (obs / "egress-targets.json").write_text(json.dumps(egress, indent=1))
    for node in serving:
        if alive(running.get(node.name, {}).get("egress", -1)):
            continue
        argv = [sys.executable, "-m", "controller.observe.egress", "--pop", node.name, "--edge-db",
                str(edge_db(state, node.name)), "--machines", str(machines), "--lengths", lengths,
                "--targets", str(obs / "egress-targets.json"), "--destination", f"{host_addr[hosts[0].name]}:9100",
                "--destination6", f"[{hosts[0].interfaces[0].v6.ip}]:9100",
                "--out", str(obs / "probes.jsonl")]
        state.add_daemon(node.name, "egress", spawn_net(state.lab, node, argv, log=state.node_dir(node.name) / "egress.out"))


# The staged rollout's own probes: the prefixes of the change in its health window (rewritten
# by the pipeline, controller.changes' on_stage), probed by every end host on the probes' round,
# their results kept apart from the lab's fixed sample so that sample's figures stay its own.
STAGE_TARGETS = "stage-targets.json"
STAGE_PROBES = "stage-probes.jsonl"


def write_stage_targets(obs: Path, targets: list[dict]) -> None:
    """Replace the stage's targets whole (the probes stat the file each round and re-read it)."""
    tmp = obs / f".{STAGE_TARGETS}.tmp"
    tmp.write_text(json.dumps(targets))
    os.replace(tmp, obs / STAGE_TARGETS)


def edge_db(state: LabState, pop: str) -> Path:
    return EdgeFiles.path(state.dir / "edge", pop)


def _listens(pid: int, port: int) -> bool:
    """A socket listening on ``port`` in the network namespace of process ``pid``."""
    for table in ("tcp6", "tcp"):
        try:
            lines = Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            f = line.split()
            if f[3] == "0A" and int(f[1].rsplit(":", 1)[1], 16) == port:
                return True
    return False

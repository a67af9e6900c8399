"""`bgplab export containerlab`: the same lab as a containerlab topology, on the same image.

Writes, into one directory:

- ``<lab>.clab.yml``: every node a ``linux`` node of the bgplab image (labelled
  ``bgplab.lab``/``bgplab.node``), every link an ``a:ethN``/``b:ethM`` pair with the
  interface names bgplab's plan gives them (containerlab's eth0 is its management
  interface; lab links start at eth1, as in bgplab);
- ``nodes/<node>/``: the node's rendered FRR or ExaBGP configs (byte for byte what
  `bgplab up` renders), its announcements, and ``start.sh``, which containerlab runs
  in the node once its links exist (``exec``): forwarding, addresses, routes, then the
  daemons, then the speaker's announcements through its API channel.

Each node directory is bound at ``/run/bgplab/<lab>/nodes/<node>`` inside its container,
the path every config names. The document is checked against containerlab's published
JSON schema (vendored in this directory) before anything is written.

What stays behind: the controller, probes, drills and captures run on bgplab's own
runtimes; the exported lab is the routers and speakers, converged with every prefix.
"""

from __future__ import annotations

import json
import shlex
from functools import lru_cache
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from lab.daemons import exabgp
from lab.errors import BgplabError
from lab.plan import LabPlan, NodePlan
from lab.kinds import router_of
from lab.routers import get_router
from lab.runtime.docker import IMAGE_BRIDGE, IMAGE_EXABGP, LABEL_LAB, LABEL_NODE, SYSCTLS, image_routers
from lab.state import FRR_GROUP
from lab.topology import Kind

SCHEMA = Path(__file__).resolve().parent / "clab.schema.json"


def _owner(implementation: str) -> str:
    """user:group the node's directory goes to in the image: the implementation's user and the
    lab's router group (root's where its daemons separate their own privileges)."""
    user = get_router(implementation).install.image_user
    return f"{user[0]}:{FRR_GROUP}" if user else "root:root"
SCHEMA_URL = "https://raw.githubusercontent.com/srl-labs/containerlab/main/schemas/clab.schema.json"


@lru_cache(maxsize=1)
def schema() -> dict[str, Any]:
    return json.loads(SCHEMA.read_text())


def validate(doc: dict[str, Any]) -> list[str]:
    """Every place ``doc`` breaks containerlab's schema, as 'path: message' lines."""
    validator = jsonschema.Draft7Validator(schema())
    return [f"{'.'.join(str(p) for p in e.absolute_path) or '(top)'}: {e.message}"
            for e in sorted(validator.iter_errors(doc), key=lambda e: list(map(str, e.absolute_path)))]


def node_dir(plan: LabPlan, node: str) -> Path:
    """Where the node's files are inside its container (and where its configs say they are)."""
    return Path(f"/run/bgplab/{plan.lab}/nodes/{node}")


def document(plan: LabPlan, image: str) -> dict[str, Any]:
    nodes: dict[str, Any] = {}
    for n in plan.nodes.values():
        inside = node_dir(plan, n.name)
        nodes[n.name] = {
            "kind": "linux",
            "image": image,
            "group": n.role.value,
            "labels": {LABEL_LAB: plan.lab, LABEL_NODE: n.name, "bgplab.role": n.role.value},
            "binds": [f"nodes/{n.name}:{inside}"],
            "exec": [f"bash {inside}/start.sh"],
        }
    links = []
    for i in range(len(plan.topology.links)):
        a, b = plan.topology.link_endpoints(i)
        ifa = next(x for x in plan.nodes[a].interfaces if x.link == i)
        ifb = next(x for x in plan.nodes[b].interfaces if x.link == i)
        links.append({"endpoints": [f"{a}:{ifa.name}", f"{b}:{ifb.name}"]})
    return {"name": f"bgplab-{plan.lab}", "topology": {"nodes": nodes, "links": links}}


def start_script(plan: LabPlan, node: NodePlan) -> str:
    """What `bgplab up` does for the node, as commands run inside its container."""
    d = node_dir(plan, node.name)
    q = shlex.quote
    lines = [
        "#!/bin/bash",
        f"# Node {node.name} of bgplab lab '{plan.lab}': written by `bgplab export containerlab`; run by containerlab (exec).",
        "set -euo pipefail",
        f"cd {q(str(d))}",
        # Forwarding on, DAD off, as in every bgplab node; written only where they differ
        # (containerlab's nodes are privileged and can; a runtime may have set them already).
        f"for kv in {' '.join(f'{k}={v}' for k, v in SYSCTLS.items())}; do",
        '  [ "$(sysctl -n "${kv%%=*}")" = "${kv#*=}" ] || sysctl -qw "$kv"',
        "done",
        "ip link set lo up",
    ]
    if node.kind is not Kind.host:
        lines += [f"ip addr replace {node.loopback_v4.ip}/32 dev lo", f"ip -6 addr replace {node.loopback_v6.ip}/128 dev lo"]
    for i in node.interfaces:
        lines += [f"ip addr replace {i.v4} dev {i.name}", f"ip -6 addr replace {i.v6} dev {i.name}",
                  f"ip link set {i.name} up"]
    if node.gateway_v4 is not None:
        # The lab's gateway replaces containerlab's default route via the management network
        # (which stays reachable on its own subnet).
        lines += [f"ip route replace default via {node.gateway_v4}", f"ip -6 route replace default via {node.gateway_v6}"]
    for net in node.local_networks:
        fam = "-6 " if net.version == 6 else ""
        lines.append(f"ip {fam}route replace local {net} dev lo table local")
    if node.kind is Kind.router:
        impl = node.implementation
        lines += router_of(node).start_script(node, d, image_routers()[impl][0], _owner(impl))
    elif node.kind is Kind.exabgp:
        paths = exabgp.ExabgpPaths(d)
        env = " ".join(f"{k}={q(v)}" for k, v in exabgp.environment().items())
        lines += [
            f"env {env} setsid {' '.join(map(q, exabgp.argv(paths, IMAGE_EXABGP)))} >>exabgp.out 2>&1 </dev/null &",
            f"for _ in $(seq 300); do [ -S {q(str(paths.socket))} ] && break; sleep 0.1; done",
            # The announcements, through the API channel, one acknowledgement per line.
            "/opt/bgplab/venv/bin/python - <<'EOF'",
            "import socket",
            "s = socket.socket(socket.AF_UNIX)",
            f"s.connect({str(paths.socket)!r})",
            "f = s.makefile('rw')",
            "for line in open('announce.txt'):",
            "    f.write(line); f.flush()",
            "    ack = f.readline().strip()",
            "    while ack not in ('done', 'error'):",
            "        ack = f.readline().strip()",
            "    if ack != 'done':",
            "        raise SystemExit(f'exabgp refused: {line[:120]}')",
            "EOF",
        ]
    return "\n".join(lines) + "\n"


def export(plan: LabPlan, out: Path, image: str) -> Path:
    """Write the containerlab topology and each node's files under ``out``; return the topology file."""
    doc = document(plan, image)
    problems = validate(doc)
    if problems:
        raise BgplabError("the containerlab topology bgplab made breaks containerlab's schema: " + "; ".join(problems[:10]))
    fed = [n.name for n in plan.speakers() if n.feeder == "gobgp"]
    if fed:
        raise BgplabError(f"speaker{'s' if len(fed) > 1 else ''} {', '.join(fed)}: fed by GoBGP (lab.feed), and the "
                          "export writes ExaBGP speakers only (set feeder: exabgp to export this lab)")
    out.mkdir(parents=True, exist_ok=True)
    for n in plan.nodes.values():
        d = out / "nodes" / n.name
        d.mkdir(parents=True, exist_ok=True)
        inside = node_dir(plan, n.name)
        files: dict[str, str] = {}
        if n.kind is Kind.router:
            files = router_of(n).render(plan.lab, n, inside)
        elif n.kind is Kind.exabgp:
            files = exabgp.render(plan.lab, n, exabgp.ExabgpPaths(inside), IMAGE_BRIDGE)
            prefixes = [p.prefix for p in plan.originated_by(n.name)]
            files["announce.txt"] = "".join(c.render() + "\n" for c in exabgp.announcements(n.sessions, prefixes))
        files["start.sh"] = start_script(plan, n)
        for name, text in files.items():
            (d / name).write_text(text)
        (d / "start.sh").chmod(0o755)
    path = out / f"{plan.lab}.clab.yml"
    header = (f"# yaml-language-server: $schema={SCHEMA_URL}\n"
              f"# bgplab lab '{plan.lab}' for containerlab, written by `bgplab export containerlab`.\n"
              f"# Deploy: containerlab deploy -t {path.name}   (the image {image} must be on each host: `make image`)\n")
    path.write_text(header + yaml.safe_dump(doc, sort_keys=False))
    return path

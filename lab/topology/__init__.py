"""What a lab is: nodes, links, ASNs, timers, prefix pools. Pure models, no I/O but reading the file.

Validation is strict (``extra="forbid"``) and reports every problem at once, each with its
path (``nodes.t3.asn: ...``), before anything touches the kernel.

- ``model``: the topology's models (nodes, links, kinds, roles, relationships, timers, pools);
- ``checks``: its problems, pydantic's and the cross-references';
- here: reading and parsing a topology file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from lab.errors import TopologyError
from lab.routers import ROUTERS
from lab.topology.checks import notes, pydantic_problems, semantic_problems
from lab.topology.model import (DEFAULT_TIMERS, LAB_NAME, LINK_V4, LINK_V6, LOOPBACK_V4, LOOPBACK_V6, NODE_NAME,
                                RESERVED, Kind, LongLink, Node, Pool, Relation, Relationship, Role, TablePool, Timers,
                                Topology, check_lab_name, role_relationship)

__all__ = ["DEFAULT_TIMERS", "LAB_NAME", "LINK_V4", "LINK_V6", "LOOPBACK_V4", "LOOPBACK_V6", "NODE_NAME", "RESERVED",
           "Kind", "LongLink", "Node", "Pool", "Relation", "Relationship", "Role", "TablePool", "Timers", "Topology",
           "check_lab_name", "load_topology", "notes", "parse_topology", "with_implementation", "pydantic_problems", "role_relationship"]


def with_implementation(data: dict[str, Any], implementation: str) -> dict[str, Any]:
    """Every router that is not the collector run by ``implementation`` (``bgplab up
    --implementation``): the collector is the lab's measuring instrument, not a subject."""
    nodes = {}
    for name, spec in (data.get("nodes") or {}).items():
        if isinstance(spec, dict) and spec.get("kind") in ("router", "frr") and spec.get("role") != "collector":
            spec = {**spec, "kind": "router", "implementation": implementation}
        nodes[name] = spec
    return {**data, "nodes": nodes}


def parse_topology(data: Any, source: str = "<topology>", implementation: str | None = None) -> Topology:
    """Validate already-loaded data (with every router but the collector run by
    ``implementation`` when one is given). Raises TopologyError with every problem found."""
    if not isinstance(data, dict):
        raise TopologyError(source, [f"(top level): expected a mapping, got {type(data).__name__}"])
    if implementation is not None:
        if implementation not in ROUTERS:
            raise TopologyError(source, [f"--implementation: no router implementation '{implementation}' "
                                         f"(implementations: {', '.join(ROUTERS)})"])
        data = with_implementation(data, implementation)
    try:
        topo = Topology.model_validate(data)
    except ValidationError as e:
        raise TopologyError(source, pydantic_problems(e)) from None
    problems = semantic_problems(topo)
    if problems:
        raise TopologyError(source, problems)
    return topo


def load_topology(path: str | Path, implementation: str | None = None) -> Topology:
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as e:
        raise TopologyError(str(path), [f"cannot read the file: {e.strerror}"]) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "somewhere"
        raise TopologyError(str(path), [f"{where}: not valid YAML ({getattr(e, 'problem', e)})"]) from None
    return parse_topology(data, str(path), implementation)


"""The lab's router implementations, behind one interface (lab.routers.base.Router).

A node says ``kind: router`` and ``implementation: <name>``; ``ROUTERS`` maps each name to the
class that implements it. Adding an implementation is one package under lab/routers/ and one
entry here. The table names classes by import path so that the topology can check a name
without importing any implementation (they import the topology and the plan themselves).
"""

from __future__ import annotations

import importlib
from functools import lru_cache
from typing import Any

from lab.errors import BgplabError

ROUTERS: dict[str, str] = {
    "frr": "lab.routers.frr:FrrRouter",
    "bird": "lab.routers.bird:BirdRouter",
    "gobgp": "lab.routers.gobgp:GobgpRouter",
    "openbgpd": "lab.routers.openbgpd:OpenbgpdRouter",
}
DEFAULT = "frr"


@lru_cache(maxsize=None)
def get_router(name: str) -> Any:
    """The implementation called ``name`` (one shared instance): a lab.routers.base.Router (not
    named here: lab.routers.base imports the plan, which imports the topology, which imports
    this table)."""
    if name not in ROUTERS:
        raise BgplabError(f"no router implementation '{name}' (implementations: {', '.join(ROUTERS)})")
    module, _, cls = ROUTERS[name].partition(":")
    return getattr(importlib.import_module(module), cls)()


def routers_text(versions: dict[str, str] | None) -> str:
    """A lab's router implementations and their versions, as reports name them ("FRR 8.4.4")."""
    if not versions:
        return "no routers"
    return ", ".join(f"{get_router(n).label if n in ROUTERS else n} {v}" for n, v in versions.items())

"""What a lab created, recorded before creating it, so `down` can undo it after a crash.

``/run/bgplab/<lab>/state.json`` lists the runtime, the namespaces (written before each
is made) and the PIDs of the daemons. Written atomically (temp file, rename) so a
SIGKILL at any moment leaves either the old record or the new one.
"""

from __future__ import annotations

import grp
import json
import os
import threading
import time
from pathlib import Path
from typing import Any

from lab.errors import LabExists

FRR_GROUP = "frr"
RUN_ROOT = Path(os.environ.get("BGPLAB_RUN_ROOT", "/run/bgplab"))


def lab_dir(lab: str) -> Path:
    return RUN_ROOT / lab


def close_lab_dir(d: Path) -> None:
    """A lab's directory is root's alone, but for one thing: FRR's daemons run as FRR's user
    and reach their node's directory through it. So FRR's group may pass through (0710, no
    listing, no reading) and nobody else may; every secret in it is 0600 besides. Without
    that group (no FRR on the host, or not root) it stays 0700."""
    try:
        gid = grp.getgrnam(FRR_GROUP).gr_gid
    except KeyError:
        return
    if os.geteuid() == 0:
        os.chown(d, 0, gid)
        os.chmod(d, 0o710)


class LabState:
    def __init__(self, lab: str, data: dict[str, Any]):
        self.lab = lab
        self.dir = lab_dir(lab)
        self.data = data
        # `up` writes its record from more than one thread (the dry runs beside the links)
        self.lock = threading.RLock()

    @property
    def path(self) -> Path:
        return self.dir / "state.json"

    def node_dir(self, node: str) -> Path:
        return self.dir / "nodes" / node

    @classmethod
    def create(cls, lab: str, runtime: str, topology: str) -> "LabState":
        d = lab_dir(lab)
        d.parent.mkdir(parents=True, exist_ok=True)
        try:
            # mkdir is atomic: of two `up`s of one name, exactly one gets here. 0700 from the
            # start: the directory holds the lab's secrets (admin token, inventory).
            d.mkdir(mode=0o700)
        except FileExistsError:
            raise LabExists(
                f"lab '{lab}' is already up (or a failed attempt left {d}); "
                f"`bgplab status {lab}` shows it, `bgplab down {lab}` removes it"
            ) from None
        close_lab_dir(d)
        state = cls(
            lab,
            {
                "lab": lab,
                "runtime": runtime,
                "topology": topology,
                "status": "creating",
                "created": time.time(),
                "pid": os.getpid(),
                "namespaces": [],
                "daemons": {},
                "timings": {},
            },
        )
        state.save()
        return state

    @classmethod
    def load(cls, lab: str) -> "LabState | None":
        try:
            data = json.loads((lab_dir(lab) / "state.json").read_text())
        except FileNotFoundError:
            return None
        except (OSError, ValueError):
            # A state file that cannot be read still means the lab exists: down must work.
            data = {"lab": lab, "runtime": "netns", "status": "unreadable", "namespaces": [], "daemons": {}}
        return cls(lab, data)

    @staticmethod
    def labs() -> list[str]:
        try:
            return sorted(p.name for p in RUN_ROOT.iterdir() if p.is_dir())
        except FileNotFoundError:
            return []

    def save(self) -> None:
        with self.lock:
            tmp = self.path.with_suffix(".tmp")
            tmp.write_text(json.dumps(self.data, indent=2, sort_keys=True))
            os.replace(tmp, self.path)

    def will_create_namespace(self, name: str) -> None:
        with self.lock:
            self.data["namespaces"].append(name)
            self.save()

    def daemon_output(self, node: str, daemon: str) -> str:
        """What a daemon wrote to its output file (``<node dir>/<daemon>.out``), stripped; "" if nothing."""
        out = self.node_dir(node) / f"{daemon}.out"
        return out.read_text(errors="replace").strip() if out.exists() else ""

    def add_daemon(self, node: str, daemon: str, pid: int) -> None:
        with self.lock:
            self.data["daemons"].setdefault(node, {})[daemon] = pid
            self.save()

    @property
    def runtime(self) -> str:
        """The runtime the lab was made with (records from before runtimes had a name: netns)."""
        return self.data.get("runtime") or "netns"

    def daemons(self) -> dict[str, dict[str, int]]:
        return self.data.get("daemons", {})

    # -- what `up` and the lab's tools recorded, read by name (each written in one place) ------

    @property
    def status(self) -> str:
        """creating, up (lab.lifecycle.up), unreadable (a record that could not be read)."""
        return self.data.get("status", "unknown")

    @property
    def topology_file(self) -> str | None:
        """The topology file the lab was brought up from (absolute path)."""
        return self.data.get("topology")

    @property
    def topology_doc(self) -> dict[str, Any] | None:
        """The topology as validated at `up` (the plan is rebuilt from it, not from the file)."""
        return self.data.get("topology_doc")

    @property
    def router_versions(self) -> dict[str, str]:
        """Per router implementation the lab runs: its version, asked of a node's binary at `up`."""
        return self.data.get("router_versions", {})

    @property
    def announced(self) -> bool:
        """Whether `up` announced the speakers' prefixes (False: a controller decides, --withdrawn)."""
        return bool(self.data.get("announced", True))

    @property
    def message_sizes(self) -> dict[str, int]:
        """Per session ("router<-peer"): the largest UPDATE it negotiated (RFC 8654), at `up`."""
        return self.data.get("message_sizes", {})

    @property
    def captures(self) -> list[dict[str, Any]]:
        """The packet captures lab.capture started: node, interface, file, pid."""
        return self.data.get("captures", [])

    def pids(self) -> list[int]:
        return [pid for d in self.daemons().values() for pid in d.values()]

    def set(self, **fields: Any) -> None:
        with self.lock:
            self.data.update(fields)
            self.save()

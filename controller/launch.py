"""Start the controller of a running lab (controller.service, its own process) and wait until
its API answers. Light on purpose: the CLI and the drill runner import it, and neither needs
the API's own modules to start one."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import httpx

from controller.paths import info_path
from lab.errors import BgplabError
from lab.procs import alive, mark_env
from lab.running import RunningLab
from lab.state import LabState
from lab.wait import wait_until


def start(running: RunningLab, *, seed: int = 20260220, probes: int = 20, probe_prefixes: list[str] = (),
          machines: int = 4, edge_seed: int = 1, timeout: float = 60.0) -> dict[str, Any]:
    """Start the controller of a running lab and wait until its API answers."""
    state = running.state
    pid = spawn(state, seed=seed, probes=probes, probe_prefixes=probe_prefixes, machines=machines, edge_seed=edge_seed)
    return wait(state, pid, timeout=timeout)


def spawn(state: LabState, *, seed: int = 20260220, probes: int = 20, probe_prefixes: list[str] = (),
          machines: int = 4, edge_seed: int = 1, during_up: bool | None = None) -> int:
    """Start the lab's controller process and record it in ``state`` (the record's holder: `up`
    passes its own, so its later writes keep the controller's PID). ``during_up``: `up` starts it
    while the lab converges, and says whether it will announce the prefixes; the controller
    readies itself meanwhile and waits for the lab to be up before it touches it."""
    lab = state.lab
    argv = [sys.executable, "-m", "controller.service", "--lab", lab, "--seed", str(seed), "--probes", str(probes),
            "--edge-machines", str(machines), "--edge-seed", str(edge_seed),
            *[a for p in probe_prefixes for a in ("--probe-prefix", p)]]
    if during_up is not None:
        argv.append("--announced" if during_up else "--withdrawn")
    with open(state.dir / "controller.out", "ab") as out:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                env=mark_env(lab), start_new_session=True)
    state.add_daemon("controller", "api", proc.pid)
    return proc.pid


def wait(state: LabState, pid: int, timeout: float = 60.0) -> dict[str, Any]:
    """Until the controller ``pid`` of the lab answers on its API; what it wrote of itself (url, port)."""
    lab, log = state.lab, state.dir / "controller.out"

    def answering() -> tuple[bool, str]:
        if not alive(pid):
            raise BgplabError(f"the controller of lab '{lab}' exited at start: {log.read_text()[-800:]}")
        try:
            info = json.loads(info_path(state).read_text())
            r = httpx.get(f"{info['url']}/v1/health", timeout=2.0)
            return r.status_code == 200, f"health answered {r.status_code}"
        except (OSError, ValueError, KeyError, httpx.HTTPError) as e:
            return False, str(e)

    wait_until(answering, timeout=timeout, what=f"the controller of lab '{lab}' to answer", interval=0.05)
    return json.loads(info_path(state).read_text())

"""What the drill runner keeps of a live lab while a drill plays: the sampler (every half
second: the observer's count, the impact states, the probes), the hooks the mechanism calls
(faults, the latest figures), the daemons that died, and the lab's facts for the record."""

from __future__ import annotations

import json
import threading
import time
from typing import Any, Callable

from controller.client import ApiClient
from controller.drills import steps as sp
from controller.drills.events import impact_states
from controller.drills.rundir import LabFacts, RunDir, read_jsonl
from lab import faults
from lab.errors import BgplabError
from lab.plan import LabPlan, Role
from lab.procs import alive
from lab.running import RunningLab
from lab.state import LabState


class Sampler(threading.Thread):
    """Every half second: the observer's count, the impact states, probe results, into the
    run's samples. A failure ends sampling and is kept in ``error`` for the runner to raise.
    It shares the run's API client (httpx's pool is thread-safe)."""

    def __init__(self, api: ApiClient, rd: RunDir, original: dict[str, list[str]], incident_now: Callable[[], float]):
        super().__init__(name="drill-sampler", daemon=True)
        self.api, self.rd, self.original, self.incident_now = api, rd, original, incident_now
        self.stopping = threading.Event()
        self.latest: dict[str, Any] = {}
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            with open(self.rd.samples, "a", buffering=1) as out:
                while not self.stopping.wait(0.5):
                    rec = self._sample()
                    self.latest = rec
                    out.write(json.dumps(rec) + "\n")
        except BaseException as e:  # noqa: BLE001 - kept and raised by the runner's loop
            if not self.stopping.is_set():
                self.error = e

    def _sample(self) -> dict[str, Any]:
        obs = self.api.call("GET", "/v1/lab/observe")["result"]
        impact = impact_states(self.api.prefixes(byoip=True, advertised=False), self.original)
        sample = obs.get("sample") or {}
        received = sample.get("observer_received") or {}
        observer = sum(v for c in received.values() for v in c.values() if isinstance(v, int)) if received else None
        return {"t": time.time(), "incident": round(self.incident_now(), 1), "observer": observer,
                "impact": impact, "probes": obs.get("probes", {}), "kernel": sample.get("kernel", {})}

    def stop(self) -> None:
        self.stopping.set()
        self.join(timeout=10)


class LiveHooks:
    """What the mechanism asks of a live lab: its faults, and the sampler's latest figures."""

    def __init__(self, running: RunningLab, log: Callable[..., None], sampler: Callable[[], "Sampler | None"]):
        self.running, self.log, self.sampler = running, log, sampler

    def fault(self, step: sp.Fault) -> None:
        """A fault primitive (lab.faults.FAULTS). Its times are lab seconds: faults act on real timers."""
        try:
            faults.FAULTS[step.fault](self.running, step)
        except BgplabError as e:
            self.log("fault_error", fault=step.fault, node=step.node, error=str(e))
            raise
        self.log("fault", fault=step.fault, node=step.node, peer=step.peer)

    def network_now(self) -> dict[str, Any]:
        s = self.sampler()
        return s.latest if s else {}


def lost_daemons(lab: str) -> list[str]:
    """The lab's daemons that are not running, each with the last line it wrote, leaving out those
    a fault ended on purpose (``bgplab fault daemon ... kill``, a drill's kill step) and did not
    start again since."""
    state = LabState.load(lab)
    if state is None:
        return [f"lab '{lab}' is gone"]
    ended: dict[tuple[str, str], bool] = {}
    for f in read_jsonl(state.dir / "faults.jsonl"):  # the lab's own fault log (lab.faults.record)
        if f["fault"] in ("daemon_kill", "daemon_start"):
            ended[(f["node"], f["daemon"])] = f["fault"] == "daemon_kill"
    out = []
    for node, daemons in sorted(state.daemons().items()):
        for daemon, pid in sorted(daemons.items()):
            if alive(pid) or ended.get((node, daemon)):
                continue
            last = state.daemon_output(node, daemon).splitlines()[-1:]
            out.append(f"{daemon} on {node} (pid {pid})" + (f", its last words: {last[0][:200]}" if last else ""))
    return out


def lab_facts(lab: str, runtime: str, router_versions: dict[str, str], state: LabState, plan: LabPlan) -> LabFacts:
    collector = next((r for r in plan.routers() if r.role is Role.collector), None)
    observer = next((r.name for r in plan.routers() if r.role is Role.peer), None)
    counts = plan.counts()
    return LabFacts(
        lab=lab, runtime=runtime, router_versions=router_versions, topology=state.topology_file,
        prefixes=counts["prefixes"], byoip=counts["byoip"],
        collector=collector.name if collector else None,
        vantage_points={str(s.peer_v4): s.peer for s in collector.sessions} if collector else {},
        speaker_addresses={n.name: sorted({str(a) for s in n.sessions for a in (s.local_v4, s.local_v6)})
                           for n in plan.speakers()},
        observer=observer,
        mrai=sorted({s.timers.mrai or 0 for r in plan.routers() for s in r.sessions}),
        implementations={r.name: r.implementation for r in plan.routers()},
    )


"""Background tasks a drill runs against the lab: today the 2026-02-20 cleanup sub-task.

A task talks to the lab only through the Addressing API client, as the real sub-task
talked to the real API: what it withdraws is what the API answered, not what the
drill file says.
"""

from __future__ import annotations

from typing import Any, Callable

import httpx

from controller.client import ApiClient
from controller.drills.model import CleanupTask, parse_duration
from controller.drills.rundir import DrillState

Log = Callable[..., None]
Clock = Callable[[], float]  # lab time, time.time()


class CleanupRunner:
    """The cleanup sub-task, driven one cycle at a time by the drill's incident clock.

    Every cycle it asks ``GET /v1/prefixes?pending_delete`` (the flag present, its value
    empty) and withdraws up to ``batch`` of what came back; then it removes service
    bindings, ``bindings_per_cycle`` calls a cycle, round robin over the oldest
    ``window`` withdrawn prefixes (bindings lag the withdrawals, as in the incident).
    """

    def __init__(self, name: str, spec: CleanupTask, api: ApiClient, st: DrillState, log: Log, clock: Clock):
        self.name, self.spec, self.api, self.st, self.log, self.clock = name, spec, api, st, log, clock
        self.running = False
        self.next_cycle = 0.0
        self.queue: list[dict[str, Any]] = []  # withdrawn, bindings still to remove: {"id", "cidr"}
        self.rr = 0
        self.cycles = 0
        self.errors = 0

    def start(self, now_incident: float) -> None:
        self.running = True
        self.next_cycle = now_incident + parse_duration(self.spec.first_cycle_after)

    def stop(self) -> None:
        self.running = False

    def due(self, now_incident: float) -> bool:
        return self.running and now_incident >= self.next_cycle

    def counts(self) -> dict[str, int]:
        return {"cycles": self.cycles, "errors": self.errors}

    def cycle(self) -> None:
        self.next_cycle += parse_duration(self.spec.every)
        self.cycles += 1
        # The sub-task's own request: the flag present, its value empty (httpx would
        # write `pending_delete=`; the real request had the bare flag).
        query = "&".join(["pending_delete"] + [f"{k}={v}" for k, v in self.spec.query.items()])
        try:
            r = self.api.http.get(f"/v1/prefixes?{query}")
        except httpx.HTTPError as e:
            self.errors += 1
            self.log("task_error", task=self.name, error=str(e))
            return
        if r.status_code != 200:
            # The strict API refuses the empty flag: the task finds nothing to do (the fix at work).
            self.errors += 1
            self.log("task_error", task=self.name, status=r.status_code, error=r.text[:300])
            return
        todo = [p for p in r.json()["result"] if p["advertised"] and p["cidr"] not in self.st.withdrawn_by_task]
        batch = todo[: self.spec.batch]
        if batch:
            sent = self.clock()
            self.api.set_advertised(False, ids=[p["id"] for p in batch])
            for p in batch:
                self.st.withdrawn_by_task[p["cidr"]] = sent
                self.queue.append({"id": p["id"], "cidr": p["cidr"]})
            self.log("task_withdrew", task=self.name, prefixes=len(batch), total=len(self.st.withdrawn_by_task))
        self._remove_bindings()

    def _remove_bindings(self) -> None:
        removed = 0
        while removed < self.spec.bindings_per_cycle and self.queue:
            window = self.queue[: self.spec.window]
            self.rr %= len(window)
            p = window[self.rr]
            bindings = self.api.call("GET", f"/v1/prefixes/{p['id']}/bindings")["result"]
            if not bindings:
                self.queue.remove(p)
                continue
            b = bindings[0]
            self.api.call("DELETE", f"/v1/prefixes/{p['id']}/bindings/{b['id']}")
            self.st.bindings_removed.setdefault(p["cidr"], []).append(b["service"])
            removed += 1
            if len(bindings) == 1:
                self.queue.remove(p)
            else:
                self.rr += 1


# A task kind (the `kind` of a drill's task) -> its runner.
TASKS: dict[str, type[CleanupRunner]] = {"pending_delete_cleanup": CleanupRunner}

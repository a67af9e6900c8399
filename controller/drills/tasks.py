"""Background tasks a drill runs against the lab: today the 2026-02-20 cleanup sub-task.

A task talks to the lab only through the Addressing API client, as the real sub-task
talked to the real API: what it withdraws is what the API answered, not what the
drill file says.
"""

from __future__ import annotations

from typing import Any, Callable

import httpx

from controller.client import ApiClient, ApiError
from controller.drills.model import CleanupTask, parse_duration
from controller.drills.rundir import DrillState

Log = Callable[..., None]
Clock = Callable[[], float]  # lab time, time.time()


class CleanupRunner:
    """The cleanup sub-task, driven one cycle at a time by the drill's incident clock.

    Every cycle it pages through ``GET /v1/prefixes?pending_delete`` (the flag present, its
    value empty), ``per_page`` at a time, in the API's own order (oldest onboarded first),
    and takes everything that came back as queued for deletion. It deletes prefixes with
    their dependent objects, as the incident's task did, in two steps that run at their own
    pace:
    - the prefix: the next ``batch`` prefixes it has not yet tried are withdrawn in one call;
      a pinned prefix (the resolver's) is refused by the API, logged and left advertised;
    - its dependent objects: the service bindings of every prefix it tried, in the same
      order, one call each, ``bindings_per_cycle`` calls a cycle: a prefix's bindings one
      after another, then the next prefix's. Slower than the withdrawals, so the impact
      states of the postmortem follow: withdrawn only, some bindings gone, all gone.
    """

    def __init__(self, name: str, spec: CleanupTask, api: ApiClient, st: DrillState, log: Log, clock: Clock):
        self.name, self.spec, self.api, self.st, self.log, self.clock = name, spec, api, st, log, clock
        self.running = False
        self.next_cycle = 0.0
        self.tried: set[str] = set()  # prefix ids it has tried to withdraw
        self.dependents: list[dict[str, Any]] = []  # tried, bindings still to remove: {"id", "cidr"}
        self.cycles = 0
        self.errors = 0
        self.refused = 0  # prefixes the API would not withdraw (pinned)
        self.held = 0  # requests a guardrail held (controller.changes)

    def start(self, now_incident: float) -> None:
        self.running = True
        self.next_cycle = now_incident + parse_duration(self.spec.first_cycle_after)

    def stop(self) -> None:
        self.running = False

    def due(self, now_incident: float) -> bool:
        return self.running and now_incident >= self.next_cycle

    def counts(self) -> dict[str, int]:
        return {"cycles": self.cycles, "errors": self.errors, "refused": self.refused, "held": self.held}

    def _listing(self) -> list[dict[str, Any]] | None:
        """Every page of the task's query, or None when the API refused it (the strict handler)."""
        # The sub-task's own request: the flag present, its value empty (httpx would write
        # `pending_delete=`; the real request had the bare flag).
        base = "&".join(["pending_delete"] + [f"{k}={v}" for k, v in self.spec.query.items()])
        out: list[dict[str, Any]] = []
        page = 1
        while True:
            try:
                r = self.api.http.get(f"/v1/prefixes?{base}&per_page={self.spec.per_page}&page={page}",
                                      headers=self.api.headers)
            except httpx.HTTPError as e:
                self.errors += 1
                self.log("task_error", task=self.name, error=str(e))
                return None
            if r.status_code != 200:
                # The strict API refuses the empty flag: the task finds nothing to do (the fix at work).
                self.errors += 1
                self.log("task_error", task=self.name, status=r.status_code, error=r.text[:300])
                return None
            body = r.json()
            out += body["result"]
            if not body.get("result_info", {}).get("more"):
                return out
            page += 1

    def cycle(self) -> None:
        self.next_cycle += parse_duration(self.spec.every)
        self.cycles += 1
        listing = self._listing()
        if listing is None:
            return
        todo = [p for p in listing if p["advertised"] and p["id"] not in self.tried][: self.spec.batch]
        if todo:
            self._withdraw(todo)
        self._remove_dependents()

    def _withdraw(self, batch: list[dict[str, Any]]) -> None:
        sent = self.clock()
        ids = [p["id"] for p in batch]
        pinned: set[str] = set()
        held: set[str] = set()
        while ids:
            try:
                self.api.set_advertised(False, ids=ids)
                break
            except ApiError as e:
                if self._was_held(e, len(ids)):
                    held = set(ids)  # the change pipeline holds it: nothing withdrawn
                    break
                refused = set(e.detail.get("pinned", [])) if e.status == 409 and not pinned else set()
                if not refused:
                    raise
                # The API holds pinned prefixes: the task logs it and withdraws the rest, as a
                # task that treats one refusal as a per-item error would.
                pinned = refused
                self.refused += len(pinned)
                self.log("task_refused", task=self.name, prefixes=sorted(pinned), status=e.status, error=str(e)[:200])
                ids = [i for i in ids if i not in pinned]
                sent = self.clock()  # before the call: the withdrawal reaches the wire inside it
        for p in batch:
            self.tried.add(p["id"])
            self.st.owners[p["cidr"]] = p["account_id"]
            # Its dependents are removed whatever became of the prefix: the task deletes the
            # objects it listed, one per call, each refusal a per-item error.
            self.dependents.append({"id": p["id"], "cidr": p["cidr"]})
            if p["id"] not in pinned and p["id"] not in held:
                self.st.withdrawn_by_task[p["cidr"]] = sent
        self.log("task_withdrew", task=self.name, prefixes=len(batch) - len(pinned) - len(held),
                 total=len(self.st.withdrawn_by_task))

    def _was_held(self, e: ApiError, prefixes: int) -> bool:
        """A 409 naming a change: a guardrail held the request (controller.changes). Logged and
        counted; the task goes on to its next item, as with any per-item error."""
        if e.status != 409 or not e.detail.get("change"):
            return False
        self.held += 1
        self.st.held.append({"t": self.clock(), "change": e.detail["change"], "guardrail": e.detail.get("guardrail"),
                             "prefixes": prefixes, "reason": e.detail.get("reason")})
        self.log("task_held", task=self.name, change=e.detail["change"], guardrail=e.detail.get("guardrail"),
                 prefixes=prefixes, reason=e.detail.get("reason"))
        return True

    def _remove_dependents(self) -> None:
        calls = 0
        while calls < self.spec.bindings_per_cycle and self.dependents:
            p = self.dependents[0]
            bindings = self.api.call("GET", f"/v1/prefixes/{p['id']}/bindings")["result"]
            if not bindings:
                self.dependents.pop(0)
                continue
            b = bindings[0]
            calls += 1
            try:
                self.api.call("DELETE", f"/v1/prefixes/{p['id']}/bindings/{b['id']}")
            except ApiError as e:
                if not self._was_held(e, 1):
                    raise
                self.dependents.pop(0)  # this prefix's dependents stay; on to the next
                continue
            self.st.bindings_removed.setdefault(p["cidr"], []).append(b["service"])
            if len(bindings) == 1:
                self.dependents.pop(0)


# A task kind (the `kind` of a drill's task) -> its runner.
TASKS: dict[str, type[CleanupRunner]] = {"pending_delete_cleanup": CleanupRunner}

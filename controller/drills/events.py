"""The mechanism's events: what each kind of drill step does when its time comes (one
``_do_<kind>`` per step kind of controller.drills.model; a kind without one fails at import),
against the Addressing API, on the incident clock. The loop that plays them is
controller.drills.mechanism; the same handlers run live and in the simulation."""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

from controller.client import ApiError
from controller.drills import model as m, steps as sp
from controller.drills.analysis import check
from controller.drills.automation import ExecRunner
from controller.inventory import cidr_of
from lab.errors import BgplabError


@dataclass
class Toggle:
    at: float  # incident seconds
    account: str
    prefix: dict[str, str]  # id, cidr


class StepEvents:
    """The step handlers of ``Mechanism`` (its state: the drill, the API, the drill state, the
    tasks, the toggles, the clock)."""

    def _do_behaviour(self, step: sp.SetBehaviour) -> None:
        try:
            self.api.call("PUT", "/v1/lab/behaviour", json=step.misbehaviours)
        except ApiError as e:
            if e.status != 409:
                raise
            # the strict_api guardrail keeps the 2026-02-20 handler out
            self.log("behaviour_refused", status=e.status, error=str(e)[:200])

    def _do_snapshot(self, step: sp.TakeSnapshot) -> None:
        snap = self.api.call("POST", "/v1/snapshots", json={"label": step.name})["result"]
        self.snapshots[step.name] = snap["id"]
        self.log("snapshot", name=step.name, snapshot=snap["id"], announced=snap["announced"])

    def _do_restore(self, step: sp.RestoreSnapshot) -> None:
        """Operational state back as the snapshot had it: one change, packed on the wire."""
        sid = self.snapshots[step.snapshot]
        current = {x["cidr"]: x for x in self.api.prefixes()}
        back = [c for c in self.st.affected() if c in current and not current[c]["advertised"]]
        sent = self.lab_now()
        try:
            r = self.api.call("POST", f"/v1/snapshots/{sid}/restore")["result"]
        except ApiError as e:
            if e.status != 409:
                raise
            self.log("restore_refused", snapshot=sid, status=e.status, error=str(e)[:200])
            return
        for c in back:
            self.st.restore_times.setdefault(c, sent)
        self.st.restore_requests.setdefault("snapshot", []).extend(back)
        self.st.snapshot_restores.append({"t": sent, "snapshot": sid, "change": r["change"], "prefixes": r["prefixes"],
                                          "diff": r["diff"]})
        self.log("restore", how="snapshot", snapshot=sid, prefixes=len(back), changed=r["prefixes"])

    def _do_task_start(self, step: sp.TaskStart) -> None:
        self.tasks[step.task].start(self.now)

    def _do_task_stop(self, step: sp.TaskStop) -> None:
        self.tasks[step.task].stop()

    def _do_detect(self, step: sp.Detect) -> None:
        self.detect = step
        self.canary = self.pick_canary(step, self.targets)
        self.st.detection = {"canary": self.canary, "armed": self.offset}

    def _do_dashboard(self, step: sp.Dashboard) -> None:
        """A share of the affected customers open the dashboard, each at a moment of the window,
        and toggle their withdrawn prefixes one click at a time, with their own credentials."""
        affected = [x for x in self.api.prefixes(byoip=True, advertised=False) if x["cidr"] in self.st.withdrawn_by_task]
        per_account: dict[str, list[dict[str, str]]] = {}
        for x in affected:  # the API's order: what the customer's dashboard lists
            per_account.setdefault(x["account_id"], []).append({"id": x["id"], "cidr": x["cidr"]})
        accounts = sorted(per_account)
        rng = random.Random(step.seed)
        chosen = sorted(rng.sample(accounts, round(len(accounts) * step.fraction))) if accounts else []
        window, click = m.parse_duration(step.window), m.parse_duration(step.click)
        for acct in chosen:
            # Each customer signs in with a token of its own account, made through the admin API
            # as a production dashboard's session would be: nothing derives one from the lab's seed.
            if acct not in self.tokens:
                self.tokens[acct] = self.api.call("POST", "/v1/lab/tokens", json={
                    "role": "customer", "name": f"dashboard:{acct}", "account": acct})["result"]["token"]
            start = self.now + rng.random() * window
            self.toggles += [Toggle(start + k * click, acct, p) for k, p in enumerate(per_account[acct])]
        self.toggles.sort(key=lambda t: t.at)
        self.st.dashboard_customers = len(chosen)
        self.log("dashboard", customers=len(chosen), of_customers=len(accounts), toggles=len(self.toggles))

    def _toggle(self, t: Toggle) -> None:
        """One click: the customer's own token, their own prefix; the API may refuse it."""
        headers = {"Authorization": f"Bearer {self.tokens[t.account]}"}
        current = self.api.call("GET", f"/v1/prefixes/{t.prefix['id']}", headers=headers)["result"]
        if current["advertised"]:
            return  # back already (the revert): nothing for the customer to click
        sent = self.lab_now()
        try:
            self.api.call("PATCH", f"/v1/prefixes/{t.prefix['id']}/bgp/status", json={"advertised": True},
                          headers=headers)
        except ApiError as e:
            if e.status >= 500:
                raise
            self.st.dashboard_refused += 1
            self.log("dashboard_refused", prefix=t.prefix["cidr"], account=t.account, status=e.status, error=str(e)[:200])
            return
        self.st.restore_requests.setdefault("dashboard", []).append(t.prefix["cidr"])
        self.st.restore_times.setdefault(t.prefix["cidr"], sent)

    def _do_revert(self, step: sp.Revert) -> None:
        """The change reverted: every withdrawn prefix that kept a binding is advertised again."""
        current = {x["cidr"]: x for x in self.api.prefixes()}
        todo = [current[c] for c in self.st.affected() if c in current and not current[c]["advertised"]
                and current[c]["bindings"] > 0]
        if todo:
            sent = self.lab_now()
            self.api.set_advertised(True, ids=[x["id"] for x in todo])
            for x in todo:
                self.st.restore_times.setdefault(x["cidr"], sent)
        self.st.restore_requests.setdefault("revert", []).extend(x["cidr"] for x in todo)
        self.log("restore", how="revert", prefixes=len(todo))

    def _do_config_push(self, step: sp.ConfigPushStep) -> None:
        """Every prefix the drill touched gets its bindings back and is advertised; the bindings
        reach the machines one after another, ``per_machine`` apart."""
        current = {x["cidr"]: x for x in self.api.prefixes()}
        touched = list(dict.fromkeys([*self.st.affected(), *self.st.bindings_removed]))
        items, readvertised = [], []
        for cidr in touched:
            x = current.get(cidr)
            if x is None:
                continue
            items.append({"id": x["id"], "services": self.original.get(cidr) or ["cdn"]})
            if not x["advertised"]:
                readvertised.append(cidr)
        if items:
            order = self.api.call("GET", "/v1/lab/edge")["result"]["order"]
            per = m.parse_duration(step.per_machine)
            rollout = [{"machine": mach, "at": self.lab_at(self.offset + (k + 1) * per)} for k, mach in enumerate(order)]
            sent = self.lab_now()
            self.api.call("POST", "/v1/lab/config_push", json={"prefixes": items, "rollout": rollout})
            for c in readvertised:
                self.st.restore_times.setdefault(c, sent)
        self.st.restore_requests.setdefault("config_push", []).extend(readvertised)
        self.log("restore", how="config_push", prefixes=len(readvertised), bindings_for=len(items))

    def _do_api(self, step: sp.Api) -> None:
        sent = self.lab_now()  # the change starts reaching the network before the call returns
        try:
            body = self.api.call(step.method, step.path, json=step.json_body)
        except ApiError as e:
            self.log("api_error", path=step.path, status=e.status, error=str(e))
            return
        # Prefixes an API step withdrew or advertised count as the drill's own changes.
        if step.method != "PATCH" or not step.path.rstrip("/").endswith("bgp/status"):
            return
        result = body.get("result", {})
        ids = result.get("ids") or ([step.path.split("/")[3]] if step.path.count("/") == 5 else [])
        affected = self.st.affected()  # once, not per prefix: a bulk restore names thousands
        for prefix_ident in ids:
            cidr = cidr_of(prefix_ident)
            if result.get("advertised") is False:
                self.st.withdrawn_by_api[cidr] = sent
            elif cidr in affected:
                self.st.restore_times.setdefault(cidr, sent)
                self.st.restore_requests.setdefault("api", []).append(cidr)

    def _do_deletion_requests(self, step: sp.DeletionRequests) -> None:
        """Customers flag prefixes for deletion (the work a cleanup automation is asked to do):
        BYOIP, advertised, not pinned, not a probe target, drawn with the step's seed."""
        probed = {t["prefix"] for t in self.targets} | {self.resolver.get("web"), self.resolver.get("dns")}
        pool = [x for x in self.api.prefixes(byoip=True, advertised=True)
                if not x["pinned"] and not x["pending_delete"] and x["cidr"] not in probed]
        if len(pool) < step.count:
            raise BgplabError(f"step {step.at}: {step.count} deletion requests asked, {len(pool)} prefixes can take one")
        chosen = sorted(random.Random(step.seed).sample(pool, step.count), key=lambda x: x["cidr"])
        for x in chosen:
            self.api.call("POST", f"/v1/prefixes/{x['id']}/deletion_request")
        self.st.deletion_requests += [x["cidr"] for x in chosen]
        self.log("deletion_requests", prefixes=len(chosen), accounts=len({x["account_id"] for x in chosen}))

    def _do_api_fault(self, step: sp.ApiFaultStep) -> None:
        """The API misbehaves towards an automation's token for the step's duration (lab seconds
        at the drill's pace there)."""
        name = step.task or next(n for n, t in self.tasks.items() if isinstance(t, ExecRunner))
        task = self.tasks[name]
        seconds = self.timeline.lab(self.offset + m.parse_duration(step.duration)) - self.timeline.lab(self.offset)
        self.api.call("PUT", "/v1/lab/faults/api", json={"kind": step.kind, "seconds": max(seconds, 0.001),
                                                         "delay": step.delay, "actor": task.actor})
        self.log("api_fault", fault=step.kind, task=name, lab_seconds=round(seconds, 3), delay=step.delay)

    def _do_fault(self, step: sp.Fault) -> None:
        if self.hooks is None:
            raise BgplabError(f"step {step.at}: a fault needs a live lab; the mechanism alone has no network")
        self.hooks.fault(step)

    def _do_mark(self, step: sp.Mark) -> None:
        """A label on the timeline; it measures nothing and ends nothing."""

    def _do_checkpoint(self, step: sp.Checkpoint) -> None:

        net = self.hooks.network_now() if self.hooks else {}
        impact = impact_states(self.api.prefixes(byoip=True, advertised=False), self.original)
        now = {
            "observer_end": net.get("observer"),
            "withdrawn_by_task": len(self.st.withdrawn_by_task),
            "impact_withdrawn_only": impact.get("withdrawn_only"),
            "impact_some_bindings": impact.get("some_bindings"),
            "impact_all_bindings": impact.get("all_bindings"),
            "restored_by_revert": len(self.st.restore_requests.get("revert", [])),
            "restored_by_config_push": len(self.st.restore_requests.get("config_push", [])),
        }
        figures = {k: {"value": v, "source": "network" if k == "observer_end" else "controller"} for k, v in now.items()}
        if not self.hooks:  # no network here: only the controller's figures are checked
            figures = {k: v for k, v in figures.items() if v["source"] == "controller"}
        self.checkpoints += check(step.expect, figures, prefix=f"{step.label or step.at}: ")


def impact_states(withdrawn: list[dict[str, Any]], original: dict[str, list[str]]) -> dict[str, int]:
    """The postmortem's three states of the withdrawn BYOIP prefixes (``withdrawn``, as the API
    lists them), against the bindings they had before the drill."""
    impact = {"withdrawn_only": 0, "some_bindings": 0, "all_bindings": 0}
    for p in withdrawn:
        had = len(original.get(p["cidr"], []))
        if p["bindings"] == 0 and had:
            impact["all_bindings"] += 1
        elif p["bindings"] < had:
            impact["some_bindings"] += 1
        else:
            impact["withdrawn_only"] += 1
    return impact

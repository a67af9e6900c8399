"""What the end hosts reached: each product's own probe (when it failed, how, whether it works
at the end, the 403s each PoP answered), and which customers the task hit."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Any

from controller.drills.clock import DrillClock
from controller.observe.probe import by_end_host
from controller.products import NAMES, PRODUCTS
from controller.drills.stats import figure


def product_rounds(probes: list[dict[str, Any]], t0: float) -> dict[str, list[tuple[float, bool]]]:
    """Per product, (lab second since t0, worked) per target and second: a product works in a
    second when a probe of that target succeeded in it (for egress: at any PoP)."""
    per: dict[tuple[str, str, int], bool] = {}
    for p in probes:
        key = (p.get("product", "cdn"), p["prefix"], int(p["t"] - t0))
        per[key] = per.get(key, False) or p["result"] == "ok"
    out: dict[str, list[tuple[float, bool]]] = defaultdict(list)
    for (product, _, sec), ok in sorted(per.items(), key=lambda kv: kv[0][2]):
        out[product].append((float(sec), ok))
    return out


def product_figures(probes: list[dict[str, Any]], t0: float, clock: DrillClock,
                    marks: list[dict[str, Any]] = ()) -> dict[str, dict[str, Any]]:
    """Each product's own probe: when it failed, how, and whether it works at the end; and the
    403s each PoP answered (the edge names the machine in every answer)."""
    def at(sec: float) -> str:
        return clock.text_at(sec)

    rounds = product_rounds(probes, t0)
    # "At the end": after the drill's last step (the settle time), when one was recorded; else the last 6 s.
    last_step = max((mk["t"] for mk in marks), default=None)
    results: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    egress: dict[tuple[str, int], list[str]] = defaultdict(list)
    for p in probes:
        if by_end_host(p):
            results[p.get("product", "cdn")][p["result"]] += 1
        else:
            egress[(p["prefix"], int(p["t"] - t0))].append(p["result"])
    # Dedicated Egress is attempted from each PoP's gateway, and the replies come back to the one
    # PoP the server's network prefers (the lab's PoPs do not forward to each other): the other
    # PoP's attempts cannot succeed, at baseline as in the incident. Counted per target and
    # second, as the product's rule judges it (ok when some PoP got through), not per attempt:
    # per attempt, a third of a quiet lab's egress probes were timeouts that were never failures.
    for results_in_second in egress.values():
        ok = "ok" in results_in_second
        results["dedicated_egress"]["ok" if ok else next(r for r in results_in_second if r != "ok")] += 1
    value = {}
    for product in NAMES:
        r = rounds.get(product, [])
        if not r:
            continue
        failed = [sec for sec, ok in r if not ok]
        after = last_step - t0 if last_step is not None and r[-1][0] >= last_step - t0 else r[-1][0] - 6
        end = [ok for sec, ok in r if sec >= after]
        value[product] = {"target_seconds": len(r), "failed_target_seconds": len(failed),
                          "first_failure": at(failed[0]) if failed else None,
                          "last_failure": at(failed[-1]) if failed else None,
                          "ok_share_end": round(sum(end) / len(end), 4) if end else None,
                          "results": dict(results[product])}
    F = {"products": figure(value, "network", "per product, its own probe (" + "; ".join(
        f"{p.name}: {p.probed}" for p in PRODUCTS) + "); target_seconds: targets x seconds probed; ok_share_end: "
        "after the drill's last step (its settle time); results: per probe, but for dedicated egress per target and "
        "second (the attempts from the PoP the replies do not come back to cannot succeed)", clock="incident")}
    edge403: dict[str, dict[str, Any]] = {}
    for p in probes:
        if p["result"] == "http_403" and p.get("machine"):
            pop = p["machine"].rpartition("/")[0]
            d = edge403.setdefault(pop, {"n": 0, "first": None, "last": None, "machines": set()})
            d["n"] += 1
            d["machines"].add(p["machine"])
            d["first"] = d["first"] or at(p["t"] - t0)
            d["last"] = at(p["t"] - t0)
    F["edge_403"] = figure({k: {**v, "machines": len(v["machines"])} for k, v in edge403.items()}, "network",
                           "HTTP 403 'Edge IP Restricted' answers the end hosts got, per PoP (the answering machine "
                           "names itself)", clock="incident")
    return F


def customer_figures(st: Any, bindings_before: Path) -> dict[str, dict[str, Any]]:
    """Who the task hit: customers, their share of all BYOIP customers, and the postmortem's
    three states per customer (withdrawn only; some prefixes stripped of every binding, so
    they could toggle some and not others; all of them stripped)."""
    original = json.loads(bindings_before.read_text()) if bindings_before.exists() else {}
    per: dict[str, list[bool]] = defaultdict(list)  # account -> per withdrawn prefix: stripped of every binding
    for cidr in st.withdrawn_by_task:
        acct = st.owners.get(cidr)
        if acct is not None:
            had = original.get(cidr, [])
            per[acct].append(bool(had) and sorted(st.bindings_removed.get(cidr, [])) == sorted(had))
    states = {"withdrawn_only": 0, "partial": 0, "all_bindings": 0}
    for stripped in per.values():
        states["all_bindings" if all(stripped) else "partial" if any(stripped) else "withdrawn_only"] += 1
    n = st.byoip_customers or None
    return {
        "affected_customers": figure(len(per), "controller", "customers owning a prefix the task withdrew (the API's answer)",
                                     share=round(len(per) / n, 4) if n else None, of=n),
        "byoip_customers": figure(st.byoip_customers, "input", "BYOIP customers in the seeded inventory"),
        "impact_customers": figure(states, "controller", "affected customers by the postmortem's states, from the task's "
                                   "own record (bindings removed against those before the drill)"),
        "dashboard_customers": figure(st.dashboard_customers, "controller", "customers who opened the dashboard (the "
                                      "drill's fraction of the affected ones, seeded)"),
    }

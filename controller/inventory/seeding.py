"""Seeding the inventory from a lab's plan: deterministic for a seed. The customers (heavy-tailed
sizes, each owning a contiguous run of the BYOIP pools), their onboarding sessions (the order the
API lists prefixes in), their bindings, the resolver's two prefixes. The seed decides data, never
a credential: tokens are random, made through ``create_token`` (the admin API)."""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, replace
from typing import Any

from controller.inventory.records import (ONBOARDING, ONBOARDING_SESSION, OPERATOR, RESOLVER, RESOLVER_ONBOARDED,
                                          Conflict, prefix_id)
from lab.plan import LabPlan

@dataclass(frozen=True)
class InventoryShape:
    """The seeded inventory's knobs (inputs): how many customers, how their prefix counts are
    spread (Zipf's alpha), how many prefixes they onboard at once, and the share of prefixes
    bound to each service. The sensitivity table moves each of them."""

    customers: int = 300
    size_alpha: float = 1.2
    onboarding_session: float = ONBOARDING_SESSION
    byoip_services: tuple[tuple[str, float], ...] = (("cdn", 0.6), ("spectrum", 0.25), ("magic_transit", 0.3),
                                                     ("dedicated_egress", 0.1))
    operator_spectrum: float = 0.2  # share of the operator's own prefixes bound to Spectrum beside the CDN

    def with_service(self, service: str, share: float) -> "InventoryShape":
        return replace(self, byoip_services=tuple((s, share if s == service else p) for s, p in self.byoip_services))


def customer_sizes(total: int, customers: int, rng: random.Random, alpha: float = 1.2) -> list[int]:
    """Prefix counts per customer, heavy-tailed (Zipf-like), summing to ``total``, each at least 1."""
    weights = [1.0 / (i + 1) ** alpha for i in range(customers)]
    rng.shuffle(weights)
    scale = (total - customers) / sum(weights)
    sizes = [1 + int(w * scale) for w in weights]
    # Hand out what rounding left, largest weights first: deterministic for the seed.
    order = sorted(range(customers), key=lambda i: -weights[i])
    for k in range(total - sum(sizes)):
        sizes[order[k % customers]] += 1
    return sizes


def onboarding_times(sizes: list[int], rng: random.Random, session: float = ONBOARDING_SESSION) -> list[float]:
    """When each BYOIP prefix was onboarded: each customer's run of prefixes in sessions of
    about ``ONBOARDING_SESSION`` prefixes, each session on a day drawn from ``ONBOARDING``.
    Customers' sessions interleave, so the API's onboarding order mixes customers."""
    out: list[float] = []
    lo, hi = ONBOARDING
    for size in sizes:
        left = size
        while left:
            n = min(left, 1 + int(rng.expovariate(1 / session)))
            day = lo + rng.random() * (hi - lo)
            out += [day + k for k in range(n)]  # a second apart, in the session's own order
            left -= n
    return out



def _bindings_for(byoip: bool, rng: random.Random, shape: InventoryShape) -> list[str]:
    if not byoip:
        return ["cdn"] if rng.random() >= shape.operator_spectrum else ["cdn", "spectrum"]
    chosen = [s for s, p in shape.byoip_services if rng.random() < p]
    return chosen or ["cdn"]



def seed(inv: Any, plan: LabPlan, seed: int = 20260220, advertised: bool = True,
         shape: InventoryShape = InventoryShape()) -> dict[str, int]:
    """Fill an empty inventory from the lab's plan. Every prefix starts advertised, or with
    ``advertised`` false withdrawn (a lab brought up with nothing announced).

    Inputs, deterministic for the seed: the customers (heavy-tailed sizes, each owning a
    contiguous run of the BYOIP pools), their onboarding sessions (the order the API lists
    prefixes in), their bindings, the resolver's two prefixes. The seed decides data, never a
    credential: tokens are random, made through ``create_token`` (the admin API)."""
    rng = random.Random(seed)
    now = time.time()
    byoip = [p for p in plan.prefixes if p.byoip]
    owned = [p for p in plan.prefixes if not p.byoip]
    resolver_web = byoip.pop(0) if byoip else None
    resolver_dns = next((p for p in owned if p.prefix.version == 4), None) if resolver_web else None
    n_customers = min(shape.customers, len(byoip)) if byoip else 0
    sizes = customer_sizes(len(byoip), n_customers, rng, shape.size_alpha) if n_customers else []
    onboarded = onboarding_times(sizes, random.Random(f"{seed}:onboarding"), shape.onboarding_session)
    with inv.tx() as db:
        if db.execute("SELECT COUNT(*) FROM prefixes").fetchone()[0]:
            raise Conflict(f"inventory {inv.path} is already seeded")
        accounts = [(OPERATOR, "edge operator", "operator")]
        if resolver_web is not None:
            accounts.append((RESOLVER, "resolver (1.1.1.1 analogue)", "operator"))
        owners: list[str] = []
        for i, size in enumerate(sizes):
            acct = f"acct-{i + 1:04d}"
            accounts.append((acct, f"customer {i + 1}", "byoip"))
            owners += [acct] * size
        for acct, name, kind in accounts:
            db.execute("INSERT INTO accounts VALUES (?, ?, ?)", (acct, name, kind))
        # (plan prefix, owner, created, pinned, services or None for the seeded draw)
        rows = []
        if resolver_web is not None:
            rows.append((resolver_web, RESOLVER, RESOLVER_ONBOARDED, True, ["cdn"]))
        rows += [(p, owners[i], onboarded[i], False, None) for i, p in enumerate(byoip)]
        rows += [(p, RESOLVER if p is resolver_dns else OPERATOR, ONBOARDING[0] - 86400 * 365 * 3, False, None)
                 for p in owned]
        bindings = 0
        for p, acct, created, pinned, services in rows:
            cidr = str(p.prefix)
            pfx_id = prefix_id(cidr)
            db.execute(
                "INSERT INTO prefixes (id, cidr, family, account_id, byoip, pool, origins, advertised, pinned,"
                " created, modified) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (pfx_id, cidr, p.prefix.version, acct, int(p.byoip), p.pool, ",".join(p.origins), int(advertised),
                 int(pinned), created, now),
            )
            for service in services or _bindings_for(p.byoip, rng, shape):
                bindings += 1
                db.execute(
                    "INSERT INTO bindings VALUES (?, ?, ?, ?)", (f"bnd-{bindings:06d}", pfx_id, service, now)
                )
        db.execute("INSERT OR REPLACE INTO meta VALUES ('seed', ?)", (str(seed),))
        db.execute("INSERT OR REPLACE INTO meta VALUES ('next_binding', ?)", (str(bindings + 1),))
        if resolver_web is not None:
            db.execute("INSERT OR REPLACE INTO meta VALUES ('resolver_web', ?)", (str(resolver_web.prefix),))
            if resolver_dns is not None:
                db.execute("INSERT OR REPLACE INTO meta VALUES ('resolver_dns', ?)", (str(resolver_dns.prefix),))
    return {"accounts": len(accounts), "prefixes": len(rows), "bindings": bindings}

"""What the lab's data plane probes: a deterministic, stratified sample of the BYOIP prefixes
per product (controller.products), the resolver's two prefixes, the egress sources, and each
PoP's own unicast address. The service starts the probes on them; the mechanism models them."""

from __future__ import annotations

import ipaddress
import random
from typing import Any

from controller.inventory import Inventory, cidr_of
from controller.observe.probe import CANARY_INTERVAL
from controller.products import BY_NAME, PRODUCTS
from lab.errors import BgplabError
from lab.plan import LabPlan


def probe_targets(plan: LabPlan, inv: Inventory, seed: int, count: int, extra: list[str] = ()) -> list[dict[str, Any]]:
    """What the end hosts probe, per product: a deterministic, stratified sample (``stratified``)
    of the BYOIP prefixes bound to it before anything happened (an address inside each: its
    first host address), the
    resolver's website and DNS, and ``extra`` prefixes (a drill's canary) over HTTP."""
    rng = random.Random(seed)
    byoip = [p for p in inv.prefixes(byoip=True, onboarding_order=True) if not p.pinned]
    bound: dict[str, list[str]] = {}
    for b in inv.bindings():
        bound.setdefault(b.service, []).append(b.prefix_id)
    out: list[dict[str, Any]] = []

    def add(product: str, cidr: str) -> None:
        net = ipaddress.ip_network(cidr)
        out.append({"product": product, "prefix": cidr, "address": str(net.network_address + 1),
                    "port": BY_NAME[product].port})

    # how many of each product's prefixes are probed: the CDN's count is the lab's --probes, the
    # others a fifth of it, at least two
    others = max(2, count // 5) if count > 0 else 0
    for product, n in (("cdn", count), ("spectrum", others), ("magic_transit", others)):
        ids = set(bound.get(product, []))
        for cidr in stratified([p.cidr for p in byoip if p.id in ids], n, rng):
            add(product, cidr)
    known = {str(p.prefix) for p in plan.prefixes}
    for cidr in extra:
        if cidr not in known:
            raise BgplabError(f"probe target {cidr} is not one of the lab's prefixes")
        if not any(t["prefix"] == cidr and t["product"] == "cdn" for t in out):
            add("cdn", cidr)
    if inv.meta("resolver_web"):
        add("resolver_web", inv.meta("resolver_web"))
        out[-1]["interval"] = CANARY_INTERVAL  # the replay's canary: probed on a finer clock
    if inv.meta("resolver_dns"):
        add("dns", inv.meta("resolver_dns"))
    return out


# How many of a stage's prefixes the end hosts probe while it is in its health window (a stage
# is one change: the cleanup task's batch is ~22 prefixes). The sample's few dozen prefixes
# out of thousands seldom include a stage's, so without these a stage could pass or fail its
# window with no probe of what it changed (CI's staged replay once saw none at all).
STAGE_PROBES = 8


def stage_targets(inv: Inventory, cidrs: list[str], relay: bool, limit: int = STAGE_PROBES) -> list[dict[str, Any]]:
    """What the end hosts probe of a stage while it is in its window: up to ``limit`` of its
    prefixes (every ``len // limit``-th, in the change's order), each by a product bound to it
    that an end host probes (HTTP first, then the relays when ``relay``: the PoPs have their own
    addresses to reach an origin from). A prefix with no such binding serves nothing to probe."""
    by_prefix: dict[str, set[str]] = {}
    for b in inv.bindings():
        by_prefix.setdefault(cidr_of(b.prefix_id), set()).add(b.service)
    order = [p for p in PRODUCTS if p.bindable and (p.probe == "http" or (relay and p.probe == "relay"))]
    candidates = []
    for cidr in cidrs:
        product = next((p for p in order if p.service in by_prefix.get(cidr, ())), None)
        if product is not None:
            net = ipaddress.ip_network(cidr)
            candidates.append({"product": product.name, "prefix": cidr, "address": str(net.network_address + 1),
                               "port": product.port})
    step = max(1, len(candidates) // limit) if limit > 0 else 1
    return candidates[::step][:limit]


def stratified(pool: list[str], n: int, rng: random.Random) -> list[str]:
    """``n`` of ``pool`` (in the API's onboarding order): half from its oldest fifth, half from
    the rest. A cleanup that walks the API's order strikes the oldest first, so a drill watches
    prefixes it strikes and prefixes it spares, whatever the sample. Which ones is the seed's."""
    if n <= 0 or not pool:
        return []
    old, rest = pool[: max(1, len(pool) // 5)], pool[max(1, len(pool) // 5):]
    k = min(len(old), (n + 1) // 2)
    return rng.sample(old, k) + rng.sample(rest, min(len(rest), n - k))


def egress_targets(inv: Inventory, seed: int, count: int) -> list[dict[str, str]]:
    """BYOIP prefixes with Dedicated Egress bound (stratified like the probes' targets), and the
    source address egress uses in each."""
    ids = {b.prefix_id for b in inv.bindings() if b.service == "dedicated_egress"}
    pool = [p.cidr for p in inv.prefixes(byoip=True, onboarding_order=True) if p.id in ids and not p.pinned]
    chosen = stratified(pool, max(2, count // 5), random.Random(f"{seed}:egress")) if count else []
    return [{"prefix": c, "source": str(ipaddress.ip_network(c).network_address + 2)} for c in chosen]


def pop_sources(plan: LabPlan) -> dict[str, str]:
    """Each PoP's own unicast address: the first address of a non-BYOIP pool only it originates
    (the proxies connect to origins from it, so replies come back to that PoP)."""
    out = {}
    for node in plan.speakers():
        for name in node.pools:
            pool = plan.topology.pools[name]
            only = [p for p in plan.prefixes if p.pool == name]
            if only and not pool.byoip and all(p.origins == (node.name,) for p in only):
                out[node.name] = str(only[0].prefix.network_address + 1)
                break
    return out

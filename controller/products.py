"""The operator's products, once: what each is bound as at the edge, where the lab probes it,
how, and what failing looks like.

Every other module reads this table (the inventory's services, the probes' ports and kinds,
the mechanism's model of the probes, the analysis, the report and the comparison); a product
added here is added everywhere. Stdlib only: the probes import it inside the lab's namespaces.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Product:
    name: str
    label: str
    # The service a prefix must have bound, at the machine that answers, for this product to
    # work there (None: the product needs no binding, DNS at the resolver's own address).
    service: str | None
    # The probe: its kind (http, relay, dns, egress), its port at the edge, who runs it
    probe: str
    port: int | None
    probed: str
    failing: str
    # What the postmortem says of it on 2026-02-20 (True: failed; False: not affected)
    failed_2026_02_20: bool

    @property
    def bindable(self) -> bool:
        """A service a customer binds to a prefix (the Addressing API's list): a product whose
        binding is its own."""
        return self.service == self.name


PRODUCTS: tuple[Product, ...] = (
    Product("cdn", "CDN", "cdn", "http", 80,
            "HTTP to a bound address, from the end hosts",
            "a timeout (no route) or an HTTP 403 'Edge IP Restricted' from a machine without the binding", True),
    Product("spectrum", "Spectrum", "spectrum", "relay", 8443,
            "TCP through the edge's proxy to the origin on an end host",
            "a timeout, or the proxy's REFUSED (unbound) or UPSTREAM_FAILED", True),
    Product("magic_transit", "Magic Transit", "magic_transit", "relay", 7000,
            "TCP through the edge's relay to the customer's network on an end host",
            "a timeout, or the relay's REFUSED (unbound) or UPSTREAM_FAILED", True),
    Product("dedicated_egress", "Dedicated Egress", "dedicated_egress", "egress", None,
            "TCP from a BYOIP source at each PoP's gateway to a server behind an eyeball; a second counts as "
            "working when some PoP got through (the lab's PoPs do not forward to each other)",
            "no PoP's connection got through in that second (unbound, or no route back)", True),
    Product("resolver_web", "resolver website", "cdn", "http", 80,
            "HTTP to the resolver's website (the canary)",
            "a timeout or a 403, as the CDN", True),
    Product("dns", "DNS", None, "dns", 53,
            "a DNS query to the resolver's address",
            "no answer, or an answer with no record", False),
)

BY_NAME: dict[str, Product] = {p.name: p for p in PRODUCTS}
NAMES: tuple[str, ...] = tuple(p.name for p in PRODUCTS)
# The services a customer binds to a prefix (the inventory's bindings, the API's /v1/services)
SERVICES: tuple[str, ...] = tuple(p.name for p in PRODUCTS if p.bindable)


"""A snapshot of the host's own network, to show that a lab never changed it."""

from __future__ import annotations

import os
import socket

from pyroute2 import IPRoute

SYSCTLS = [
    "net/ipv4/ip_forward",
    "net/ipv6/conf/all/forwarding",
    "net/ipv6/conf/all/accept_dad",
    "net/ipv4/conf/all/rp_filter",
]


def snapshot() -> dict:
    with IPRoute() as ipr:
        links = sorted(
            (l.get("ifname"), l["index"], l.get("operstate")) for l in ipr.get_links()
        )
        addrs = sorted((a["index"], a.get("address"), a["prefixlen"]) for a in ipr.get_addr())
        routes = sorted(
            (r["family"], str(r.get("RTA_DST")), r["dst_len"], str(r.get("RTA_GATEWAY")), r.get("RTA_OIF"), r.get("RTA_TABLE"))
            for fam in (socket.AF_INET, socket.AF_INET6)
            for r in ipr.get_routes(family=fam, table=254)
        )
    sysctls = {s: open(f"/proc/sys/{s}").read().strip() for s in SYSCTLS if os.path.exists(f"/proc/sys/{s}")}
    return {"links": links, "addrs": addrs, "routes": routes, "sysctls": sysctls}

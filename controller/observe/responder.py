"""The edge's answer on every service address of its prefixes, run inside a speaker's namespace.

Every address of the speaker's pools is local to it (AnyIP routes), so one listener
answers them all. The answer follows the inventory: 200 when the prefix has a service
binding; 403 "Edge IP Restricted" when it has none (the incident's resolver site saw
that); a prefix the inventory has deleted has no bindings either.
"""

from __future__ import annotations

import argparse
import ipaddress
import socket
import sqlite3
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class DualStackServer(ThreadingHTTPServer):
    address_family = socket.AF_INET6
    daemon_threads = True
    allow_reuse_address = True
    # Every end host probes every target at once: with the default backlog of 5, SYNs
    # were dropped and probes timed out on a healthy lab.
    request_queue_size = 512

    def handle_error(self, request, client_address) -> None:
        # A probe closes as soon as it has the status line; that is not an error.
        import sys

        if not isinstance(sys.exc_info()[1], (ConnectionResetError, BrokenPipeError)):
            super().handle_error(request, client_address)

    def server_bind(self) -> None:
        self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        super().server_bind()


def make_handler(inventory: str, lengths: dict[int, list[int]]):
    local = threading.local()

    def db() -> sqlite3.Connection:
        if not hasattr(local, "db"):
            local.db = sqlite3.connect(f"file:{inventory}?mode=ro", uri=True, timeout=2.0)
        return local.db

    def lookup(addr: str) -> tuple[str | None, int]:
        ip = ipaddress.ip_address(addr)
        if ip.version == 6 and ip.ipv4_mapped:
            ip = ip.ipv4_mapped
        for length in lengths.get(ip.version, []):
            cidr = str(ipaddress.ip_network(f"{ip}/{length}", strict=False))
            row = db().execute("SELECT id FROM prefixes WHERE cidr = ?", (cidr,)).fetchone()
            if row:
                n = db().execute("SELECT COUNT(*) FROM bindings WHERE prefix_id = ?", (row[0],)).fetchone()[0]
                return cidr, n
        return None, 0

    class Handler(BaseHTTPRequestHandler):
        server_version = "bgplab-edge"

        def log_message(self, *args: object) -> None:  # no per-request logging
            pass

        def do_GET(self) -> None:
            local_addr = self.connection.getsockname()[0]
            prefix, bindings = lookup(local_addr)
            if prefix is None:
                status, body = 404, f"no prefix of this edge holds {local_addr}\n"
            elif bindings:
                status, body = 200, f"OK {prefix}\n"
            else:
                status, body = 403, "Edge IP Restricted\n"
            data = body.encode()
            self.send_response(status)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(data)))
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(data)

    return Handler


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--inventory", required=True)
    ap.add_argument("--lengths", required=True, help="prefix lengths per family, e.g. 4:24,6:48")
    ap.add_argument("--port", type=int, default=80)
    args = ap.parse_args()
    lengths: dict[int, list[int]] = {}
    for item in args.lengths.split(","):
        fam, length = item.split(":")
        lengths.setdefault(int(fam), []).append(int(length))
    server = DualStackServer(("::", args.port), make_handler(args.inventory, lengths))
    server.serve_forever()


if __name__ == "__main__":
    main()

"""One PoP of the edge, run inside a speaker's namespace: every product's front end,
answering from what has reached this PoP's machines (controller.edge), not from the
inventory.

Every address of the speaker's pools is local to it (AnyIP routes). A connection lands on
one of the PoP's machines (a hash of the client's address and port, as a load balancer
spreads flows), and that machine answers with what it has been told:
- CDN and the resolver's website, HTTP on port 80: 200 where ``cdn`` is bound; 403 "Edge
  IP Restricted" where it is not (the incident's resolver website, and re-announced
  prefixes whose bindings had not yet reached the machine);
- Spectrum, TCP on port 8443: proxied to the customer's origin where ``spectrum`` is bound,
  refused otherwise;
- Magic Transit, TCP on port 7000: relayed to the customer's network where
  ``magic_transit`` is bound (a TCP relay stands in for the GRE tunnel), refused otherwise;
- DNS, UDP on port 53 of the resolver's DNS prefix: answers whatever the bindings say
  (DNS is no binding: on the day, 1.1.1.1 kept answering).
The proxies reach origins from the PoP's own unicast address, so replies come back here.
Every answer names the machine (``X-Bgplab-Machine`` or ``machine=`` in the banner).
"""

from __future__ import annotations

import argparse
import errno
import ipaddress
import socket
import socketserver
import sqlite3
import struct
import sys
import threading
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable

HTTP_PORT, SPECTRUM_PORT, MAGIC_TRANSIT_PORT, DNS_PORT = 80, 8443, 7000, 53
RESTRICTED = "Edge IP Restricted"


def machine_of(client: tuple, machines: int) -> int:
    """The machine a flow lands on: a stable hash of the client's address and port."""
    return zlib.crc32(f"{client[0]}|{client[1]}".encode()) % machines


class EdgeView:
    """This PoP's bound services, read from the state file the controller writes."""

    def __init__(self, db: str, lengths: dict[int, list[int]], pop: str, machines: int):
        self.path, self.lengths, self.pop, self.machines = db, lengths, pop, machines
        self.local = threading.local()

    def _db(self) -> sqlite3.Connection:
        if not hasattr(self.local, "db"):
            self.local.db = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, timeout=2.0)
        return self.local.db

    def prefix_of(self, addr: str) -> str | None:
        ip = ipaddress.ip_address(addr)
        if ip.version == 6 and ip.ipv4_mapped:
            ip = ip.ipv4_mapped
        for length in self.lengths.get(ip.version, []):
            cidr = str(ipaddress.ip_network(f"{ip}/{length}", strict=False))
            if self._db().execute("SELECT 1 FROM prefixes WHERE cidr = ?", (cidr,)).fetchone():
                return cidr
        return None

    def bound(self, cidr: str | None, machine: int) -> set[str]:
        if cidr is None:
            return set()
        rows = self._db().execute("SELECT service FROM bound WHERE cidr = ? AND machine = ?", (cidr, machine))
        return {r[0] for r in rows}

    def name(self, machine: int) -> str:
        return f"{self.pop}/{machine}"


class DualStack(socketserver.ThreadingMixIn, socketserver.TCPServer):
    address_family = socket.AF_INET6
    daemon_threads = True
    allow_reuse_address = True
    # Every end host probes every target at once: with the default backlog of 5, SYNs
    # were dropped and probes timed out on a healthy lab.
    request_queue_size = 512

    def server_bind(self) -> None:
        self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        super().server_bind()

    def handle_error(self, request, client_address) -> None:
        # A probe closes as soon as it has its answer; that is not an error.
        if not isinstance(sys.exc_info()[1], (ConnectionResetError, BrokenPipeError, TimeoutError)):
            super().handle_error(request, client_address)


class HttpServer(DualStack, ThreadingHTTPServer):
    pass


def http_handler(view: EdgeView):
    class Handler(BaseHTTPRequestHandler):
        server_version = "bgplab-edge"

        def log_message(self, *args: object) -> None:  # no per-request logging
            pass

        def do_GET(self) -> None:
            local = self.connection.getsockname()[0]
            machine = machine_of(self.client_address, view.machines)
            prefix = view.prefix_of(local)
            if prefix is None:
                status, body = 404, f"no prefix of this edge holds {local}\n"
            elif "cdn" in view.bound(prefix, machine):
                status, body = 200, f"OK {prefix}\n"
            else:
                status, body = 403, f"{RESTRICTED}\n"
            data = body.encode()
            self.send_response(status)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(data)))
            self.send_header("X-Bgplab-Machine", view.name(machine))
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(data)

    return Handler


def relay_handler(view: EdgeView, service: str, upstream: tuple[str, int] | None, source: str | None):
    """Spectrum's proxy and Magic Transit's relay: where ``service`` is bound, connect to the
    customer's side from the PoP's own address and pass its first line back."""

    class Handler(socketserver.BaseRequestHandler):
        def handle(self) -> None:
            local = self.request.getsockname()[0]
            machine = machine_of(self.client_address, view.machines)
            tag = f"machine={view.name(machine)}"
            if service not in view.bound(view.prefix_of(local), machine):
                self.request.sendall(f"REFUSED {service} not bound {tag}\n".encode())
                return
            if upstream is None:
                self.request.sendall(f"NOUPSTREAM {tag}\n".encode())
                return
            try:
                with socket.create_connection(upstream, timeout=1.0, source_address=(source, 0) if source else None) as up:
                    line = up.recv(256).decode(errors="replace").strip()
                self.request.sendall(f"OK {line} {tag}\n".encode())
            except OSError as e:
                self.request.sendall(f"UPSTREAM_FAILED {e.__class__.__name__} {tag}\n".encode())

    return Handler


def dns_answer(query: bytes, address: str) -> bytes | None:
    """A minimal DNS answer: the query's question, one A record (``address``) for any name."""
    if len(query) < 12:
        return None
    qid, flags, qdcount = struct.unpack("!HHH", query[:6])
    if qdcount != 1 or flags & 0x8000:
        return None
    end = 12
    while end < len(query) and query[end] != 0:
        end += query[end] + 1
    question = query[12:end + 5]
    if len(question) < 5:
        return None
    header = struct.pack("!HHHHHH", qid, 0x8180, 1, 1, 0, 0)
    answer = b"\xc0\x0c" + struct.pack("!HHIH", 1, 1, 60, 4) + socket.inet_aton(address)
    return header + question + answer


# A reply the kernel cannot send now (no route back to the client while a link is down, or no
# buffer): the client's query times out, as it would on the day, and the server goes on.
UNSENDABLE = {errno.ENETUNREACH, errno.EHOSTUNREACH, errno.ENETDOWN, errno.EHOSTDOWN, errno.ENOBUFS, errno.EAGAIN}


def serve_dns(dns_prefix: str, address: str) -> None:
    """Answer on every address of the resolver's DNS prefix (local through the AnyIP route)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_IP, 19, 1)  # IP_FREEBIND: bind the prefix's address, local by route
    sock.bind((str(ipaddress.ip_network(dns_prefix).network_address + 1), DNS_PORT))
    answer_queries(sock, address)


def answer_queries(sock: socket.socket, address: str, log: Callable[[str], None] = lambda s: print(s, flush=True)) -> None:
    """Answer every query on ``sock``. A reply that cannot be sent is dropped (UNSENDABLE), and said
    once when the first is dropped and once, with the count, when replies go out again; any other
    error ends the front end, and with it the responder (serve_all), where the lab's status shows it."""
    dropped = 0
    while True:
        query, client = sock.recvfrom(512)
        reply = dns_answer(query, address)
        if reply is None:
            continue
        try:
            sock.sendto(reply, client)
        except OSError as e:
            if e.errno not in UNSENDABLE:
                raise
            if not dropped:
                log(f"dns: a reply to {client[0]} cannot be sent ({e.strerror}); dropping replies until one can be")
            dropped += 1
            continue
        if dropped:
            log(f"dns: replies go out again; {dropped} dropped meanwhile")
            dropped = 0


def parse_lengths(text: str) -> dict[int, list[int]]:
    """'4:24,6:48' -> {4: [24], 6: [48]}: the prefix lengths per family the PoP's pools use."""
    lengths: dict[int, list[int]] = {}
    for item in text.split(","):
        fam, length = item.split(":")
        lengths.setdefault(int(fam), []).append(int(length))
    return lengths


def _addr(text: str | None) -> tuple[str, int] | None:
    if not text:
        return None
    host, _, port = text.rpartition(":")
    return host, int(port)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--edge-db", required=True, help="this PoP's state file (controller.edge.EdgeFiles)")
    ap.add_argument("--pop", required=True)
    ap.add_argument("--machines", type=int, required=True)
    ap.add_argument("--lengths", required=True, help="prefix lengths per family, e.g. 4:24,6:48")
    ap.add_argument("--source", help="the PoP's own unicast address, for connections to origins")
    ap.add_argument("--origin", help="Spectrum's origin, host:port")
    ap.add_argument("--site", help="the Magic Transit customer's network, host:port")
    ap.add_argument("--dns-prefix", help="the resolver's DNS prefix")
    ap.add_argument("--dns-answer", default="192.0.2.1", help="the address DNS answers with")
    args = ap.parse_args()
    view = EdgeView(args.edge_db, parse_lengths(args.lengths), args.pop, args.machines)
    servers = [HttpServer(("::", HTTP_PORT), http_handler(view)),
               DualStack(("::", SPECTRUM_PORT), relay_handler(view, "spectrum", _addr(args.origin), args.source)),
               DualStack(("::", MAGIC_TRANSIT_PORT), relay_handler(view, "magic_transit", _addr(args.site), args.source))]
    extra = [threading.Thread(target=serve_dns, args=(args.dns_prefix, args.dns_answer), daemon=True)] if args.dns_prefix else []
    serve_all(servers, extra, f"responder {args.pop}: a front end stopped")


def serve_all(servers: list[socketserver.BaseServer], extra: list[threading.Thread], why: str) -> None:
    """Serve every server (and run ``extra``), each in a thread, until one of them ends; then exit
    with ``why``, so that a front end that is gone shows in the lab's status."""
    threads = [threading.Thread(target=s.serve_forever, daemon=True) for s in servers] + extra
    for t in threads:
        t.start()
    while all(t.is_alive() for t in threads):
        threads[0].join(timeout=1.0)
    sys.exit(why)


if __name__ == "__main__":
    main()

"""The far side of the edge's products, run inside an end host's namespace: Spectrum's
origin, the Magic Transit customer's network and the server Dedicated Egress connects to.
Each listener answers every connection with one line naming itself, and closes."""

from __future__ import annotations

import argparse
import socket
import socketserver
import sys
import threading

PORTS = {"origin": 9000, "site": 9001, "egress-destination": 9100}


class Server(socketserver.ThreadingMixIn, socketserver.TCPServer):
    address_family = socket.AF_INET6
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 512

    def server_bind(self) -> None:
        self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        super().server_bind()

    def handle_error(self, request, client_address) -> None:
        if not isinstance(sys.exc_info()[1], (ConnectionResetError, BrokenPipeError)):
            super().handle_error(request, client_address)


def handler(role: str, host: str):
    class Handler(socketserver.BaseRequestHandler):
        def handle(self) -> None:
            self.request.sendall(f"{role}@{host} from={self.client_address[0]}\n".encode())

    return Handler


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", required=True)
    args = ap.parse_args()
    servers = [Server(("::", port), handler(role, args.host)) for role, port in PORTS.items()]
    threads = [threading.Thread(target=s.serve_forever, daemon=True) for s in servers]
    for t in threads:
        t.start()
    while all(t.is_alive() for t in threads):
        threads[0].join(timeout=1.0)
    sys.exit(f"origin {args.host}: a listener stopped")


if __name__ == "__main__":
    main()

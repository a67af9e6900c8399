"""The far side of the edge's products, run inside an end host's namespace: Spectrum's
origin, the Magic Transit customer's network and the server Dedicated Egress connects to.
Each listener answers every connection with one line naming itself, and closes."""

from __future__ import annotations

import argparse
import socketserver

from controller.observe.responder import DualStack, serve_all

PORTS = {"origin": 9000, "site": 9001, "egress-destination": 9100}


def handler(role: str, host: str):
    class Handler(socketserver.BaseRequestHandler):
        def handle(self) -> None:
            self.request.sendall(f"{role}@{host} from={self.client_address[0]}\n".encode())

    return Handler


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", required=True)
    args = ap.parse_args()
    servers = [DualStack(("::", port), handler(role, args.host)) for role, port in PORTS.items()]
    serve_all(servers, [], f"origin {args.host}: a listener stopped")


if __name__ == "__main__":
    main()

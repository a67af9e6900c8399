"""Dedicated Egress, run inside a PoP's namespace: the PoP's egress gateway opens
connections from customers' BYOIP addresses to a server in an eyeball network.

A gateway machine (one of the PoP's, drawn per connection) egresses from a source only
where ``dedicated_egress`` is bound on it (``unbound`` otherwise). The connection's
replies are routed to the source's prefix by BGP: while the prefix is withdrawn they have
no route back and the connection times out, as the incident's egress customers saw. The
prefix is anycast and the lab's PoPs do not forward between each other, so replies reach
whichever PoP the server's network prefers: a round counts as working when some PoP's
gateway got through (the analysis does that), and each PoP's attempts are recorded.
"""

from __future__ import annotations

import argparse
import json
import random
import socket
import sys
import threading
import time

from controller.observe.responder import EdgeView, parse_lengths


def attempt(view: EdgeView, target: dict, destination: tuple[str, int] | None, timeout: float,
            rng: random.Random) -> tuple[str, int]:
    machine = rng.randrange(view.machines)
    if destination is None:
        return "no_destination", machine
    if "dedicated_egress" not in view.bound(target["prefix"], machine):
        return "unbound", machine
    try:
        with socket.create_connection(destination, timeout=timeout, source_address=(target["source"], 0)) as s:
            line = s.recv(256)
        return ("ok" if line else "closed"), machine
    except TimeoutError:
        return "timeout", machine
    except ConnectionRefusedError:
        return "refused", machine
    except OSError as e:
        return ("unreachable" if e.errno in (101, 113) else f"error_{e.errno}"), machine


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--pop", required=True)
    ap.add_argument("--edge-db", required=True)
    ap.add_argument("--machines", type=int, required=True)
    ap.add_argument("--lengths", required=True)
    ap.add_argument("--targets", required=True, help="JSON file: [{prefix, source}]")
    ap.add_argument("--destination", required=True, help="host:port of the server to reach (IPv4)")
    ap.add_argument("--destination6", help="[host]:port of the same server over IPv6, for IPv6 sources")
    ap.add_argument("--out", required=True)
    ap.add_argument("--interval", type=float, default=0.5)
    ap.add_argument("--timeout", type=float, default=1.0)
    ap.add_argument("--max-rounds", type=int, default=1_000_000)
    args = ap.parse_args()
    view = EdgeView(args.edge_db, parse_lengths(args.lengths), args.pop, args.machines)
    targets = json.load(open(args.targets))
    def parse(text: str) -> tuple[str, int]:
        host, _, port = text.rpartition(":")
        return host.strip("[]"), int(port)

    destinations = {4: parse(args.destination), 6: parse(args.destination6) if args.destination6 else None}
    out = open(args.out, "a", buffering=1)
    lock = threading.Lock()

    def attempts(target: dict) -> None:
        """Attempt ``target`` every interval, on its own: the attempts for a target whose
        replies go to the other PoP time out, and a round that waited on them would leave
        seconds with no attempt at all for the targets this PoP does serve (a second then
        reads as failed from the other PoP's timeout alone)."""
        rng = random.Random()
        destination = destinations[6 if ":" in target["source"] else 4]
        for _ in range(args.max_rounds):
            start = time.monotonic()
            t = time.time()
            result, machine = attempt(view, target, destination, args.timeout, rng)
            line = json.dumps({"t": t, "host": args.pop, "product": "dedicated_egress", "prefix": target["prefix"],
                               "address": target["source"], "result": result, "machine": view.name(machine)})
            with lock:
                out.write(line + "\n")
            time.sleep(max(0.0, args.interval - (time.monotonic() - start)))

    errors: list[BaseException] = []

    def run(target: dict) -> None:
        try:
            attempts(target)
        except BaseException as e:  # surfaces below: the gateway stops, its log says why
            errors.append(e)
            raise

    threads = [threading.Thread(target=run, args=(t,), daemon=True) for t in targets]
    for th in threads:
        th.start()
    while any(th.is_alive() for th in threads) and not errors:
        time.sleep(0.2)
    if errors:
        raise SystemExit(f"egress gateway {args.pop}: {errors[0]!r}")
    sys.exit(0)


if __name__ == "__main__":
    main()

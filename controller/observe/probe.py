"""Data-plane probes, run inside an end host's namespace: can this host reach the service
addresses, and what does the edge answer?

Each round opens one TCP connection per target, in parallel, sends an HTTP GET and
records the outcome: ok (200), http_403 (the edge answers but the prefix lost its
binding), another http_<code>, refused, timeout (no route: path hunting or withdrawn),
unreachable. One JSON line per probe. Rounds are bounded: it stops by itself after
``--max-rounds`` (and when its lab is torn down).
"""

from __future__ import annotations

import argparse
import json
import socket
import sys
import time
from concurrent.futures import ThreadPoolExecutor


def probe(target: str, port: int, timeout: float) -> tuple[str, float]:
    t0 = time.monotonic()
    family = socket.AF_INET6 if ":" in target else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_STREAM) as s:
            s.settimeout(timeout)
            s.connect((target, port))
            s.sendall(f"GET / HTTP/1.0\r\nHost: {target}\r\n\r\n".encode())
            head = s.recv(64).decode(errors="replace")
        code = head.split()[1] if head.startswith("HTTP/") else "?"
        result = "ok" if code == "200" else f"http_{code}"
    except TimeoutError:
        result = "timeout"
    except ConnectionRefusedError:
        result = "refused"
    except OSError as e:
        result = "unreachable" if e.errno in (101, 113) else f"error_{e.errno}"
    return result, (time.monotonic() - t0) * 1000


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", required=True)
    ap.add_argument("--targets", required=True, help="JSON file: [{prefix, address}]")
    ap.add_argument("--out", required=True)
    ap.add_argument("--interval", type=float, default=0.5)
    ap.add_argument("--timeout", type=float, default=1.0)
    ap.add_argument("--port", type=int, default=80)
    ap.add_argument("--max-rounds", type=int, default=1_000_000)
    args = ap.parse_args()
    targets = json.load(open(args.targets))
    out = open(args.out, "a", buffering=1)
    with ThreadPoolExecutor(max_workers=min(32, max(1, len(targets)))) as pool:
        for _ in range(args.max_rounds):
            start = time.monotonic()
            t = time.time()
            results = list(pool.map(lambda x: probe(x["address"], args.port, args.timeout), targets))
            for target, (result, ms) in zip(targets, results):
                out.write(json.dumps({"t": t, "host": args.host, "prefix": target["prefix"],
                                      "address": target["address"], "result": result, "ms": round(ms, 2)}) + "\n")
            time.sleep(max(0.0, args.interval - (time.monotonic() - start)))
    sys.exit(0)


if __name__ == "__main__":
    main()

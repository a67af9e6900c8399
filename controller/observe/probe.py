"""Data-plane probes, run inside an end host's namespace: can this host reach each product
on its service addresses, and what does the edge answer?

Each round probes every target once, in parallel, the way its product is used: CDN and
the resolver's website by HTTP (ok, or http_403 where the machine has no ``cdn`` binding),
Spectrum and Magic Transit by a TCP connection through the edge to the customer's side
(ok, unbound, upstream_failed), DNS by a UDP query. A connection that never completes is
a timeout (no route: path hunting, or withdrawn). One JSON line per probe, with the
machine that answered where the edge names it. Rounds are bounded: it stops by itself after
``--max-rounds`` (and when its lab is torn down).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import socket
import struct
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from controller.products import BY_NAME


# The resolver's website is the replay's canary: it is probed every CANARY_INTERVAL seconds, so
# detection is not held back by the probes' round (at speed 240 a 0.5 s round is two incident
# minutes, two of the cleanup task's cycles).
CANARY_INTERVAL = 0.1


def by_end_host(rec: dict) -> bool:
    """A probe record an end host wrote (every product but Dedicated Egress, which each PoP's
    gateway probes, and which works only at the PoP the replies come back to)."""
    return rec.get("product", "cdn") != "dedicated_egress"


def _connect(target: str, port: int, timeout: float) -> socket.socket:
    family = socket.AF_INET6 if ":" in target else socket.AF_INET
    s = socket.socket(family, socket.SOCK_STREAM)
    s.settimeout(timeout)
    try:
        s.connect((target, port))
    except BaseException:
        s.close()
        raise
    return s


def _http(target: str, port: int, timeout: float) -> tuple[str, str | None]:
    with _connect(target, port, timeout) as s:
        s.sendall(f"GET / HTTP/1.0\r\nHost: {target}\r\n\r\n".encode())
        head = b""
        while b"\r\n\r\n" not in head and len(head) < 2048:
            chunk = s.recv(1024)
            if not chunk:
                break
            head += chunk
    text = head.decode(errors="replace")
    code = text.split()[1] if text.startswith("HTTP/") else "?"
    machine = next((line.split(":", 1)[1].strip() for line in text.split("\r\n")
                    if line.lower().startswith("x-bgplab-machine:")), None)
    return ("ok" if code == "200" else f"http_{code}"), machine


def _relay(target: str, port: int, timeout: float) -> tuple[str, str | None]:
    """Spectrum's proxy or Magic Transit's relay: its first line says what happened."""
    with _connect(target, port, timeout) as s:
        line = s.recv(512).decode(errors="replace").strip()
    machine = next((w.split("=", 1)[1] for w in line.split() if w.startswith("machine=")), None)
    word = line.split()[0] if line else "closed"
    return {"OK": "ok", "REFUSED": "unbound", "UPSTREAM_FAILED": "upstream_failed"}.get(word, word.lower()), machine


def _dns(target: str, port: int, timeout: float) -> tuple[str, str | None]:
    qid = random.randrange(65536)
    name = b"".join(bytes([len(p)]) + p for p in (b"one", b"one", b"one", b"one")) + b"\0"
    query = struct.pack("!HHHHHH", qid, 0x0100, 1, 0, 0, 0) + name + struct.pack("!HH", 1, 1)
    family = socket.AF_INET6 if ":" in target else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as s:
        s.settimeout(timeout)
        s.sendto(query, (target, port))
        reply, _ = s.recvfrom(512)
    ok = len(reply) >= 12 and struct.unpack("!H", reply[:2])[0] == qid and struct.unpack("!H", reply[6:8])[0] >= 1
    return ("ok" if ok else "dns_bad_answer"), None


KINDS = {"http": _http, "relay": _relay, "dns": _dns}


def probe(target: dict, timeout: float) -> tuple[str, float, str | None]:
    """One probe of one target, by its product: (result, milliseconds, the machine that answered)."""
    t0 = time.monotonic()
    machine = None
    try:
        kind = KINDS[BY_NAME[target.get("product", "cdn")].probe]
        result, machine = kind(target["address"], int(target.get("port", 80)), timeout)
    except TimeoutError:
        result = "timeout"
    except ConnectionRefusedError:
        result = "refused"
    except OSError as e:
        result = "unreachable" if e.errno in (101, 113) else f"error_{e.errno}"
    return result, (time.monotonic() - t0) * 1000, machine


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", required=True)
    ap.add_argument("--targets", required=True, help="JSON file: [{prefix, address}]")
    ap.add_argument("--out", required=True)
    ap.add_argument("--interval", type=float, default=0.5)
    ap.add_argument("--timeout", type=float, default=1.0)
    ap.add_argument("--max-rounds", type=int, default=1_000_000)
    ap.add_argument("--stage-targets", help="JSON file the controller rewrites: the prefixes of the change in its "
                    "staged rollout's health window ([] between stages); re-read when it changes")
    ap.add_argument("--stage-out", help="where the stage's probes go (default: --out)")
    args = ap.parse_args()
    targets = json.load(open(args.targets))
    out = open(args.out, "a", buffering=1)
    stage_out = open(args.stage_out, "a", buffering=1) if args.stage_out else out
    lock = threading.Lock()

    def one_round(pool: ThreadPoolExecutor, group: list[dict], dest) -> None:
        t = time.time()
        results = list(pool.map(lambda x: probe(x, args.timeout), group))
        lines = []
        for target, (result, ms, machine) in zip(group, results):
            rec = {"t": t, "host": args.host, "product": target.get("product", "cdn"), "prefix": target["prefix"],
                   "address": target["address"], "result": result, "ms": round(ms, 2)}
            if machine:
                rec["machine"] = machine
            lines.append(json.dumps(rec) + "\n")
        with lock:
            dest.writelines(lines)

    def rounds(group: list[dict], interval: float) -> None:
        """Probe ``group`` every ``interval`` seconds, each target once a round, in parallel."""
        with ThreadPoolExecutor(max_workers=min(32, max(1, len(group)))) as pool:
            for _ in range(args.max_rounds):
                start = time.monotonic()
                one_round(pool, group, out)
                time.sleep(max(0.0, interval - (time.monotonic() - start)))

    def stage_rounds(path: str, interval: float) -> None:
        """The stage's prefixes, on the probes' own round: the file is stat'ed each round and
        re-read only when it changed (the controller replaces it whole)."""
        seen, group = None, []
        with ThreadPoolExecutor(max_workers=16) as pool:
            for _ in range(args.max_rounds):
                start = time.monotonic()
                try:
                    st = os.stat(path)
                    if (st.st_mtime_ns, st.st_ino) != seen:
                        group, seen = json.loads(Path(path).read_text()), (st.st_mtime_ns, st.st_ino)
                except FileNotFoundError:
                    group, seen = [], None
                if group:
                    one_round(pool, group, stage_out)
                time.sleep(max(0.0, interval - (time.monotonic() - start)))

    def guarded(fn, *a) -> None:
        try:
            fn(*a)
        except BaseException as e:  # surfaces: the process ends non-zero and says why
            print(f"probe: {fn.__name__} stopped: {e!r}", file=sys.stderr, flush=True)
            os._exit(1)

    # A target may ask for its own pace (the drill's canary: a finer clock for detection).
    groups: dict[float, list[dict]] = {}
    for target in targets:
        groups.setdefault(float(target.get("interval", args.interval)), []).append(target)
    threads = [threading.Thread(target=guarded, args=(rounds, g, iv), daemon=True) for iv, g in groups.items()]
    if args.stage_targets:
        threads.append(threading.Thread(target=guarded, args=(stage_rounds, args.stage_targets, args.interval),
                                        daemon=True))
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    sys.exit(0)


if __name__ == "__main__":
    main()

"""Prefix counts over time: every router's kernel table (netlink, through pyroute2) and the
observer's BGP table, sampled at 10 Hz, plus one event per kernel route change.

Re-dumping 6,500 routes takes time, so each router gets one dump at start and then
follows the kernel's own route notifications (RTM_NEWROUTE / RTM_DELROUTE); a sample
reads the counts kept that way. pyroute2 builds a full object per message (~50 us):
following 45,000 changes that way cost more CPU than the two ExaBGPs feeding them, so
the watcher reads the messages with lab.kernel's minimal rtnetlink parser. Each change is also written with its time, which is what convergence
times are measured from.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any, Callable

from lab import kernel
from lab.routers.base import Router
from lab.errors import BgplabError

class KernelWatcher(threading.Thread):
    """Follows one namespace's main routing table; keeps which pool prefixes are present."""

    def __init__(self, router: str, namespace: str, pool_keys: frozenset[tuple[int, str]],
                 on_change: Callable[[float, str, list[tuple[str, bool]]], None]):
        super().__init__(name=f"kernel-{router}", daemon=True)
        self.router, self.namespace, self.pool_keys, self.on_change = router, namespace, pool_keys, on_change
        self.packed = kernel.packed_keys(pool_keys)
        self.present: set[tuple[int, str]] = set()
        self.n = {4: 0, 6: 0}  # counted as they change: counts() never walks the set
        self.last_change = 0.0  # time.monotonic() of the last route message seen
        self.ready = threading.Event()
        self.stopping = threading.Event()
        self.error: str | None = None

    def counts(self) -> dict[str, int]:
        return {"ipv4": self.n[4], "ipv6": self.n[6]}

    def run(self) -> None:
        try:
            # Subscribe first, then dump: a change during the dump is not lost.
            events = kernel.route_socket(self.namespace, kernel.GROUP_IPV4_ROUTE | kernel.GROUP_IPV6_ROUTE)
            dump = kernel.route_socket(self.namespace)
            self.present = kernel.dump_route_keys(dump) & self.pool_keys
            dump.close()
            for v, _ in self.present:
                self.n[v] += 1
            self.ready.set()
            events.settimeout(0.5)
            while not self.stopping.is_set():
                try:
                    buf = events.recv(1 << 20)
                except TimeoutError:
                    continue
                now = time.time()
                self.last_change = time.monotonic()
                changes = []
                for mtype, family, dst_len, dst, table in kernel.parse_route_messages(buf):
                    if mtype is None or table != kernel.MAIN_TABLE:
                        continue
                    k = self.packed.get((family, dst_len, dst))
                    if k is None:  # not a pool prefix (a table's, a link's)
                        continue
                    version, key = k
                    if mtype == kernel.RTM_NEWROUTE and k not in self.present:
                        self.present.add(k)
                        self.n[version] += 1
                        changes.append((key, True))
                    elif mtype == kernel.RTM_DELROUTE and k in self.present:
                        self.present.discard(k)
                        self.n[version] -= 1
                        changes.append((key, False))
                if changes:
                    self.on_change(now, self.router, changes)
        except OSError as e:  # the namespace went away (lab down), or an overrun
            self.error = str(e)
            self.ready.set()


# The share of its time an observer may spend answering the sampler. A question's cost grows with
# what it walks: FRR's table count (show bgp statistics-all, for an observer that hears the edge
# through a transit) walks every prefix, ~1 s at a million, and asked at 10 Hz it kept the
# observer's bgpd busy with nothing else (557 s of CPU in a 600 s full-table load that never
# reached it). Each question is asked again only after fifty times what the last one cost.
DUTY = 0.02


class Sampler:
    def __init__(self, routers: dict[str, str], pool_keys: frozenset[tuple[int, str]],
                 observers: dict[str, tuple[Router, Path, list[str]]], out_dir: Path, hz: float = 10.0):
        """``observers``: per observer router, its implementation, its node's directory and the
        addresses of the speakers it peers with; a sample counts what it has received from them
        (the incident's graph)."""
        self.out_dir = out_dir
        self.interval = 1.0 / hz
        self.observers = observers
        self.events = open(out_dir / "kernel-events.jsonl", "a", buffering=1)
        self.samples = open(out_dir / "samples.jsonl", "a", buffering=1)
        self.lock = threading.Lock()
        self.watchers = {r: KernelWatcher(r, ns, pool_keys, self._changed) for r, ns in routers.items()}
        self.latest: dict[str, Any] = {}
        # per observer: (time.monotonic() of its last answer, that answer, what asking cost in
        # seconds); asked again only once its implementation's poll_interval has passed
        # (lab.routers.base.Router) and the last question's cost is under DUTY of the time since
        self.answers: dict[str, tuple[float, dict[str, Any], float]] = {}
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._loop, name="sampler", daemon=True)

    def _changed(self, t: float, router: str, changes: list[tuple[str, bool]]) -> None:
        # One write per netlink read, each line formatted directly: json.dumps per event was
        # two thirds of the watcher's cost (0.28 of 0.41 s for the 45,500 changes of one
        # 6,500-prefix announcement), CPU the routers it watches were waiting for. Router
        # names and CIDRs need no escaping.
        lines = "".join(f'{{"t": {t!r}, "router": "{router}", "prefix": "{p}", "event": "{"add" if up else "del"}"}}\n'
                        for p, up in changes)
        with self.lock:
            self.events.write(lines)

    def start(self, timeout: float = 30.0) -> None:
        for w in self.watchers.values():
            w.start()
        for w in self.watchers.values():
            if not w.ready.wait(timeout):
                raise BgplabError(f"kernel watcher for {w.router} did not finish its first dump in {timeout:g} s")
            if w.error:
                raise BgplabError(f"kernel watcher for {w.router}: {w.error}")
        self.thread.start()

    def stop(self) -> None:
        self.stopping.set()
        for w in self.watchers.values():
            w.stopping.set()

    def wait_quiet(self, routers: list[str], quiet: float, timeout: float) -> bool:
        """Return once none of ``routers``' kernel tables has changed for ``quiet`` seconds
        (True), or after ``timeout`` (False). Sleeps; polls nothing."""
        deadline = time.monotonic() + timeout
        watched = [self.watchers[r] for r in routers if r in self.watchers]
        while True:
            now = time.monotonic()
            last = max((w.last_change for w in watched), default=0.0)
            if now - last >= quiet:
                return True
            if now >= deadline or self.stopping.wait(min(quiet - (now - last), deadline - now)):
                return False

    def _observer_counts(self) -> dict[str, Any]:
        """Per observer: the prefixes it received from the edge's speakers; an observer with no
        session to a speaker (it hears the edge through a transit, as minimal.yaml's r2 does) is
        counted by its BGP table instead, and says so (``from``): never a 0 that does not apply."""
        out: dict[str, Any] = {}
        now = time.monotonic()
        for name, (router, node_dir, speakers) in self.observers.items():
            last = self.answers.get(name)
            if last is not None and now - last[0] < max(router.poll_interval - 0.01, last[2] / DUTY):
                # the last answer, said to be as old as it is
                out[name] = {**last[1], "age_s": round(now - last[0], 3)}
                continue
            out[name] = self._ask(router, node_dir, speakers)
            after = time.monotonic()
            self.answers[name] = (after, out[name], after - now)
            now = after
        return out

    @staticmethod
    def _ask(router: Router, node_dir: Path, speakers: list[str]) -> dict[str, Any]:
        try:
            if not speakers:
                return {**router.received(node_dir), "from": "table"}
            sessions = router.sessions(node_dir)
        except BgplabError as e:
            return {"error": str(e)[:200]}
        got: dict[str, Any] = {"ipv4": 0, "ipv6": 0}
        for addr in speakers:
            for fam, n in sessions.get(addr, {}).get("received", {}).items():
                got[fam] += n
        return {**got, "from": "speakers"}

    def sample(self) -> dict[str, Any]:
        return {
            "t": time.time(),
            "kernel": {r: w.counts() for r, w in self.watchers.items()},
            "observer_received": self._observer_counts(),
        }

    def _loop(self) -> None:
        next_at = time.monotonic()
        while not self.stopping.is_set():
            s = self.sample()
            self.latest = s
            self.samples.write(json.dumps(s) + "\n")
            next_at += self.interval
            delay = next_at - time.monotonic()
            if delay < 0:  # fell behind (a slow router's answer): skip, do not burst
                next_at = time.monotonic()
                delay = 0
            self.stopping.wait(delay)

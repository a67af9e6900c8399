"""Prefix counts over time: every router's kernel table (netlink, through pyroute2) and the
observer's BGP table, sampled at 10 Hz, plus one event per kernel route change.

Re-dumping 6,500 routes with pyroute2 takes ~0.3 s per router, far too slow for 10 Hz
on seven routers, so each router gets one dump at start and then follows the kernel's
own route notifications (RTM_NEWROUTE / RTM_DELROUTE); a sample reads the counts kept
that way. Each change is also written with its time, which is what convergence
times are measured from.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from pathlib import Path
from typing import Any, Callable

from pyroute2 import IPRoute
from pyroute2.netlink.rtnl import RTMGRP_IPV4_ROUTE, RTMGRP_IPV6_ROUTE

from lab.daemons import frr
from lab.errors import BgplabError

MAIN = 254


def _key(msg: Any) -> tuple[int, str] | None:
    if (msg.get("RTA_TABLE") or msg.get("table")) != MAIN:
        return None
    dst = msg.get("RTA_DST")
    if dst is None:
        return None
    return (4 if msg["family"] == socket.AF_INET else 6, f"{dst}/{msg['dst_len']}")


class KernelWatcher(threading.Thread):
    """Follows one namespace's main routing table; keeps which pool prefixes are present."""

    def __init__(self, router: str, namespace: str, pool_keys: frozenset[tuple[int, str]],
                 on_change: Callable[[float, str, str, bool], None]):
        super().__init__(name=f"kernel-{router}", daemon=True)
        self.router, self.namespace, self.pool_keys, self.on_change = router, namespace, pool_keys, on_change
        self.present: set[tuple[int, str]] = set()
        self.ready = threading.Event()
        self.stopping = threading.Event()
        self.error: str | None = None

    def counts(self) -> dict[str, int]:
        present = self.present
        v6 = sum(1 for v, _ in present if v == 6)
        return {"ipv4": len(present) - v6, "ipv6": v6}

    def run(self) -> None:
        try:
            # pyroute2's socket must be made in the thread that reads it.
            ipr = IPRoute(netns=self.namespace)
            ipr.bind(groups=RTMGRP_IPV4_ROUTE | RTMGRP_IPV6_ROUTE)
            for fam in (socket.AF_INET, socket.AF_INET6):
                for r in ipr.get_routes(family=fam, table=MAIN):
                    k = _key(r)
                    if k in self.pool_keys:
                        self.present.add(k)
            self.ready.set()
            while not self.stopping.is_set():
                for msg in ipr.get():
                    event = msg.get("event")
                    k = _key(msg)
                    if k not in self.pool_keys:
                        continue
                    now = time.time()
                    if event == "RTM_NEWROUTE" and k not in self.present:
                        self.present = self.present | {k}
                        self.on_change(now, self.router, k[1], True)
                    elif event == "RTM_DELROUTE" and k in self.present:
                        self.present = self.present - {k}
                        self.on_change(now, self.router, k[1], False)
        except Exception as e:  # the namespace went away (lab down) or netlink failed
            self.error = str(e)
            self.ready.set()


class Sampler:
    def __init__(self, routers: dict[str, str], pool_keys: frozenset[tuple[int, str]],
                 observers: dict[str, frr.FrrPaths], out_dir: Path, hz: float = 10.0):
        self.out_dir = out_dir
        self.interval = 1.0 / hz
        self.observers = observers
        self.events = open(out_dir / "kernel-events.jsonl", "a", buffering=1)
        self.samples = open(out_dir / "samples.jsonl", "a", buffering=1)
        self.lock = threading.Lock()
        self.watchers = {r: KernelWatcher(r, ns, pool_keys, self._changed) for r, ns in routers.items()}
        self.latest: dict[str, Any] = {}
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._loop, name="sampler", daemon=True)

    def _changed(self, t: float, router: str, prefix: str, present: bool) -> None:
        line = json.dumps({"t": t, "router": router, "prefix": prefix, "event": "add" if present else "del"})
        with self.lock:
            self.events.write(line + "\n")

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

    def _observer_counts(self) -> dict[str, Any]:
        out = {}
        for name, paths in self.observers.items():
            try:
                out[name] = frr.rib_counts(paths)
            except BgplabError as e:
                out[name] = {"error": str(e)[:200]}
        return out

    def sample(self) -> dict[str, Any]:
        return {
            "t": time.time(),
            "kernel": {r: w.counts() for r, w in self.watchers.items()},
            "observer_bgp": self._observer_counts(),
        }

    def _loop(self) -> None:
        next_at = time.monotonic()
        while not self.stopping.is_set():
            s = self.sample()
            self.latest = s
            self.samples.write(json.dumps(s) + "\n")
            next_at += self.interval
            delay = next_at - time.monotonic()
            if delay < 0:  # fell behind (a slow vtysh): skip, do not burst
                next_at = time.monotonic()
                delay = 0
            self.stopping.wait(delay)

"""The edge's state: which services each machine of each PoP serves on each prefix.

The Addressing API is the configured state; the edge is what has reached the machines
(operational state). A binding change starts toward every machine at once and reaches
them one after another over ``delay`` seconds, in an order fixed by the seed; a global
config push reaches them machine by machine at the times its rollout gives. A PoP's
responder answers from what has reached the machine that took the connection, not from
the inventory: a prefix advertised while its binding has not arrived answers 403 "Edge
IP Restricted" there (what the incident's customers saw after a re-announcement, and
the resolver's website saw while its binding was gone).

``Edge`` keeps the state and the pending changes; ``tick`` applies what is due. The
controller's service ticks it on the lab clock and writes each PoP's state to a SQLite
file its responder reads (``EdgeFiles``); the mechanism (controller.drills.mechanism)
ticks it on a simulated clock and keeps it in memory.
"""

from __future__ import annotations

import heapq
import random
import sqlite3
import threading
import time
import traceback
from pathlib import Path
from typing import Any, Callable, Protocol

from controller.inventory import cidr_of


class Store(Protocol):
    def apply(self, changes: list[tuple[str, str, frozenset[str]]]) -> None: ...


class Edge:
    def __init__(self, machines: dict[str, int], initial: dict[str, list[str]], *, delay: float = 0.0,
                 seed: int = 0, clock: Callable[[], float] = time.time, store: Store | None = None):
        """``machines``: PoP -> number of machines; ``initial``: CIDR -> services bound
        everywhere at the start (the inventory's bindings)."""
        if not machines or any(n < 1 for n in machines.values()):
            raise ValueError("the edge needs at least one PoP with at least one machine")
        self.machines = [f"{pop}/{i}" for pop, n in machines.items() for i in range(n)]
        self.order = self.machines[:]
        random.Random(f"edge:{seed}").shuffle(self.order)  # the order changes reach the machines
        self.delay, self.clock, self.store = delay, clock, store
        self.desired: dict[str, frozenset[str]] = {c: frozenset(s) for c, s in initial.items()}
        self.state: dict[str, dict[str, frozenset[str]]] = {m: dict(self.desired) for m in self.machines}
        self.pending: list[tuple[float, int, str, str, frozenset[str]]] = []
        self.seq = 0
        self.applied = 0
        self.last_due = None  # when the last change applied was due (its scheduled time)
        self.lock = threading.Lock()
        if store is not None:
            store.apply([(m, c, s) for m in self.machines for c, s in self.desired.items()])

    def _schedule(self, machine: str, at: float, cidr: str, services: frozenset[str]) -> None:
        self.seq += 1
        heapq.heappush(self.pending, (at, self.seq, machine, cidr, services))

    def changed(self, bindings: dict[str, list[str]], pops: list[str] | None = None) -> dict[str, Any]:
        """Prefix id -> its services now: the change reaches the machines (of ``pops``, or all)
        one after another, the last ``delay`` seconds from now."""
        now = self.clock()
        order = [m for m in self.order if pops is None or m.rpartition("/")[0] in pops]
        n = len(order)
        with self.lock:
            for pid, services in bindings.items():
                cidr, s = cidr_of(pid), frozenset(services)
                self.desired[cidr] = s
                for k, machine in enumerate(order):
                    self._schedule(machine, now + self.delay * (k + 1) / n, cidr, s)
        return {"prefixes": len(bindings), "machines": n, "done_by": now + self.delay}

    def push(self, bindings: dict[str, list[str]], rollout: list[dict[str, Any]]) -> dict[str, Any]:
        """A global config push: machine ``m`` applies every one of ``bindings`` at its ``at``."""
        problem = self.check_rollout(rollout)
        if problem:
            raise ValueError(problem)
        with self.lock:
            for pid, services in bindings.items():
                cidr, s = cidr_of(pid), frozenset(services)
                self.desired[cidr] = s
                for r in rollout:
                    self._schedule(r["machine"], float(r["at"]), cidr, s)
        return {"prefixes": len(bindings), "machines": len(rollout), "done_by": max(r["at"] for r in rollout)}

    def check_rollout(self, rollout: list[dict[str, Any]]) -> str | None:
        """What is wrong with a push's rollout, or None: every machine once, no other."""
        named = [r["machine"] for r in rollout]
        unknown = [u for u in named if u not in self.state]
        if unknown:
            return f"no edge machine {', '.join(repr(u) for u in unknown[:5])} (machines: {', '.join(self.machines)})"
        twice = sorted({m for m in named if named.count(m) > 1})
        if twice:
            return f"machine {', '.join(twice)} named more than once"
        missing = sorted(set(self.machines) - set(named))
        if missing:
            return f"it leaves out {', '.join(missing)}: a global push reaches every machine"
        return None

    def tick(self, now: float | None = None) -> int:
        """Apply every change due by ``now``; returns how many."""
        now = self.clock() if now is None else now
        due: list[tuple[str, str, frozenset[str]]] = []
        with self.lock:
            while self.pending and self.pending[0][0] <= now:
                due_at, _, machine, cidr, services = heapq.heappop(self.pending)
                self.state[machine][cidr] = services
                self.last_due = due_at
                due.append((machine, cidr, services))
            self.applied += len(due)
        if due and self.store is not None:
            self.store.apply(due)
        return len(due)

    def serves(self, machine: str, cidr: str, service: str) -> bool:
        return service in self.state[machine].get(cidr, ())

    def lagging(self) -> dict[str, int]:
        """Per machine, prefixes whose services there differ from the API's (configured) ones."""
        with self.lock:
            return {m: sum(1 for c, s in self.desired.items() if self.state[m].get(c, frozenset()) != s)
                    for m in self.machines}

    def status(self) -> dict[str, Any]:
        return {"machines": self.machines, "order": self.order, "delay": self.delay,
                "pending": len(self.pending), "applied": self.applied, "lagging": self.lagging()}


class EdgeFiles:
    """Each PoP's state as a SQLite file (``<dir>/<pop>.sqlite``) its responder reads."""

    SCHEMA = ("CREATE TABLE IF NOT EXISTS bound (machine INTEGER NOT NULL, cidr TEXT NOT NULL, service TEXT NOT NULL,"
              " PRIMARY KEY (cidr, machine, service)) WITHOUT ROWID;"
              "CREATE TABLE IF NOT EXISTS prefixes (cidr TEXT PRIMARY KEY) WITHOUT ROWID")

    def __init__(self, directory: Path, pops: dict[str, list[str]]):
        """``pops``: PoP -> the prefixes it serves (CIDRs)."""
        directory.mkdir(parents=True, exist_ok=True)
        self.dbs = {}
        for pop, prefixes in pops.items():
            path = self.path(directory, pop)
            for stale in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
                stale.unlink(missing_ok=True)
            db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
            db.execute("PRAGMA journal_mode=WAL")
            db.executescript(self.SCHEMA)
            # One transaction: in autocommit every row was its own commit, and this loop was 1.6 s
            # of `bgplab up`'s controller start on the reference lab (cProfile of the service).
            db.execute("BEGIN IMMEDIATE")
            db.executemany("INSERT INTO prefixes VALUES (?)", [(c,) for c in prefixes])
            db.execute("COMMIT")
            self.dbs[pop] = db

    @staticmethod
    def path(directory: Path, pop: str) -> Path:
        return directory / f"{pop}.sqlite"

    def apply(self, changes: list[tuple[str, str, frozenset[str]]]) -> None:
        # A batch may change one prefix on one machine more than once: the last change is the state.
        last: dict[tuple[str, int, str], frozenset[str]] = {}
        for machine, cidr, services in changes:
            pop, _, n = machine.rpartition("/")
            last[(pop, int(n), cidr)] = services
        by_pop: dict[str, list[tuple[int, str, frozenset[str]]]] = {}
        for (pop, n, cidr), services in last.items():
            by_pop.setdefault(pop, []).append((n, cidr, services))
        for pop, items in by_pop.items():
            db = self.dbs[pop]
            db.execute("BEGIN IMMEDIATE")
            try:
                db.executemany("DELETE FROM bound WHERE cidr = ? AND machine = ?", [(c, n) for n, c, _ in items])
                db.executemany("INSERT INTO bound VALUES (?, ?, ?)", [(n, c, s) for n, c, ss in items for s in ss])
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")

    def close(self) -> None:
        for db in self.dbs.values():
            db.close()


class Ticker(threading.Thread):
    """Calls ``tick`` every ``interval`` seconds: the edge's due changes (``Edge.tick``), the
    staged rollout's decisions (``controller.changes.Changes.tick``). A failure ends it and is
    kept in ``error``, which the service's status and observe routes report."""

    def __init__(self, tick: Callable[[], Any], name: str, interval: float = 0.05):
        super().__init__(name=name, daemon=True)
        self.tick, self.interval = tick, interval
        self.stopping = threading.Event()
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            while not self.stopping.wait(self.interval):
                self.tick()
        except BaseException as e:  # noqa: BLE001 - kept, reported by the service's routes
            traceback.print_exc()  # into the controller's log, with where it failed
            self.error = e

    def stop(self) -> None:
        self.stopping.set()
        self.join(timeout=5)

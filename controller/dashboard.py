"""The live dashboard's feed: what the controller already measures, once a second, to the
browsers that are connected (server-sent events, GET /v1/lab/stream).

Most of a frame is read from what the controller keeps anyway: the sampler's latest
observer count and kernel tables (network), the inventory's impact counts (controller),
the end hosts' last probe results (network), the audit log (controller), the drill's
clock (the drill runner puts it, PUT /v1/lab/drill). The one costly part, every router's
BGP sessions (one query per router, lab.routers), is polled only while a browser is connected,
every ``sessions_every`` seconds (5): a lab nobody watches pays nothing for the dashboard.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any, Callable

from lab.kinds import router_of
from lab.errors import BgplabError
from lab.plan import LabPlan

PAGE = Path(__file__).with_name("dashboard.html")

from controller.observe import mrt
from controller.observe.mrt import UPDATE, ReadStats, _key, _prefixes
from controller.observe.probe import by_end_host
from controller.observe.tail import recent


def topology(plan: LabPlan, versions: dict[str, str] | None = None) -> dict[str, Any]:
    """Nodes and links (input: the lab's plan), each link with the sessions it carries; each
    router with its implementation and the version its node runs (``versions``, as `up` read them)."""
    versions = versions or {}
    nodes = [{"name": n.name, "kind": n.kind.value, "implementation": n.implementation,
              "version": versions.get(n.implementation) if n.implementation else None, "role": n.role.value, "asn": n.asn}
             for n in plan.nodes.values()]
    links = []
    seen = set()
    for n in plan.nodes.values():
        for i in n.interfaces:
            key = tuple(sorted((n.name, i.peer)))
            if key in seen:
                continue
            seen.add(key)
            bgp = any(s.peer == i.peer for s in n.sessions) or any(s.peer == n.name for s in plan.nodes[i.peer].sessions)
            links.append({"a": key[0], "b": key[1], "bgp": bgp})
    return {"nodes": nodes, "links": links}


class SessionPoller(threading.Thread):
    """Every router's sessions (``show bgp summary``) while a browser is connected."""

    def __init__(self, plan: LabPlan, node_dir: Callable[[str], Path], every: float, clients: Callable[[], int],
                 mrt_tail: "MrtTail | None" = None):
        super().__init__(name="dashboard-sessions", daemon=True)
        self.every, self.clients, self.mrt_tail = every, clients, mrt_tail
        self.routers = {n.name: (router_of(n), node_dir(n.name), {str(s.peer_v4): s.peer for s in n.sessions})
                        for n in plan.routers()}
        self.latest: dict[str, Any] = {}  # "a|b" -> state as a's end sees it; router -> prefixes received
        self.polls = 0
        self.seconds = 0.0  # time spent polling, for the dashboard's own cost
        self.stopping = threading.Event()
        self.error: str | None = None

    def _poll(self) -> str | None:
        """One poll: every router's sessions, then the MRT's new records; what went wrong, if anything."""
        errors = []
        sessions, received = {}, {}
        for name, (router, nd, peers) in self.routers.items():
            try:
                got = router.sessions(nd)
            except BgplabError as e:  # a router down (a fault): its sessions are unknown
                errors.append(f"{name}: {str(e)[:200]}")
                continue
            total = 0
            for addr, s in got.items():
                peer = peers.get(addr)
                if peer is not None:
                    sessions[f"{name}|{peer}"] = s["state"]
                total += sum(s.get("received", {}).values())
            received[name] = total
        self.latest = {"sessions": sessions, "received": received, "t": time.time()}
        if self.mrt_tail is not None:
            try:
                self.mrt_tail.read()
            except Exception as e:  # noqa: BLE001 - shown on the page, not fatal to the lab
                errors.append(f"the collector's MRT: {e!r}"[:300])
        return "; ".join(errors) or None

    def run(self) -> None:
        while not self.stopping.wait(self.every):
            if not self.clients():
                continue
            t0 = time.monotonic()
            try:
                self.error = self._poll()
            except Exception as e:  # noqa: BLE001 - on the page (a frame's error), and the poller goes on
                self.error = f"the dashboard's poller: {e!r}"[:300]
            self.polls += 1
            self.seconds += time.monotonic() - t0


class MrtTail:
    """The collector's UPDATEs as they are written, from where the last read stopped: each
    vantage point's AS path per prefix, and an event when a prefix's path changes or goes
    (path hunting, live). Bounded per read; a record still being written is read next time."""

    def __init__(self, path: Path, vantage_points: dict[str, str], keep: int = 200, per_read: int = 3000):
        self.path, self.vps, self.keep, self.per_read = path, vantage_points, keep, per_read
        self.offset = 0
        self.stats = ReadStats()  # records read so far, across reads (named in an error)
        self.paths: dict[tuple[str, str], tuple[int, ...]] = {}
        self.events: list[dict[str, Any]] = []
        self.seen = 0  # events so far (a client asks for those after its last)

    def read(self) -> None:
        if not self.path.exists() or self.path.stat().st_size <= self.offset:
            return
        # the last record, still being written, is read next time; damage inside the file is an
        # MrtError, on the page
        for data, self.offset in mrt.records(self.path, self.offset, self.per_read, self.stats):
            self._entry(data)

    def _entry(self, d: dict[str, Any]) -> None:
        msg = d.get("bgp_message")
        if not msg or _key(msg.get("type")) != UPDATE:
            return
        vp = self.vps.get(d.get("peer_ip"))
        if vp is None:
            return
        t = _key(d["timestamp"]) + d.get("microsecond_timestamp", 0) / 1e6
        announced, withdrawn, path = _prefixes(msg.get("nlri", [])), _prefixes(msg.get("withdrawn_routes", [])), None
        for attr in msg.get("path_attributes", []):
            kind, value = _key(attr["type"]), attr["value"]
            if kind == 2:
                path = tuple(int(a) for seg in value for a in seg["value"])
            elif kind == 14:
                announced += _prefixes(value.get("nlri", []))
            elif kind == 15:
                withdrawn += _prefixes(value.get("withdrawn_routes", []))
        for p in withdrawn:
            self.paths.pop((vp, p), None)
            self._add({"t": t, "vp": vp, "prefix": p, "kind": "withdraw"})
        for p in announced:
            before = self.paths.get((vp, p))
            self.paths[(vp, p)] = path or ()
            if before is not None and before != path:  # a path change: hunting (or a restore's first path)
                self._add({"t": t, "vp": vp, "prefix": p, "kind": "path", "as_path": list(path or ()),
                           "was": list(before)})

    def _add(self, e: dict[str, Any]) -> None:
        self.seen += 1
        self.events.append({**e, "n": self.seen})
        del self.events[:-self.keep]


class Dashboard:
    def __init__(self, plan: LabPlan, node_dir: Callable[[str], Path], sampler: Any, inv: Any, changes: Any,
                 probes: Path, *, sessions_every: float = 5.0, versions: dict[str, str] | None = None):
        self.plan, self.sampler, self.inv, self.changes, self.probes = plan, sampler, inv, changes, probes
        self.topology = topology(plan, versions)
        self.lock = threading.Lock()
        self.clients = 0
        self.drill: dict[str, Any] | None = None
        self._shared: dict[str, Any] | None = None
        self._shared_at = 0.0
        collector = next((r for r in plan.routers() if r.role.value == "collector"), None)
        feed = router_of(collector).feed(node_dir(collector.name)) if collector else None
        self.mrt = MrtTail(feed,
                           {str(s.peer_v4): s.peer for s in collector.sessions}) if feed else None
        self.poller = SessionPoller(plan, node_dir, sessions_every, lambda: self.clients, self.mrt)
        self.poller.start()

    def connect(self) -> None:
        with self.lock:
            self.clients += 1

    def disconnect(self) -> None:
        with self.lock:
            self.clients -= 1

    def frame(self, after: int = 0, hunted_after: int = 0) -> dict[str, Any]:
        """One client's update: the shared part (made at most once a second, whatever the number
        of browsers) with the audit events and path events this client has not had yet."""
        with self.lock:
            if self._shared is None or time.monotonic() - self._shared_at >= 0.9:
                self._shared, self._shared_at = self._frame(), time.monotonic()
            shared = self._shared
        events = self.changes.audit_log(50, after) if self.changes is not None else []
        return {**shared,
                "events": [{"seq": e["seq"], "at": e["at"], "actor": e["actor"], "action": e["action"],
                            "prefixes": e["prefixes"], "change": e["change_id"]} for e in events],
                "hunting": [e for e in (self.mrt.events if self.mrt else []) if e["n"] > hunted_after][-50:]}

    def _frame(self) -> dict[str, Any]:
        """The part of an update every client shares: each part says where it comes from."""
        s = self.sampler.latest if self.sampler is not None else {}
        received = s.get("observer_received") or {}
        observer = sum(v for c in received.values() for v in c.values() if isinstance(v, int)) if received else None
        probes: dict[str, dict[str, list[int]]] = {}
        for e in recent(self.probes, 2.0):
            if not by_end_host(e):
                continue  # the PoPs' own egress attempts
            ok, n = probes.setdefault(e.get("product", "cdn"), {}).setdefault(e["host"], [0, 0])
            probes[e.get("product", "cdn")][e["host"]] = [ok + (e["result"] == "ok"), n + 1]
        kernel = {r: c.get("ipv4", 0) + c.get("ipv6", 0) for r, c in (s.get("kernel") or {}).items()}
        polled = self.poller.latest
        return {
            "t": time.time(),
            "observer": observer,  # network: the observer's BGP table (the sampler, 10 Hz)
            # what the count is: routes from the edge's speakers, or (an observer with no session to
            # one) its whole BGP table
            "observer_from": sorted({c["from"] for c in received.values() if "from" in c}),
            "kernel": kernel,  # network: each router's kernel table, pool prefixes
            "received": polled.get("received", {}),  # network: BGP routes each router received (its own count)
            "sessions": polled.get("sessions", {}),  # network: each session's state, as one end sees it
            "impact": self.impact(),  # controller: the inventory
            "probes": probes,  # network: ok and total per product and end host, last 2 s
            "drill": self.drill,  # the drill runner's clock, steps and speed
            "cost": {"session_polls": self.poller.polls, "session_poll_s": round(self.poller.seconds, 3),
                     "clients": self.clients},
            "error": self.poller.error,
        }

    def impact(self) -> dict[str, int]:
        with self.inv.lock:
            row = self.inv.db.execute(
                "SELECT SUM(advertised = 0 AND nbind > 0), SUM(advertised = 0 AND nbind = 0), SUM(advertised = 1) FROM "
                "(SELECT p.advertised, (SELECT COUNT(*) FROM bindings b WHERE b.prefix_id = p.id) AS nbind "
                "FROM prefixes p WHERE p.byoip = 1)").fetchone()
        return {"withdrawn_bound": row[0] or 0, "withdrawn_unbound": row[1] or 0, "advertised": row[2] or 0}

    def stop(self) -> None:
        self.poller.stopping.set()

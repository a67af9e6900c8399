"""Inventory -> speakers, through the lab's channel, then verified against what the peers received.

The reconciler keeps, per speaker, the set of prefixes it has told that speaker to
announce. A change in the inventory is a diff between that set and what the
inventory wants (``Inventory.desired``): withdrawals and announcements, batched by
attribute set, every command acknowledged. When a speaker restarts (its channel
drops and comes back) it has forgotten everything, so its whole desired state is
sent again.
"""

from __future__ import annotations

import ipaddress
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from controller.inventory import Inventory, Prefix
from lab.daemons import exabgp
from lab.kinds import router_of
from lab.errors import BgplabError, SpeakerError
from lab.plan import LabPlan, NodePlan
from lab.state import LabState

Log = Callable[[str, dict[str, Any]], None]


class SpeakerLink:
    """One speaker's channel that notices the speaker going away and coming back."""

    def __init__(self, node: NodePlan, socket: Path, on_return: Callable[[str], None], log: Log):
        self.node, self.socket, self.on_return, self.log = node, socket, on_return, log
        self.lock = threading.Lock()
        self.channel: exabgp.SpeakerChannel | None = None
        self.stopping = threading.Event()
        self.restarts = 0
        self.watcher = threading.Thread(target=self._watch, name=f"link-{node.name}", daemon=True)

    def start(self) -> None:
        with self.lock:
            self.channel = exabgp.SpeakerChannel(self.node.name, self.socket)
        self.watcher.start()

    def stop(self) -> None:
        self.stopping.set()
        with self.lock:
            if self.channel:
                self.channel.close()

    def send_many(self, commands: list[exabgp.Command]) -> list[exabgp.Ack]:
        with self.lock:
            if self.channel is None:
                raise SpeakerError(f"speaker {self.node.name}: its channel is down (speaker restarting?)")
            try:
                return self.channel.send_many(commands)
            except SpeakerError:
                if self.channel.closed():
                    self.channel = None
                raise
            except OSError as e:  # broken pipe, reset, timeout: the channel is gone
                self.channel.close()
                self.channel = None
                raise SpeakerError(f"speaker {self.node.name}: its channel failed: {e}") from e

    def _watch(self) -> None:
        while not self.stopping.wait(0.2):
            with self.lock:
                if self.channel is not None and self.channel.closed():
                    self.channel.close()
                    self.channel = None
                    self.log("speaker_lost", {"speaker": self.node.name})
            if self.channel is None:
                try:
                    ch = exabgp.SpeakerChannel(self.node.name, self.socket)
                except SpeakerError:
                    continue
                with self.lock:
                    self.channel = ch
                self.restarts += 1
                self.log("speaker_back", {"speaker": self.node.name})
                self.on_return(self.node.name)


@dataclass
class SyncResult:
    announced: dict[str, int] = field(default_factory=dict)
    withdrawn: dict[str, int] = field(default_factory=dict)
    commands: int = 0
    seconds: float = 0.0
    errors: list[str] = field(default_factory=list)
    # speaker -> what it was to announce and withdraw when it failed (CIDRs, first 20) and why
    failed: dict[str, dict[str, Any]] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "announced": sum(self.announced.values()),
            "withdrawn": sum(self.withdrawn.values()),
            "per_speaker": {s: {"announced": self.announced.get(s, 0), "withdrawn": self.withdrawn.get(s, 0)}
                            for s in sorted(set(self.announced) | set(self.withdrawn))},
            "commands": self.commands,
            "seconds": round(self.seconds, 4),
            "ok": not self.errors,
            "errors": self.errors,
            "failed": self.failed,
        }


class Reconciler:
    def __init__(self, plan: LabPlan, state: LabState, inventory: Inventory, announced: dict[str, set[str]], log: Log,
                 overlay: Callable[[str, set[str]], set[str]] | None = None,
                 settled: Callable[[list[str], float, float], None] | None = None):
        self.plan, self.state, self.inv, self.log = plan, state, inventory, log
        self.announced = {s.name: set(announced.get(s.name, set())) for s in plan.channel_speakers()}
        self.lock = threading.Lock()
        self.links = {
            s.name: SpeakerLink(s, exabgp.ExabgpPaths(state.node_dir(s.name)).socket, self.resend, log)
            for s in plan.channel_speakers()
        }
        # Speakers whose last feed failed part way: what they announce is unknown, so their
        # next sync withdraws everything not wanted and announces everything wanted.
        self.suspect: set[str] = set()
        self.last_sync: dict[str, Any] = {}
        self.last_verify: dict[str, Any] = {}
        self.verify_queries = 0  # queries to bgpd the verifier has made, all told
        # overlay(speaker, wanted) -> what it should announce now: the change pipeline's staged
        # rollout keeps a change from the PoPs it has not reached yet (controller.changes).
        self.overlay = overlay
        # settled(routers, quiet, timeout): returns once those routers' kernel tables have not
        # changed for ``quiet`` seconds (or at timeout): the service's sampler.
        self.settled = settled
        # One verifier, woken by changes: changes that come while it runs are covered by
        # its next run, so a burst of API calls costs one verification, not one each.
        self.verify_wanted = threading.Event()
        self.stopping = threading.Event()
        self.verifier = threading.Thread(target=self._verify_loop, name="verifier", daemon=True)

    def start(self) -> None:
        for link in self.links.values():
            link.start()
        self.verifier.start()

    def stop(self) -> None:
        self.stopping.set()
        self.verify_wanted.set()
        for link in self.links.values():
            link.stop()

    def _verify_loop(self) -> None:
        while not self.stopping.is_set():
            self.verify_wanted.wait()
            self.verify_wanted.clear()
            if self.stopping.is_set():
                return
            try:
                self.verify(wait=10.0)
            except Exception as e:  # a verification must never take the controller down...
                # ...nor be lost: the last result stays, marked stale, with what stopped the next one
                with self.lock:
                    self.last_verify = {**self.last_verify, "stale": True, "error": f"{type(e).__name__}: {e}",
                                        "error_at": time.time()}
                self.log("verify_error", {"error": str(e)})

    def sync(self, only: list[str] | None = None) -> SyncResult:
        """Make every speaker (or those named) announce exactly what the inventory wants.

        Speakers are fed in parallel: each ExaBGP parses its own commands, and with two
        speakers in sequence the second waited for the first for no reason. A speaker that
        fails is named in the result with what it was to change; nothing is swallowed.
        The inventory's lock is taken before the reconciler's, always in that order (the
        API propagates a change from inside its inventory transaction).
        """
        t0 = time.monotonic()
        result = SyncResult()
        with self.inv.lock, self.lock:
            plans = {}
            for name in only or list(self.links):
                want = self.inv.desired(name)
                if self.overlay is not None:
                    want = self.overlay(name, want)
                have = self.announced[name]
                if name in self.suspect:
                    originated = {str(p.prefix) for p in self.plan.originated_by(name)}
                    add_c, drop_c = want, originated - want
                else:
                    add_c, drop_c = want - have, have - want
                add = sorted((ipaddress.ip_network(c) for c in add_c), key=_order)
                drop = sorted((ipaddress.ip_network(c) for c in drop_c), key=_order)
                if add or drop:
                    plans[name] = (want, add, drop)

            def feed(name: str) -> None:
                want, add, drop = plans[name]
                sessions = self.plan.nodes[name].sessions
                try:
                    commands: list[exabgp.Command] = exabgp.withdrawals(sessions, drop) if drop else []
                    commands += exabgp.announcements(sessions, add) if add else []
                    self.links[name].send_many(commands)
                except Exception as e:  # noqa: BLE001 - every failure is reported with its speaker
                    self.suspect.add(name)
                    result.errors.append(f"{name}: {e}")
                    result.failed[name] = {"error": str(e), "announce": len(add), "withdraw": len(drop),
                                           "prefixes": [str(n) for n in (drop + add)[:20]]}
                    return
                self.suspect.discard(name)
                self.announced[name] = set(want)
                result.announced[name] = len(add)
                result.withdrawn[name] = len(drop)
                result.commands += len(commands)

            threads = [threading.Thread(target=feed, args=(n,), name=f"feed-{n}") for n in plans]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
        result.seconds = time.monotonic() - t0
        self.last_sync = {**result.as_dict(), "at": time.time()}
        self.log("sync", self.last_sync)
        return result

    def on_change(self, changed: list[Prefix]) -> dict[str, Any]:
        """The API's hook: reach the speakers at once; verification follows in the background."""
        speakers = sorted({o for p in changed for o in p.origins if o in self.links})
        result = self.sync(speakers or None)
        self.verify_wanted.set()
        return result.as_dict()

    def resend(self, speaker: str) -> None:
        """A speaker came back: it has forgotten what it announced; tell it everything again."""
        with self.lock:
            self.announced[speaker] = set()
        self.sync([speaker])

    def resend_all(self) -> SyncResult:
        """Tell every speaker its whole state again: what verify found missing comes back, and
        whatever the speaker announces that the inventory does not want is withdrawn."""
        with self.inv.lock, self.lock:
            self.suspect |= set(self.links)
        return self.sync()

    def verification(self) -> dict[str, Any]:
        """The last verification, marked stale when a sync came after it or the next one failed:
        what the speakers hold may no longer be what it says."""
        v = dict(self.last_verify)
        if v and (v.get("stale") or self.last_sync.get("at", 0) > v.get("at", 0)):
            v["stale"] = True
        return v

    def expected(self) -> dict[str, dict[str, dict[str, int]]]:
        """Per speaker, per session peer: how many prefixes of each family it should have received."""
        out: dict[str, dict[str, dict[str, int]]] = {}
        with self.lock:
            for name, cidrs in self.announced.items():
                v6 = sum(1 for c in cidrs if ":" in c)
                counts = {"ipv4": len(cidrs) - v6, "ipv6": v6}
                out[name] = {s.peer: counts for s in self.plan.nodes[name].sessions}
        return out

    def verify(self, wait: float = 0.0) -> dict[str, Any]:
        """Compare what each peer router received from each speaker with what was intended.

        Counts come from the routers (``show bgp summary``), one query per router whatever
        the number of speaker sessions on it. With ``wait`` the check is repeated until it
        matches or the time is up. Between checks it does not poll: it waits (event-driven,
        when ``settled`` is set) for the routers' kernel tables to go quiet, and at least a
        pause that doubles from 50 ms to 1 s, so a check runs when the routers are done,
        not 20 times a second while they work. The result says how many queries it took.
        """
        t0 = time.monotonic()
        routers = sorted({s.peer for name in self.links for s in self.plan.nodes[name].sessions})
        queries, pause = 0, 0.05
        while True:
            diffs = self._differences(routers)
            queries += len(routers)
            elapsed = time.monotonic() - t0
            if not diffs or elapsed >= wait:
                break
            left = wait - elapsed
            if self.stopping.wait(min(pause, left)):
                break
            if self.settled is not None and left > pause:
                self.settled(routers, 0.1, left - pause)
            pause = min(pause * 2, 1.0)
        self.verify_queries += queries
        self.last_verify = {"ok": not diffs, "differences": diffs, "seconds": round(elapsed, 3), "at": time.time(),
                            "queries": queries}
        self.log("verify", self.last_verify)
        return self.last_verify

    def _differences(self, routers: list[str]) -> list[dict[str, Any]]:
        got: dict[str, dict[str, Any]] = {}
        errors: dict[str, str] = {}
        for r in routers:
            try:
                got[r] = router_of(self.plan.nodes[r]).sessions(self.state.node_dir(r))
            except BgplabError as e:
                errors[r] = str(e)
        diffs = []
        for speaker, peers in self.expected().items():
            for s in self.plan.nodes[speaker].sessions:
                if s.peer in errors:
                    diffs.append({"speaker": speaker, "peer": s.peer, "error": errors[s.peer]})
                    continue
                seen = got[s.peer].get(str(s.local_v4), {})
                want = peers[s.peer]
                received = seen.get("received", {})
                if seen.get("state") != "Established" or any(received.get(f, 0) != want[f] for f in want):
                    diffs.append({"speaker": speaker, "peer": s.peer, "state": seen.get("state"),
                                  "intended": want, "received": received})
        return diffs


def _order(net: ipaddress.IPv4Network | ipaddress.IPv6Network) -> tuple[int, int]:
    return (net.version, int(net.network_address))

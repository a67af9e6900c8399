"""The collector's MRT dump (FRR `dump bgp updates-et`), parsed with mrtparse into events.

One ``PrefixEvent`` per prefix per UPDATE: announce (with AS path and next hop) or
withdraw, from which peer, when (microseconds, as the collector stamped it).
"""

from __future__ import annotations

import signal
from collections import defaultdict
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Iterator

# mrtparse sets SIGPIPE to its default (end the process) when it is imported, and only the main
# thread may do that: this module is imported at the controller's start (the dashboard), and the
# process's own setting is put back (a browser that goes away mid-write must be an error on that
# socket, not the end of the controller).
_pipe = signal.getsignal(signal.SIGPIPE)
import mrtparse  # noqa: E402

signal.signal(signal.SIGPIPE, _pipe)

from lab.errors import BgplabError  # noqa: E402

UPDATE = 2


@dataclass(frozen=True)
class PrefixEvent:
    t: float
    peer_ip: str
    peer_as: int
    kind: str  # "announce" | "withdraw"
    prefix: str
    as_path: tuple[int, ...] | None
    next_hop: str | None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Update:
    t: float
    peer_ip: str
    peer_as: int
    announced: list[str]
    withdrawn: list[str]
    as_path: tuple[int, ...] | None
    next_hop: str | None


def _key(v: Any) -> Any:
    # mrtparse gives enumerations as {code: name}
    return next(iter(v)) if isinstance(v, dict) else v


def _prefixes(entries: list[dict]) -> list[str]:
    return [f"{e['prefix']}/{e['length']}" for e in entries or []]


class MrtError(BgplabError):
    """An MRT dump that is damaged somewhere other than a tail cut short."""


@dataclass
class ReadStats:
    """What reading a dump met: records read, and the tail a still-running writer had not
    finished (the only damage expected: FRR writes records whole, but may be stopped mid-way)."""

    records: int = 0
    truncated_tail_bytes: int = 0


def records(path: Path | str, offset: int = 0, limit: int | None = None,
            stats: ReadStats | None = None) -> Iterator[tuple[dict[str, Any], int]]:
    """The dump's records from byte ``offset`` on, each with the offset after it (where a later
    read goes on: the one MRT reader, for whole files and for the dashboard's tail). At most
    ``limit`` records. A record cut short at the very end (a writer still writing, or stopped
    mid-way) ends the iteration and is counted in ``stats``; a damaged record anywhere else is an
    MrtError naming the file, the record and its offset."""
    stats = stats if stats is not None else ReadStats()
    size = Path(path).stat().st_size
    reader = mrtparse.Reader(str(path))
    try:
        reader.f.seek(offset)
        n = 0
        while limit is None or n < limit:
            at = reader.f.tell()
            try:
                entry = next(reader)
            except StopIteration:
                return
            except Exception as e:  # noqa: BLE001 - mrtparse raises bare errors; each is named below
                if reader.f.tell() >= size:
                    stats.truncated_tail_bytes = size - at
                    return
                raise MrtError(f"{path}: record {stats.records + 1} at byte {at} cannot be read: {e!r}") from None
            if entry.err:
                if reader.f.tell() >= size and "length" in (entry.err_msg or ""):
                    stats.truncated_tail_bytes = size - at
                    return
                raise MrtError(f"{path}: record {stats.records + 1} at byte {at}: {entry.err_msg}")
            stats.records += 1
            stats.truncated_tail_bytes = 0
            n += 1
            yield entry.data, reader.f.tell()
    finally:
        reader.f.close()


def updates(path: Path | str, stats: ReadStats | None = None) -> Iterator[Update]:
    """Every UPDATE in the file, in file order (``records``: a tail cut short is counted in
    ``stats``, damage elsewhere is an MrtError)."""
    for d, _ in records(path, stats=stats):
        if "bgp_message" not in d:
            continue
        msg = d["bgp_message"]
        if _key(msg.get("type")) != UPDATE:
            continue
        t = _key(d["timestamp"]) + d.get("microsecond_timestamp", 0) / 1e6
        announced = _prefixes(msg.get("nlri", []))
        withdrawn = _prefixes(msg.get("withdrawn_routes", []))
        as_path: tuple[int, ...] | None = None
        next_hop = None
        for attr in msg.get("path_attributes", []):
            kind, value = _key(attr["type"]), attr["value"]
            if kind == 2:  # AS_PATH
                as_path = tuple(int(a) for seg in value for a in seg["value"])
            elif kind == 3:  # NEXT_HOP
                next_hop = value
            elif kind == 14:  # MP_REACH_NLRI
                announced += _prefixes(value.get("nlri", []))
                nh = value.get("next_hop")
                next_hop = nh[0] if isinstance(nh, list) and nh else nh
            elif kind == 15:  # MP_UNREACH_NLRI
                withdrawn += _prefixes(value.get("withdrawn_routes", []))
        yield Update(t, d["peer_ip"], int(d["peer_as"]), announced, withdrawn, as_path, next_hop)


def events(path: Path | str, prefix: str | None = None, stats: ReadStats | None = None) -> list[PrefixEvent]:
    """Per-prefix events, in time order; only ``prefix``'s if given."""
    out = []
    for u in updates(path, stats):
        for p in u.withdrawn:
            if prefix is None or p == prefix:
                out.append(PrefixEvent(u.t, u.peer_ip, u.peer_as, "withdraw", p, None, None))
        for p in u.announced:
            if prefix is None or p == prefix:
                out.append(PrefixEvent(u.t, u.peer_ip, u.peer_as, "announce", p, u.as_path, u.next_hop))
    out.sort(key=lambda e: e.t)
    return out


def wire_counts(path: Path | str, since: float = 0.0, until: float = float("inf")) -> dict[str, dict[str, int]]:
    """Per peer: UPDATE messages, NLRI announced and withdrawn, between two times.

    Empty UPDATEs (End-of-RIB markers) are not counted as messages that carried anything.
    """
    out: dict[str, dict[str, int]] = defaultdict(lambda: {"updates": 0, "announced": 0, "withdrawn": 0})
    for u in updates(path):
        if not (since <= u.t <= until) or not (u.announced or u.withdrawn):
            continue
        c = out[u.peer_ip]
        c["updates"] += 1
        c["announced"] += len(u.announced)
        c["withdrawn"] += len(u.withdrawn)
    return dict(out)

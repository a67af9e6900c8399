"""Who feeds a synthetic Internet table (lab.table) into the lab: a speaker's feeder.

Two feeders, one speaker node each, measured side by side in `make bench-full-table`:

* ``exabgp``: ExaBGP, the drills' speaker, fed one command per attribute set through the lab's
  channel (lab.announce). It parses every prefix in Python: 73.5 s of its own CPU for the
  million-prefix table, the full table's floor before this feeder existed.
* ``gobgp``: gobgpd, given the table as an MRT dump (TABLE_DUMP_V2, RFC 6396, written here)
  through ``gobgp mrt inject global``: the dump is parsed in Go and streamed over the API.

A speaker fed by GoBGP carries tables only: the pools the Addressing API and the drills move
are ExaBGP's (its channel is how the controller announces and withdraws them).

GoBGP 3.10's side, read in its sources (cmd/gobgp/mrt.go, pkg/packet/bgp, internal/pkg/table):
* its ``mrt inject`` never closes its stream (fixed upstream in d0992be3, GoBGP 4.0: "otherwise
  the last few paths are dropped"); here 378 and 724 of 200,000 IPv6 prefixes were lost in two
  runs. So the dump ends with its first records again, a padding to lose, and the feed counts
  the speaker's RIB after each pass and injects what is missing again. A path equal to the one it
  replaces is not sent again (Path.Equal, Update.GetChanges): the repeats cost nothing on the wire;
* its MRT reader decodes a RIB entry's MP_REACH_NLRI as a full attribute (AFI, SAFI, next hop,
  reserved, NLRI), not the abbreviated form of RFC 6396 section 4.3.4: the dump is written in
  the form it reads;
* an injected path is local, and an eBGP session rewrites a local path's next hop only where it
  is unspecified: the dump carries 0.0.0.0 and ::, and each session's IPv6 routes get its link's
  IPv6 address from an export statement (as the GoBGP router's do, lab.routers.gobgp);
* a path added on an established session leaves in an UPDATE of its own (each is propagated
  alone: BgpServer.propagateUpdate), 120,000 UPDATEs for 120,000 prefixes here; so the export is
  held until the table is in, then released with a soft reset out per session, which gobgpd
  packs (CreateUpdateMsgFromPaths): IPv4 by attribute set, IPv6 still a prefix per UPDATE
  (its packerMP packs nothing);
* it has no RFC 8654 extended messages: its UPDATEs are 4,096 bytes at most.

Measured beside ExaBGP (README, Full tables): a tie on a 2-core machine, so ExaBGP stays the
default feeder (lab.topology.model.TABLE_FEEDER).
"""

from __future__ import annotations

import json
import socket
import struct
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, get_args

from lab.errors import BgplabError, DaemonError
from lab.plan import NodePlan
from lab.routers.gobgp import GOBGP_DIR, GobgpDaemon, GobgpPaths, gobgp
from lab.table import Table
from lab.topology.model import Feeder

FEEDERS: tuple[str, ...] = get_args(Feeder)
# Records repeated at the end of the dump, for GoBGP 3.10's inject to lose instead of the table's
# (it lost 378 and 724 in two runs; a repeated path costs nothing on the wire: module docstring)
PADDING = 8192
EXPORT = "speaker-export"

_TABLE_DUMP_V2, _PEER_INDEX_TABLE, _RIB = 13, 1, {"ipv4": 2, "ipv6": 4}
_AF = {"ipv4": socket.AF_INET, "ipv6": socket.AF_INET6}
_ORIGIN_IGP = bytes((0x40, 1, 1, 0))
_NEXT_HOP_UNSPECIFIED = bytes((0x40, 3, 4)) + bytes(4)
# MP_REACH_NLRI, optional: AFI 2, SAFI 1, a 16-byte next hop (::), reserved, no NLRI of its own
_MP_REACH_UNSPECIFIED = struct.pack("!BBBHBB", 0x80, 14, 21, 2, 1, 16) + bytes(16) + b"\x00"


def _attributes(family: str, as_path: tuple[int, ...]) -> bytes:
    """ORIGIN, AS_PATH (one AS_SEQUENCE of 4-byte ASNs, as TABLE_DUMP_V2 stores them) and the
    family's next hop, unspecified."""
    if len(as_path) > 255:
        raise BgplabError(f"an AS path of {len(as_path)} ASes does not fit one AS_SEQUENCE segment")
    segment = struct.pack(f"!BB{len(as_path)}I", 2, len(as_path), *as_path)
    flags = 0x50 if len(segment) > 255 else 0x40  # transitive, extended length when it needs it
    length = struct.pack("!H" if flags & 0x10 else "!B", len(segment))
    as_path_attr = bytes((flags, 2)) + length + segment
    return _ORIGIN_IGP + as_path_attr + (_NEXT_HOP_UNSPECIFIED if family == "ipv4" else _MP_REACH_UNSPECIFIED)


def write_mrt(tables: list[Table], path: Path, peer_asn: int, peer_id: str, padding: int = 0) -> dict[str, int]:
    """Write ``tables`` as one TABLE_DUMP_V2 dump (a peer index and one RIB record per prefix,
    the prefixes of one attribute set in a row, so they leave in one UPDATE); records per
    family. ``padding``: the first records again at the end, for a reader that may lose the
    last ones (GoBGP 3.10's inject: module docstring). A prefix the dump cannot carry is an
    error naming it."""
    now = int(time.time())
    peer_ip = socket.inet_aton(peer_id)
    index = peer_ip + struct.pack("!HH", 0, 1) + struct.pack("!B4s4sI", 0x02, peer_ip, peer_ip, peer_asn)
    counts = {"ipv4": 0, "ipv6": 0}
    first: list[bytes] = []
    seq = 0
    with open(path, "wb") as f:
        f.write(struct.pack("!IHHI", now, _TABLE_DUMP_V2, _PEER_INDEX_TABLE, len(index)) + index)
        for table in tables:
            for family, route in table.routes():
                attrs = _attributes(family, route.as_path)
                entry = struct.pack("!HIH", 0, now, len(attrs)) + attrs
                head = struct.pack("!IHH", now, _TABLE_DUMP_V2, _RIB[family])
                af = _AF[family]
                chunk = []
                for prefix in route.prefixes:
                    try:
                        address, length = prefix.split("/")
                        bits = int(length)
                        packed = socket.inet_pton(af, address)[: (bits + 7) // 8]
                    except (ValueError, OSError):
                        raise BgplabError(f"{path}: table prefix {prefix!r} is not an {family} prefix") from None
                    body = struct.pack("!IB", seq, bits) + packed + b"\x00\x01" + entry
                    chunk.append(head + struct.pack("!I", len(body)) + body)
                    seq += 1
                f.write(b"".join(chunk))
                counts[family] += len(route.prefixes)
                if len(first) < padding:
                    first += chunk[: padding - len(first)]
        f.write(b"".join(first))
    path.chmod(0o600)
    return counts


def config(node: NodePlan) -> dict[str, Any]:
    """gobgpd as a speaker: its sessions (it connects), every route it is given exported, IPv6
    with each link's own next hop."""
    neighbors, sets, statements = [], [], []
    for i, s in enumerate(node.sessions):
        t = s.timers
        neighbors.append({
            "config": {"neighbor-address": str(s.peer_v4), "peer-as": s.peer_asn,
                       "description": f"{s.peer} via {s.ifname}"},
            "timers": {"config": {"connect-retry": t.connect_retry, "hold-time": t.hold,
                                  "keepalive-interval": t.keepalive,
                                  "idle-hold-time-after-reset": t.connect_retry}},
            "transport": {"config": {"local-address": str(s.local_v4)}},
            "afi-safis": [{"config": {"afi-safi-name": f}} for f in ("ipv4-unicast", "ipv6-unicast")],
        })
        sets.append({"neighbor-set-name": f"session-{i}", "neighbor-info-list": [str(s.peer_v4)]})
        statements.append({"name": f"next-hop-v6-{i}",
                           "conditions": {"match-neighbor-set": {"neighbor-set": f"session-{i}"},
                                          "bgp-conditions": {"afi-safi-in-list": ["ipv6-unicast"]}},
                           "actions": {"bgp-actions": {"set-next-hop": str(s.local_v6)}}})
    # nothing to refuse on the way in: the routers send a speaker nothing (lab.routers.policy), and
    # a global import policy that rejects would refuse the injected paths too
    # held: nothing leaves until the table is in (release)
    apply: dict[str, Any] = {"default-import-policy": "accept-route", "default-export-policy": "reject-route"}
    definitions = []
    if statements:
        definitions.append({"name": EXPORT, "statements": statements})
        apply["export-policy-list"] = [EXPORT]
    return {"global": {"config": {"as": node.asn, "router-id": str(node.router_id)},
                       "apply-policy": {"config": apply}},
            "neighbors": neighbors, "defined-sets": {"neighbor-sets": sets},
            "policy-definitions": definitions}


class _GobgpFeeder(GobgpDaemon):
    """The speaker's daemon when GoBGP feeds its tables (lab.kinds): the router's gobgpd, run and
    checked the same way, with a speaker's configuration and nothing of its own to originate."""

    def files(self, node: NodePlan) -> dict[str, str]:
        return {"gobgpd.json": json.dumps(config(node), indent=2) + "\n"}

    def ready(self, node_dir: Path) -> bool:
        paths = GobgpPaths(node_dir)
        if not paths.api.exists():
            return False
        gobgp(paths, "global")  # answers: raises DaemonBusy until it does
        return True


GOBGP_FEEDER = _GobgpFeeder()


def rib_counts(node_dir: Path) -> dict[str, int]:
    """Prefixes in the speaker's RIB, per family (GoBGP's own count)."""
    out = {}
    for family in ("ipv4", "ipv6"):
        summary = gobgp(GobgpPaths(node_dir), "global", "rib", "summary", "-a", family)
        out[family] = int((summary or {}).get("num_destination", 0))
    return out


def release(node: NodePlan, paths: GobgpPaths) -> None:
    """Let the table out: the export policy's default turned to accept, and each session sent
    what it now exports in one go (a soft reset out), which gobgpd packs by attribute set."""
    gobgp(paths, "global", "policy", "export", "set", EXPORT, "default", "accept")
    for s in node.sessions:
        gobgp(paths, "neighbor", str(s.peer_v4), "softresetout")


def settled(node_dir: Path, want: dict[str, int], interval: float = 0.2) -> dict[str, int]:
    """The speaker's RIB once it holds ``want`` or has stopped growing: the client exits when it
    has sent, and gobgpd may still be taking in what it was sent."""
    got = rib_counts(node_dir)
    while got != want:
        time.sleep(interval)
        now = rib_counts(node_dir)
        if now == got:
            break
        got = now
    return got


@dataclass(frozen=True)
class Fed:
    """What one feed through GoBGP did: prefixes per family, and where its time went."""

    prefixes: dict[str, int]  # in gobgpd's RIB once fed, per family (its count)
    write_s: float  # the dump written (the controller's work)
    inject_s: float  # gobgp mrt inject, every pass, to the speaker's RIB holding the table
    passes: int


def inject(node: NodePlan, node_dir: Path, tables: list[Table], passes: int = 4) -> Fed:
    """Feed ``tables`` to the speaker's gobgpd: written as an MRT dump in its directory, injected,
    its RIB counted; the tail GoBGP 3.10 drops (module docstring) injected again, up to
    ``passes`` times. The dump is removed afterwards (a million prefixes are 76 MB, and the
    lab's directory may be in memory)."""
    paths = GobgpPaths(node_dir)
    dump = node_dir / "table.mrt"
    t0 = time.monotonic()
    want = write_mrt(tables, dump, node.asn or 0, str(node.router_id), padding=PADDING)
    t1 = time.monotonic()
    total = sum(want.values()) + min(PADDING, sum(want.values()))
    argv = [str(GOBGP_DIR / "gobgp"), "--target", f"unix://{paths.api}", "mrt", "inject", "global", str(dump)]
    try:
        tail = total
        for n in range(1, passes + 1):
            skip = total - tail
            p = subprocess.run(argv + ([str(tail), str(skip)] if skip else []), capture_output=True, text=True,
                               timeout=900)
            errors = [line for line in (p.stdout + p.stderr).splitlines() if line.strip()]
            if p.returncode != 0 or errors:
                raise DaemonError(f"node {node.name}: gobgp mrt inject {dump}: "
                                  f"{'; '.join(errors[-5:]) or f'exit status {p.returncode}'}")
            got = settled(node_dir, want)
            if got == want:
                release(node, paths)
                # gobgpd's own count of its RIB, equal to the dump's: what it holds, not what was written
                return Fed(got, round(t1 - t0, 2), round(time.monotonic() - t1, 2), n)
            # what is missing is before the padding: inject it again, padded
            short = sum(want[f] - got[f] for f in want)
            tail = min(total, 10 * short + PADDING)
        raise DaemonError(f"node {node.name}: after {passes} passes of gobgp mrt inject its RIB holds {got}, "
                          f"not the table's {want}")
    finally:
        dump.unlink(missing_ok=True)

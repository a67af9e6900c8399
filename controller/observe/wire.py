"""BGP as seen on the wire: captures read with scapy's BGP layer.

TCP streams are put back together per direction (a 4,096-byte UPDATE crosses a veth
in three segments), cut into BGP messages by their length field, and each message is
decoded by scapy. Per link: UPDATE messages, NLRI announced and withdrawn; per
prefix: the AS paths it carried, link by link, in time order.
"""

from __future__ import annotations

import ipaddress
import logging
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from scapy.config import conf

# scapy's BGP layer logs its 2-byte-ASN default as a warning when it loads (to whoever runs the
# CLI); the lab sets 4-byte ASNs right after, so that line is noise: its logger is quiet for
# the import alone.
_scapy_log = logging.getLogger("scapy.runtime")
_level = _scapy_log.level
_scapy_log.setLevel(logging.ERROR)
try:
    from scapy.contrib import bgp as scapy_bgp
finally:
    _scapy_log.setLevel(_level)
from scapy.contrib.bgp import BGPHeader, BGPUpdate
from scapy.layers.inet import IP, TCP
from scapy.layers.inet6 import IPv6
from scapy.utils import PcapReader

scapy_bgp.bgp_module_conf.use_2_bytes_asn = False  # AS_PATH carries 4 bytes per AS
# scapy stops decoding a list field at conf.max_list_count (100) elements where the field
# sets no limit of its own, as the withdrawn routes do: an UPDATE withdrawing 1,100
# prefixes was left undecoded and uncounted. A packed UPDATE of 65,535 bytes carries at
# most ~21,800 IPv4 NLRI; the NLRI field's own limit is scapy's 20,000.
conf.max_list_count = max(conf.max_list_count, 65_536)

BGP_PORT = 179


@dataclass(frozen=True)
class WireUpdate:
    t: float
    src: str
    dst: str
    announced: tuple[str, ...]
    withdrawn: tuple[str, ...]
    as_path: tuple[int, ...] | None


def _messages(paths: list[Path]) -> Iterator[tuple[float, str, str, bytes]]:
    """(time, source, destination, message bytes) for every BGP message in the captures."""
    streams: dict[tuple, dict] = {}
    packets = []
    for path in paths:
        with PcapReader(str(path)) as reader:
            for pkt in reader:
                if TCP not in pkt:
                    continue
                tcp = pkt[TCP]
                if BGP_PORT not in (tcp.sport, tcp.dport):
                    continue
                ip = pkt[IP] if IP in pkt else pkt[IPv6] if IPv6 in pkt else None
                if ip is None:
                    continue
                packets.append((float(pkt.time), ip.src, ip.dst, tcp.sport, tcp.dport, tcp.seq, bytes(tcp.payload), tcp.flags))
    packets.sort(key=lambda p: p[0])
    for t, src, dst, sport, dport, seq, payload, flags in packets:
        key = (src, dst, sport, dport)
        st = streams.get(key)
        if flags & 0x02:  # SYN: a new connection starts after this sequence number
            streams[key] = {"next": seq + 1, "buf": b""}
            continue
        if not payload:
            continue
        if st is None:  # joined mid-stream: start here, at a message boundary hopefully
            st = streams[key] = {"next": seq, "buf": b""}
        delta = (seq - st["next"]) & 0xFFFFFFFF
        if delta == 0:
            st["buf"] += payload
            st["next"] = (seq + len(payload)) & 0xFFFFFFFF
        elif delta > 0x7FFFFFFF:  # retransmission overlapping what we have
            overlap = (st["next"] - seq) & 0xFFFFFFFF
            if overlap < len(payload):
                st["buf"] += payload[overlap:]
                st["next"] = (seq + len(payload)) & 0xFFFFFFFF
            continue
        else:  # a gap (the capture missed a segment): drop the partial message, resync here
            st["buf"] = payload
            st["next"] = (seq + len(payload)) & 0xFFFFFFFF
        buf = st["buf"]
        while len(buf) >= 19:
            if buf[:16] != b"\xff" * 16:  # not at a message boundary: resync on the next marker
                i = buf.find(b"\xff" * 16, 1)
                buf = buf[i:] if i > 0 else b""
                continue
            length = int.from_bytes(buf[16:18], "big")
            if length < 19 or len(buf) < length:
                break
            yield t, src, dst, buf[:length]
            buf = buf[length:]
        st["buf"] = buf


def _prefix(nlri) -> str:
    return str(ipaddress.ip_network(nlri.prefix, strict=False))


def updates(paths: list[Path] | Path) -> list[WireUpdate]:
    """Every UPDATE in the captures, decoded, in time order."""
    paths = [paths] if isinstance(paths, Path) else list(paths)
    out = []
    for t, src, dst, raw in _messages(paths):
        msg = BGPHeader(raw)
        if msg.type != 2 or BGPUpdate not in msg:
            continue
        u = msg[BGPUpdate]
        announced = [_prefix(n) for n in (u.nlri or [])]
        withdrawn = [_prefix(n) for n in (u.withdrawn_routes or [])]
        as_path = None
        for attr in u.path_attr or []:
            code = attr.type_code
            value = attr.attribute
            if code == 2 and value is not None:  # AS_PATH
                as_path = tuple(int(a) for seg in value.segments for a in seg.segment_value)
            elif code == 14 and value is not None:  # MP_REACH_NLRI
                announced += [_prefix(n) for n in (value.nlri or [])]
            elif code == 15 and value is not None:  # MP_UNREACH_NLRI
                afi = getattr(value, "afi_safi_specific", None)
                routes = getattr(afi, "withdrawn_routes", None) or []
                withdrawn += [_prefix(n) for n in routes]
        out.append(WireUpdate(t, src, dst, tuple(announced), tuple(withdrawn), as_path))
    return out


def link_counts(paths: list[Path] | Path, since: float = 0.0, until: float = float("inf")) -> dict[str, dict[str, int]]:
    """Per direction of each session ('src>dst'): UPDATEs that carried something, NLRI announced and withdrawn."""
    out: dict[str, dict[str, int]] = defaultdict(lambda: {"updates": 0, "announced": 0, "withdrawn": 0})
    for u in updates(paths):
        if not (since <= u.t <= until) or not (u.announced or u.withdrawn):
            continue
        c = out[f"{u.src}>{u.dst}"]
        c["updates"] += 1
        c["announced"] += len(u.announced)
        c["withdrawn"] += len(u.withdrawn)
    return dict(out)


def prefix_paths(paths: list[Path] | Path, prefix: str) -> list[tuple[float, str, str, tuple[int, ...] | None]]:
    """(time, 'src>dst', announce/withdraw, AS path) for one prefix: path hunting on the wire."""
    out = []
    for u in updates(paths):
        if prefix in u.withdrawn:
            out.append((u.t, f"{u.src}>{u.dst}", "withdraw", None))
        if prefix in u.announced:
            out.append((u.t, f"{u.src}>{u.dst}", "announce", u.as_path))
    return out

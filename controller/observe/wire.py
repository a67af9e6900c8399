"""BGP as seen on the wire: the speakers' captures, read here byte by byte.

TCP streams are put back together per direction (a 4,096-byte UPDATE crosses a veth
in three segments), cut into BGP messages by their length field, and each UPDATE is
decoded (RFC 4271 withdrawn routes, AS_PATH with 4-byte ASNs and NLRI; RFC 4760
MP_REACH_NLRI and MP_UNREACH_NLRI for IPv6). Per link: UPDATE messages, NLRI announced
and withdrawn; per prefix: the AS paths it carried, link by link, in time order.

Read by hand rather than with scapy's BGP layer: scapy builds an object per NLRI, and a
drill's analysis spent 5 of its 6 seconds there (profiled on withdraw-all-byoip: 170,000
packet objects for 90 captured UPDATEs); this reader gives the same records in a tenth of it.
"""

from __future__ import annotations

import ipaddress
import socket
import struct
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from lab.errors import BgplabError

BGP_PORT = 179
# pcap link types the lab's captures use (tcpdump on a veth is Ethernet; the others for
# captures made elsewhere): how many bytes precede the IP header, and where its type is.
ETHERNET, LINUX_SLL, LINUX_SLL2, RAW, RAW_V4, RAW_V6 = 1, 113, 276, 101, 228, 229


@dataclass(frozen=True)
class WireUpdate:
    t: float
    src: str
    dst: str
    announced: tuple[str, ...]
    withdrawn: tuple[str, ...]
    as_path: tuple[int, ...] | None


def _pcap_records(path: Path) -> Iterator[tuple[float, int, bytes]]:
    """(time, link type, frame) for each record of a classic pcap file."""
    with open(path, "rb") as f:
        head = f.read(24)
        if len(head) < 24:
            return
        magic = head[:4]
        if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1"):
            order = "<"
        elif magic in (b"\xa1\xb2\xc3\xd4", b"\xa1\xb2\x3c\x4d"):
            order = ">"
        else:
            raise BgplabError(f"{path}: not a pcap file this reader knows (magic {magic.hex()}; pcapng is not read)")
        per_second = 1_000_000_000 if magic in (b"\x4d\x3c\xb2\xa1", b"\xa1\xb2\x3c\x4d") else 1_000_000
        linktype = struct.unpack(order + "I", head[20:24])[0] & 0x0FFFFFFF
        record = struct.Struct(order + "IIII")
        while True:
            h = f.read(16)
            if len(h) < 16:
                return
            sec, frac, caplen, _ = record.unpack(h)
            data = f.read(caplen)
            if len(data) < caplen:
                return  # a capture cut mid-record (its writer was stopped): the rest is not there
            # the exact time, rounded once (as a Decimal of sec + frac would be)
            yield (sec * per_second + frac) / per_second, linktype, data


def _ip_of(linktype: int, frame: bytes) -> tuple[int, int] | None:
    """(IP version, offset of the IP header) in a frame, or None for anything else."""
    if linktype == ETHERNET:
        off, etype = 14, frame[12:14]
        while etype in (b"\x81\x00", b"\x88\xa8"):  # VLAN tags
            etype, off = frame[off + 2:off + 4], off + 4
    elif linktype == LINUX_SLL:
        off, etype = 16, frame[14:16]
    elif linktype == LINUX_SLL2:
        off, etype = 20, frame[0:2]
    elif linktype in (RAW, RAW_V4, RAW_V6):
        return (frame[0] >> 4, 0) if frame else None
    else:
        return None
    return {b"\x08\x00": (4, off), b"\x86\xdd": (6, off)}.get(etype)


def _segments(paths: list[Path]) -> list[tuple[float, str, str, int, int, int, bytes, int]]:
    """(time, source, destination, ports, sequence number, payload, flags) of every TCP segment
    to or from the BGP port, in time order."""
    out = []
    for path in paths:
        for t, linktype, frame in _pcap_records(path):
            where = _ip_of(linktype, frame)
            if where is None:
                continue
            version, off = where
            if version == 4:
                if len(frame) < off + 20 or frame[off + 9] != 6:
                    continue
                ihl = (frame[off] & 0x0F) * 4
                total = struct.unpack_from("!H", frame, off + 2)[0]
                # A length shorter than the header: a segment offloaded to the NIC (TSO) captured
                # before it was cut, whose length the kernel left 0: the frame is the packet.
                end = off + total if total >= ihl else len(frame)
                if (struct.unpack_from("!H", frame, off + 6)[0] & 0x1FFF) != 0:
                    continue  # a later fragment carries no TCP header
                src, dst = socket.inet_ntop(socket.AF_INET, frame[off + 12:off + 16]), \
                    socket.inet_ntop(socket.AF_INET, frame[off + 16:off + 20])
                tcp = off + ihl
            elif version == 6:
                if len(frame) < off + 40 or frame[off + 6] != 6:
                    continue
                plen = struct.unpack_from("!H", frame, off + 4)[0]
                end = off + 40 + plen if plen else len(frame)  # 0: offloaded, as for IPv4 above
                src, dst = socket.inet_ntop(socket.AF_INET6, frame[off + 8:off + 24]), \
                    socket.inet_ntop(socket.AF_INET6, frame[off + 24:off + 40])
                tcp = off + 40
            else:
                continue
            if len(frame) < tcp + 20:
                continue
            sport, dport, seq = struct.unpack_from("!HHI", frame, tcp)
            if BGP_PORT not in (sport, dport):
                continue
            data_off = (frame[tcp + 12] >> 4) * 4
            flags = frame[tcp + 13]
            out.append((t, src, dst, sport, dport, seq, frame[tcp + data_off:min(end, len(frame))], flags))
    out.sort(key=lambda p: p[0])
    return out


def _messages(paths: list[Path]) -> Iterator[tuple[float, str, str, bytes]]:
    """(time, source, destination, message bytes) for every BGP message in the captures."""
    streams: dict[tuple, dict] = {}
    for t, src, dst, sport, dport, seq, payload, flags in _segments(paths):
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


def _prefixes(data: bytes, size: int) -> list[str]:
    """RFC 4271 4.3's (length, prefix) list: each as a network, its host bits cleared."""
    out, i = [], 0
    bits = size * 8
    while i < len(data):
        plen = data[i]
        n = (plen + 7) // 8
        if plen > bits or i + 1 + n > len(data):
            raise ValueError(f"a prefix of /{plen} in {n} bytes does not fit")
        addr = int.from_bytes(data[i + 1:i + 1 + n].ljust(size, b"\0"), "big")
        out.append(str(ipaddress.ip_network((addr, plen), strict=False)))
        i += 1 + n
    return out


AFI_SIZE = {1: 4, 2: 16}  # IPv4, IPv6 address bytes


def decode_update(body: bytes) -> tuple[list[str], list[str], tuple[int, ...] | None]:
    """An UPDATE's body (after the 19-byte header): (announced, withdrawn, AS path or None).
    The AS path lists every AS of every segment in order, 4-byte ASNs (the lab's sessions
    negotiate them). Raises ValueError for an UPDATE that does not parse."""
    wlen = int.from_bytes(body[0:2], "big")
    withdrawn = _prefixes(body[2:2 + wlen], 4)
    alen = int.from_bytes(body[2 + wlen:4 + wlen], "big")
    attrs = body[4 + wlen:4 + wlen + alen]
    if len(attrs) < alen:
        raise ValueError("the path attributes run past the message")
    announced: list[str] = []
    as_path = None
    i = 0
    while i < len(attrs):
        flags, code = attrs[i], attrs[i + 1]
        if flags & 0x10:  # extended length
            length, i = int.from_bytes(attrs[i + 2:i + 4], "big"), i + 4
        else:
            length, i = attrs[i + 2], i + 3
        value = attrs[i:i + length]
        i += length
        if code == 2:  # AS_PATH: (type, count, count x 4-byte ASN) segments
            asns, j = [], 0
            while j + 2 <= len(value):
                count = value[j + 1]
                if j + 2 + 4 * count > len(value):
                    raise ValueError(f"an AS_PATH segment of {count} ASes runs past its attribute")
                asns += [int.from_bytes(value[j + 2 + 4 * k:j + 6 + 4 * k], "big") for k in range(count)]
                j += 2 + 4 * count
            as_path = tuple(asns)
        elif code == 14 and len(value) >= 5:  # MP_REACH_NLRI: AFI, SAFI, next hop, reserved, NLRI
            afi, safi, nh = int.from_bytes(value[0:2], "big"), value[2], value[3]
            if safi == 1 and afi in AFI_SIZE:
                announced += _prefixes(value[5 + nh:], AFI_SIZE[afi])
        elif code == 15 and len(value) >= 3:  # MP_UNREACH_NLRI: AFI, SAFI, withdrawn routes
            afi, safi = int.from_bytes(value[0:2], "big"), value[2]
            if safi == 1 and afi in AFI_SIZE:
                withdrawn += _prefixes(value[3:], AFI_SIZE[afi])
    announced = _prefixes(body[4 + wlen + alen:], 4) + announced
    return announced, withdrawn, as_path


def updates(paths: list[Path] | Path) -> list[WireUpdate]:
    """Every UPDATE in the captures, decoded, in time order (one that does not parse is left out)."""
    paths = [paths] if isinstance(paths, Path) else list(paths)
    out = []
    for t, src, dst, raw in _messages(paths):
        if raw[18] != 2:
            continue
        try:
            announced, withdrawn, as_path = decode_update(raw[19:])
        except (ValueError, IndexError):
            continue
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

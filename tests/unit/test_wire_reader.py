"""The capture reader (controller.observe.wire): BGP UPDATEs out of pcap files, TCP streams put
back together, IPv4 and IPv6 (MP_REACH/MP_UNREACH), 4-byte AS paths. Each UPDATE here is also
decoded by scapy's BGP layer, an independent reader, which must agree."""

from __future__ import annotations

import ipaddress
import logging
import struct
from pathlib import Path

import pytest
from hypothesis import given, settings, strategies as st

from controller.observe import wire
from lab.errors import BgplabError

logging.getLogger("scapy.runtime").setLevel(logging.ERROR)
from scapy.contrib import bgp as scapy_bgp  # noqa: E402
from scapy.config import conf  # noqa: E402

scapy_bgp.bgp_module_conf.use_2_bytes_asn = False
conf.max_list_count = max(conf.max_list_count, 65_536)

A, B = "198.18.0.1", "198.18.0.2"


def _nlri(cidrs: list[str]) -> bytes:
    out = b""
    for c in cidrs:
        n = ipaddress.ip_network(c)
        out += bytes([n.prefixlen]) + n.network_address.packed[:(n.prefixlen + 7) // 8]
    return out


def _attr(code: int, value: bytes, flags: int = 0x40) -> bytes:
    if len(value) > 255:
        return bytes([flags | 0x10, code]) + struct.pack("!H", len(value)) + value
    return bytes([flags, code, len(value)]) + value


def update(withdrawn: list[str] = (), announced: list[str] = (), as_path: list[int] | None = None,
           v6_announced: list[str] = (), v6_withdrawn: list[str] = ()) -> bytes:
    attrs = b""
    if as_path is not None:
        attrs += _attr(1, b"\x00")  # ORIGIN IGP
        attrs += _attr(2, bytes([2, len(as_path)]) + b"".join(struct.pack("!I", a) for a in as_path))
        attrs += _attr(3, ipaddress.ip_address(A).packed)
    if v6_announced:
        nh = ipaddress.ip_address("2001:db8::1").packed
        attrs += _attr(14, struct.pack("!HBB", 2, 1, len(nh)) + nh + b"\x00" + _nlri(v6_announced), flags=0x80)
    if v6_withdrawn:
        attrs += _attr(15, struct.pack("!HB", 2, 1) + _nlri(v6_withdrawn), flags=0x80)
    w = _nlri(withdrawn)
    body = struct.pack("!H", len(w)) + w + struct.pack("!H", len(attrs)) + attrs + _nlri(announced)
    return b"\xff" * 16 + struct.pack("!HB", 19 + len(body), 2) + body


def keepalive() -> bytes:
    return b"\xff" * 16 + struct.pack("!HB", 19, 4)


def frame(src: str, dst: str, seq: int, payload: bytes, flags: int = 0x18, sport: int = 40000, dport: int = 179) -> bytes:
    tcp = struct.pack("!HHIIBBHHH", sport, dport, seq, 0, 5 << 4, flags, 65535, 0, 0)
    if ":" in src:
        ip = struct.pack("!IHBB", 6 << 28, len(tcp) + len(payload), 6, 64) + \
            ipaddress.ip_address(src).packed + ipaddress.ip_address(dst).packed
        etype = b"\x86\xdd"
    else:
        ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp) + len(payload), 0, 0x4000, 64, 6, 0,
                         ipaddress.ip_address(src).packed, ipaddress.ip_address(dst).packed)
        etype = b"\x08\x00"
    eth = b"\x02" * 6 + b"\x04" * 6 + etype
    pkt = eth + ip + tcp + payload
    return pkt + b"\x00" * max(0, 60 - len(pkt))  # Ethernet pads short frames: the IP length says where data ends


def pcap(path: Path, records: list[tuple[float, bytes]]) -> Path:
    out = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, 1)
    for t, data in records:
        sec, usec = int(t), round((t - int(t)) * 1e6)
        out += struct.pack("<IIII", sec, usec, len(data), len(data)) + data
    path.write_bytes(out)
    return path


def scapy_reads(raw: bytes) -> tuple[list[str], list[str], tuple[int, ...] | None]:
    """The same UPDATE as scapy's BGP layer decodes it."""
    u = scapy_bgp.BGPHeader(raw)[scapy_bgp.BGPUpdate]

    def p(n) -> str:
        return str(ipaddress.ip_network(n.prefix, strict=False))

    announced, withdrawn, as_path = [p(n) for n in (u.nlri or [])], [p(n) for n in (u.withdrawn_routes or [])], None
    for a in u.path_attr or []:
        v = a.attribute
        if a.type_code == 2 and v is not None:
            as_path = tuple(int(x) for s in v.segments for x in s.segment_value)
        elif a.type_code == 14 and v is not None:
            announced += [p(n) for n in (v.nlri or [])]
        elif a.type_code == 15 and v is not None:
            withdrawn += [p(n) for n in (getattr(v.afi_safi_specific, "withdrawn_routes", None) or [])]
    return announced, withdrawn, as_path


def test_updates_across_segments_retransmissions_and_both_families(tmp_path: Path) -> None:
    u1 = update(withdrawn=["100.64.1.0/24", "100.64.2.0/24"], announced=["100.64.3.0/24", "10.0.0.0/8"],
                as_path=[13335, 4200000000])
    u2 = update(v6_announced=["2001:db8:4000::/48"], v6_withdrawn=["2001:db8:4001::/48"], as_path=[13335])
    stream = keepalive() + u1 + u2
    cut = 19 + 30  # u1 split across two segments
    records = [
        (1000.0, frame(A, B, 999, b"", flags=0x02)),  # SYN: the stream starts at 1000
        (1000.5, frame(A, B, 1000, stream[:cut])),
        (1000.6, frame(A, B, 1000, stream[:cut])),  # a retransmission of what was had
        (1000.7, frame(A, B, 1000 + cut, stream[cut:])),
        (1001.0, frame("2001:db8::1", "2001:db8::2", 5, update(withdrawn=["100.64.9.0/24"]), sport=179, dport=40001)),
    ]
    got = wire.updates(pcap(tmp_path / "a.pcap", records))
    assert [(u.t, u.src, u.dst, u.announced, u.withdrawn, u.as_path) for u in got] == [
        (1000.7, A, B, ("100.64.3.0/24", "10.0.0.0/8"), ("100.64.1.0/24", "100.64.2.0/24"), (13335, 4200000000)),
        (1000.7, A, B, ("2001:db8:4000::/48",), ("2001:db8:4001::/48",), (13335,)),
        (1001.0, "2001:db8::1", "2001:db8::2", (), ("100.64.9.0/24",), None),
    ]
    for raw in (u1, u2):
        a, w, p = wire.decode_update(raw[19:])
        assert (a, w, p) == scapy_reads(raw)
    assert wire.link_counts(tmp_path / "a.pcap") == {
        f"{A}>{B}": {"updates": 2, "announced": 3, "withdrawn": 3},
        "2001:db8::1>2001:db8::2": {"updates": 1, "announced": 0, "withdrawn": 1}}


# Prefix lengths from /1: scapy reads a /0 followed by more prefixes as ADD-PATH's encoding (its
# own guess, RFC 7911), which no session here negotiates.
PREFIX = st.tuples(st.integers(0, 2**32 - 1), st.integers(1, 32))


@settings(max_examples=60, deadline=None)
@given(st.lists(PREFIX, max_size=400), st.lists(PREFIX, max_size=400),
       st.none() | st.lists(st.integers(1, 2**32 - 1), max_size=12))
def test_the_reader_and_scapy_agree_on_any_update(withdrawn, announced, as_path) -> None:
    def cidrs(xs) -> list[str]:
        return [str(ipaddress.ip_network((a, n), strict=False)) for a, n in xs]

    raw = update(cidrs(withdrawn), cidrs(announced), as_path)
    assert wire.decode_update(raw[19:]) == scapy_reads(raw)


def test_a_capture_that_is_not_pcap_is_said_so(tmp_path: Path) -> None:
    (tmp_path / "x.pcap").write_bytes(b"\x0a\x0d\x0d\x0a" + b"\0" * 40)  # pcapng
    with pytest.raises(BgplabError, match="x.pcap: not a pcap file"):
        wire.updates(tmp_path / "x.pcap")


def test_a_capture_cut_mid_record_gives_what_it_has(tmp_path: Path) -> None:
    p = pcap(tmp_path / "cut.pcap", [(5.0, frame(A, B, 1, update(withdrawn=["100.64.1.0/24"]))),
                                     (6.0, frame(A, B, 100, update(withdrawn=["100.64.2.0/24"])))])
    p.write_bytes(p.read_bytes()[:-10])
    assert [u.withdrawn for u in wire.updates(p)] == [("100.64.1.0/24",)]


def test_an_offloaded_segment_whose_ip_length_is_zero_is_read_whole(tmp_path: Path) -> None:
    """tcpdump sees a TSO segment before the NIC cuts it, with an IP length of 0: the frame is
    the packet (scapy reads it so too)."""
    u = update(withdrawn=["100.64.7.0/24"])
    f = bytearray(frame(A, B, 1, u))
    f[14 + 2:14 + 4] = b"\x00\x00"
    assert [w.withdrawn for w in wire.updates(pcap(tmp_path / "tso.pcap", [(1.0, bytes(f))]))] == [("100.64.7.0/24",)]


def test_an_as_path_segment_that_runs_past_its_attribute_does_not_parse() -> None:
    raw = bytearray(update(announced=["100.64.1.0/24"], as_path=[13335, 65001]))
    i = raw.index(bytes([0x40, 2, 10, 2, 2]))  # AS_PATH: flags, code, length, AS_SEQUENCE of 2
    raw[i + 4] = 3  # says 3 ASes where 2 are
    with pytest.raises(ValueError, match="runs past its attribute"):
        wire.decode_update(bytes(raw[19:]))

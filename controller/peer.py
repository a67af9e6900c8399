"""Which local user holds the other end of a TCP connection to the API.

The API listens on loopback, so every client is a process on this machine, and the kernel
knows whose socket the client's is: ``/proc/net/tcp`` (and ``tcp6``) lists each socket
with its local address, port and owner's uid. A request that presents no token of the
lab's (a 401) has no caller to name; its uid does, so that a drill can tell which of them
its automation made (controller.drills.automation runs it as a user of its own).
"""

from __future__ import annotations

import ipaddress
import struct
from pathlib import Path

TABLES = (Path("/proc/net/tcp"), Path("/proc/net/tcp6"))


def _hex_address(host: str) -> tuple[str, ...]:
    """The forms ``host`` takes in /proc/net/tcp*: each 32-bit word in the kernel's byte order
    (IPv4; IPv6; an IPv4 client of a dual-stack socket as its mapped IPv6 form)."""
    ip = ipaddress.ip_address(host)
    v6 = ip if ip.version == 6 else ipaddress.IPv6Address(f"::ffff:{ip}")
    words = struct.unpack("=4I", v6.packed)
    out = ["".join(f"{w:08X}" for w in words)]
    if ip.version == 4:
        out.append(f"{struct.unpack('=I', ip.packed)[0]:08X}")
    return tuple(out)


def peer_uid(host: str | None, port: int | None, tables: tuple[Path, ...] = TABLES) -> int | None:
    """The uid owning the socket at ``host:port`` on this machine, or None where none is found
    (not a local address, the client gone already, or no /proc)."""
    if not host or not port:
        return None
    try:
        wanted = {f"{a}:{port:04X}" for a in _hex_address(host)}
    except ValueError:
        return None  # not an address (a test client's name)
    for table in tables:
        try:
            lines = table.read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            cols = line.split()
            if len(cols) > 7 and cols[1] in wanted:
                return int(cols[7])
    return None

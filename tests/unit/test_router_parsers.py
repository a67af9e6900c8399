"""What each implementation's own output is read as, offline: the text BIRD's control socket
answered on a live mini lab (bird 2.0.12, `show protocols all`), so a change of the reader is
checked without a lab. The live contract (tests/live/test_routers.py) asks the real daemons."""

from __future__ import annotations

from pathlib import Path

import lab.routers.bird as bird
from lab.routers.base import EXTENDED_MESSAGE, STANDARD_MESSAGE

SHOW_PROTOCOLS_ALL = """Name       Proto      Table      State  Since         Info
device1    Device     ---        up     22:33:21.870
kernel4    Kernel     master4    up     22:33:21.870
  Channel ipv4
    State:          UP
    Routes:         0 imported, 200 exported, 0 preferred
s0_edge    BGP        ---        up     22:33:22.739  Established
  Description:    edge via eth1
  BGP state:          Established
    Neighbor address: 198.18.0.0
    Neighbor AS:      13335
    Local capabilities
      Multiprotocol
        AF announced: ipv4 ipv6
      Extended message
      Graceful restart
    Neighbor capabilities
      Multiprotocol
        AF announced: ipv4 ipv6
      Extended message
    Session:          external AS4
    Source address:   198.18.0.1
  Channel ipv4
    State:          UP
    Routes:         200 imported, 0 exported, 200 preferred
    Route change stats:     received   rejected   filtered    ignored   accepted
      Import updates:            200          0          0          0        200
      Import withdraws:            0          0        ---          0          0
      Export updates:            200        200          0        ---          0
      Export withdraws:            0        ---        ---        ---          0
  Channel ipv6
    State:          UP
    Routes:         50 imported, 0 exported, 50 preferred
s1_r2      BGP        ---        start  22:33:22.739  Active        Socket: Connection refused
  Description:    r2 via eth2
  BGP state:          Active
    Neighbor address: 198.18.0.3
    Local capabilities
      Extended message
  Channel ipv4
    State:          DOWN
    Routes:         0 imported, 0 exported, 0 preferred
    Route change stats:     received   rejected   filtered    ignored   accepted
      Export updates:            210          0          0        ---        207
      Export withdraws:            4        ---        ---        ---          3
"""


def test_bird_s_protocols_are_read_by_session(monkeypatch) -> None:
    monkeypatch.setattr(bird, "ask", lambda paths, command: SHOW_PROTOCOLS_ALL.splitlines())
    r, d = bird.BirdRouter(), Path("/nonexistent")
    sessions = r.sessions(d)
    assert sessions == {
        "198.18.0.0": {"state": "Established", "received": {"ipv4": 200, "ipv6": 50}, "sent": {"ipv4": 0, "ipv6": 0},
                       "description": "edge via eth1"},
        "198.18.0.3": {"state": "Active", "received": {"ipv4": 0, "ipv6": 0}, "sent": {"ipv4": 0, "ipv6": 0},
                       "description": "r2 via eth2"},
    }
    # RFC 8654 only where both ends listed it; the kernel protocol's routes are not a session's
    assert r.message_sizes(d) == {"198.18.0.0": EXTENDED_MESSAGE, "198.18.0.3": STANDARD_MESSAGE}
    assert r.updates_sent(d) == 0 + 0 + 207 + 3  # routes exported and withdrawn, accepted

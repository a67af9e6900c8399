"""The edge's state (controller.edge) and what a PoP answers from it (controller.observe.responder)."""

from __future__ import annotations

import errno
import socket
import struct
import threading
from pathlib import Path

import pytest

from controller.edge import Edge, EdgeFiles
from controller.observe.responder import EdgeView, answer_queries, dns_answer, machine_of


class Clock:
    now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_change_reaches_the_machines_one_after_another_within_the_delay() -> None:
    clock = Clock()
    edge = Edge({"a": 2, "b": 2}, {"10.0.0.0/24": ["cdn"]}, delay=4.0, seed=3, clock=clock)
    edge.changed({"10.0.0.0_24": []})
    assert edge.lagging() == {m: 1 for m in edge.machines}
    served = []
    for k in range(1, 5):
        edge.tick(100.0 + k)
        served.append(sum(edge.serves(m, "10.0.0.0/24", "cdn") for m in edge.machines))
    assert served == [3, 2, 1, 0]
    # in the seeded order
    edge.changed({"10.0.0.0_24": ["cdn"]})
    edge.tick(101.0)
    assert [m for m in edge.machines if edge.serves(m, "10.0.0.0/24", "cdn")] == [edge.order[0]]
    assert edge.lagging()[edge.order[0]] == 0


def test_a_push_follows_its_rollout_and_a_bad_rollout_is_refused() -> None:
    edge = Edge({"a": 2}, {"10.0.0.0/24": []}, clock=Clock())
    assert "leaves out a/1" in edge.check_rollout([{"machine": "a/0", "at": 1}])
    assert "no edge machine 'z/0'" in edge.check_rollout([{"machine": "z/0", "at": 1}, {"machine": "a/0", "at": 1}])
    assert "more than once" in edge.check_rollout([{"machine": "a/0", "at": 1}] * 2 + [{"machine": "a/1", "at": 1}])
    with pytest.raises(ValueError):
        edge.push({"10.0.0.0_24": ["cdn"]}, [{"machine": "a/0", "at": 1}])
    edge.push({"10.0.0.0_24": ["cdn"]}, [{"machine": "a/1", "at": 200}, {"machine": "a/0", "at": 300}])
    edge.tick(250)
    assert edge.serves("a/1", "10.0.0.0/24", "cdn") and not edge.serves("a/0", "10.0.0.0/24", "cdn")
    edge.tick(300)
    assert edge.serves("a/0", "10.0.0.0/24", "cdn")


def test_the_files_a_pop_answers_from(tmp_path: Path) -> None:
    files = EdgeFiles(tmp_path, {"a": ["10.0.0.0/24", "10.0.1.0/24"]})
    edge = Edge({"a": 2}, {"10.0.0.0/24": ["cdn", "spectrum"], "10.0.1.0/24": []}, store=files, clock=Clock())
    view = EdgeView(str(EdgeFiles.path(tmp_path, "a")), {4: [24]}, "a", 2)
    assert view.prefix_of("10.0.0.7") == "10.0.0.0/24" and view.prefix_of("10.9.0.1") is None
    assert view.prefix_of("::ffff:10.0.1.9") == "10.0.1.0/24"
    assert view.bound("10.0.0.0/24", 1) == {"cdn", "spectrum"} and view.bound("10.0.1.0/24", 0) == set()
    edge.push({"10.0.0.0_24": ["spectrum"]}, [{"machine": "a/0", "at": 0}, {"machine": "a/1", "at": 50}])
    edge.tick(1)
    assert view.bound("10.0.0.0/24", 0) == {"spectrum"} and view.bound("10.0.0.0/24", 1) == {"cdn", "spectrum"}
    edge.tick(50)
    assert view.bound("10.0.0.0/24", 1) == {"spectrum"}
    # two changes of one prefix due in the same tick: the later one is what the machine serves
    edge.changed({"10.0.0.0_24": ["cdn"]})
    edge.changed({"10.0.0.0_24": ["magic_transit"]})
    edge.tick(10**10)
    assert view.bound("10.0.0.0/24", 0) == view.bound("10.0.0.0/24", 1) == {"magic_transit"}
    files.close()


def test_flows_spread_over_the_machines() -> None:
    hits = {machine_of(("10.1.1.1", port), 8) for port in range(40000, 40200)}
    assert hits == set(range(8))
    assert machine_of(("10.1.1.1", 40000), 8) == machine_of(("10.1.1.1", 40000), 8)


def test_the_resolver_answers_a_dns_query() -> None:
    name = b"\x03one\x03one\x03one\x03one\x00"
    query = struct.pack("!HHHHHH", 0x1234, 0x0100, 1, 0, 0, 0) + name + struct.pack("!HH", 1, 1)
    reply = dns_answer(query, "192.0.2.1")
    qid, flags, qd, an = struct.unpack("!HHHH", reply[:8])
    assert (qid, flags & 0x8000, qd, an) == (0x1234, 0x8000, 1, 1)
    assert reply.endswith(socket.inet_aton("192.0.2.1"))
    assert dns_answer(b"short", "192.0.2.1") is None


class _NoRouteFor(socket.socket):
    """A real UDP socket whose replies find no route for the first ``n`` sends, as while the
    PoP's link to its gateway is down."""

    def __init__(self, n: int):
        super().__init__(socket.AF_INET, socket.SOCK_DGRAM)
        self.unroutable = n

    def sendto(self, data, addr):  # type: ignore[override]
        if self.unroutable:
            self.unroutable -= 1
            raise OSError(errno.ENETUNREACH, "Network is unreachable")
        return super().sendto(data, addr)


def test_the_resolver_drops_replies_it_cannot_send_and_goes_on_answering() -> None:
    """On 2026-12-06 a lab's edge-fra lost its default route with its link to t1; the resolver's
    loop ended on the first reply it could not send, and took the whole responder with it."""
    name = b"\x03one\x03one\x03one\x03one\x00"
    server = _NoRouteFor(3)
    server.bind(("127.0.0.1", 0))
    client = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    client.settimeout(5)
    said: list[str] = []
    t = threading.Thread(target=answer_queries, args=(server, "192.0.2.1", said.append), daemon=True)
    t.start()
    try:
        for qid in range(1, 5):  # three replies dropped, the fourth answered
            client.sendto(struct.pack("!HHHHHH", qid, 0x0100, 1, 0, 0, 0) + name + struct.pack("!HH", 1, 1),
                          server.getsockname())
        reply, _ = client.recvfrom(512)
        assert struct.unpack("!H", reply[:2])[0] == 4
        # the resolver says "go out again" after the fourth reply is sent: a fifth answered query
        # means that line has been said (one thread, in order), with no race against the reply
        client.sendto(struct.pack("!HHHHHH", 5, 0x0100, 1, 0, 0, 0) + name + struct.pack("!HH", 1, 1),
                      server.getsockname())
        reply, _ = client.recvfrom(512)
        assert struct.unpack("!H", reply[:2])[0] == 5
        assert t.is_alive()
        assert said == ["dns: a reply to 127.0.0.1 cannot be sent (Network is unreachable); dropping replies until one "
                        "can be", "dns: replies go out again; 3 dropped meanwhile"]
    finally:
        client.close()
        server.close()


def test_any_other_send_error_ends_the_resolver() -> None:
    class Refused(socket.socket):
        def sendto(self, data, addr):  # type: ignore[override]
            raise OSError(errno.EBADF, "Bad file descriptor")

    server = Refused(socket.AF_INET, socket.SOCK_DGRAM)
    server.bind(("127.0.0.1", 0))
    client = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    name = b"\x01a\x00"
    client.sendto(struct.pack("!HHHHHH", 7, 0x0100, 1, 0, 0, 0) + name + struct.pack("!HH", 1, 1), server.getsockname())
    try:
        with pytest.raises(OSError, match="Bad file descriptor"):
            answer_queries(server, "192.0.2.1", lambda s: None)
    finally:
        client.close()
        server.close()

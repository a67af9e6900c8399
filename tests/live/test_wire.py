"""The shape of what the speakers send, counted on the wire (tcpdump, read by controller.observe.wire):
whole batches leave in UPDATEs packed to the negotiated message size, and a speaker
killed in the middle of a large batch is brought back to the inventory's state."""

from __future__ import annotations

import math
import threading
import time
from pathlib import Path

import pytest

from controller import launch
from controller.client import ApiClient, ApiError
from controller.observe import wire
from lab import capture
from lab.daemons import exabgp
from lab.routers.frr import daemons as frr
from lab.kernel import count_lab_routes_fast
from lab.wait import wait_until

pytestmark = pytest.mark.live
WIRE = str(Path(__file__).parent / "topologies" / "wire.yaml")


def _received(running, router: str, speaker_addr: str) -> dict[str, int]:
    got = frr.sessions(frr.FrrPaths(running.node_dir(router))).get(speaker_addr, {})
    return got.get("received", {})


def _wire_counts(running, dest: Path, act) -> dict[str, dict[str, int]]:
    """Per router: what the speaker's UPDATEs to it carried while ``act`` ran (captured on the
    speaker's links)."""
    capture.start(running, dest, node="edge", bgp_only=True)
    try:
        act()
    finally:
        time.sleep(0.3)  # the last segment reaches tcpdump's buffer
        capture.stop(running)
    counts = wire.link_counts(capture.files_in(dest))
    edge = running.node("edge")
    return {s.peer: counts.get(f"{s.local_v4}>{s.peer_v4}", {"updates": 0, "announced": 0, "withdrawn": 0})
            for s in edge.sessions}


def test_a_batch_leaves_packed_to_the_message_size(lab_factory, tmp_path) -> None:
    report = lab_factory(WIRE, announce=False)
    running = report.running()
    edge = running.node("edge")
    v4 = [p.prefix for p in report.plan.prefixes if p.prefix.version == 4]
    v6 = [p.prefix for p in report.plan.prefixes if p.prefix.version == 6]
    assert (len(v4), len(v6)) == (6000, 200)
    sizes = running.state.message_sizes
    assert sizes["r1<-edge"] == frr.EXTENDED_MESSAGE and sizes["r2<-edge"] == frr.STANDARD_MESSAGE

    def send(commands) -> None:
        with exabgp.SpeakerChannel("edge", exabgp.ExabgpPaths(running.node_dir("edge")).socket) as ch:
            acks = ch.send_many(commands)
        assert [a.command for a in acks] == [c.render() for c in commands]

    def settled(want: dict[str, int]) -> None:
        wait_until(lambda: (all(_received(running, r, str(s.local_v4)) == want for r, s in
                                ((s.peer, s) for s in edge.sessions)), "not yet"),
                   timeout=30, what=f"both routers to hold {want} from the speaker")

    # 6,000 IPv4 in one batch
    counts = _wire_counts(running, tmp_path / "v4", lambda: (send(exabgp.announcements(edge.sessions, v4)),
                                                             settled({"ipv4": 6000, "ipv6": 0})))
    print(f"6,000 IPv4: {counts}")
    assert counts["r1"]["announced"] == counts["r2"]["announced"] == 6000
    assert counts["r1"]["updates"] == 1  # 65,535 bytes hold 16,000 /24s
    # 4,096 bytes: 19 of header, 4 of lengths, the attributes (origin, AS path, next hop, ~28)
    assert counts["r2"]["updates"] <= math.ceil(6000 * 4 / (4096 - 19 - 4 - 40)) <= 8

    # 200 IPv6: packed into MP_REACH_NLRI (ExaBGP alone sent one UPDATE per IPv6 prefix)
    counts = _wire_counts(running, tmp_path / "v6", lambda: (send(exabgp.announcements(edge.sessions, v6)),
                                                             settled({"ipv4": 6000, "ipv6": 200})))
    print(f"200 IPv6: {counts}")
    assert all(c["announced"] == 200 and c["updates"] == 1 for c in counts.values()), counts

    # 1,100 withdrawn: at most 2 UPDATEs per session
    gone = v4[:1100]
    counts = _wire_counts(running, tmp_path / "wd", lambda: (send(exabgp.withdrawals(edge.sessions, gone)),
                                                             settled({"ipv4": 4900, "ipv6": 200})))
    print(f"1,100 withdrawn: {counts}")
    assert all(c["withdrawn"] == 1100 and c["updates"] <= 2 for c in counts.values()), counts
    assert counts["r1"]["updates"] == 1


def test_a_speaker_killed_in_a_large_batch_is_resynchronised(lab_factory) -> None:
    report = lab_factory(WIRE, announce=False)
    running = report.running()
    launch.start(running, probes=0)
    r1 = report.plan.nodes["r1"]
    total = len(report.plan.prefixes)
    outcome: dict[str, object] = {}
    with ApiClient(report.lab) as api:
        def advertise_all() -> None:
            try:
                outcome["result"] = api.set_advertised(True, all=True)["result"]
            except ApiError as e:
                outcome["error"] = e

        t = threading.Thread(target=advertise_all)
        t.start()
        time.sleep(0.15)  # the batch is on its way: the speaker parses 6,200 prefixes
        running.stop_daemon("edge", "exabgp", sig=9)
        t.join(timeout=60)
        assert not t.is_alive(), "the API call did not return after its speaker died"
        if "error" in outcome:  # the change did not reach the speaker: rolled back, 503
            assert outcome["error"].status == 503, outcome["error"]
            assert not any(p["advertised"] for p in api.prefixes(limit=10))
        running.start_daemon("edge", "exabgp")
        # whatever the inventory says now is what the routers must hold once the speaker is back
        wait_until(lambda: (api.call("GET", "/v1/lab/reconcile")["result"]["restarts"].get("edge") == 1, "not yet"),
                   timeout=30, what="the controller to see the speaker back")
        if "error" in outcome:
            api.set_advertised(True, all=True)
        want = {"ipv4": 6000, "ipv6": 200}
        wait_until(lambda: (count_lab_routes_fast(r1.namespace, report.plan.pool_keys) == want,
                            str(count_lab_routes_fast(r1.namespace, report.plan.pool_keys))),
                   timeout=60, what=f"r1's kernel to hold all {total} prefixes again")
        v = api.call("POST", "/v1/lab/verify", params={"wait": 10})["result"]
        assert v["ok"], v
    print(f"killed mid-batch: {'503 and rolled back' if 'error' in outcome else 'the batch had landed'}; resynchronised")

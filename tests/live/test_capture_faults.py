"""Captures and fault primitives on the minimal lab, with real tcpdump, tshark and FRR."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest
from pyroute2 import NetNS

from controller.observe import mrt, wire
from lab import capture, faults
from lab.daemons import exabgp
from lab.routers.frr import daemons as frr
from lab.kernel import route_keys
from lab.state import LabState
from lab.wait import wait_until

pytestmark = pytest.mark.live


def channel(state: LabState) -> exabgp.SpeakerChannel:
    return exabgp.SpeakerChannel("edge", exabgp.ExabgpPaths(state.node_dir("edge")).socket)


def session_state(state: LabState, router: str, peer_addr: str) -> dict:
    return frr.sessions(frr.FrrPaths(state.node_dir(router))).get(peer_addr, {})


def tshark(*args: str) -> str:
    return subprocess.run(["tshark", *args], check=True, capture_output=True, text=True).stdout


def test_capture_sees_what_was_sent_and_agrees_with_the_collector(lab_factory, tmp_path: Path) -> None:
    report = lab_factory("minimal")
    lab, plan = report.lab, report.plan
    state = LabState.load(lab)
    edge = plan.nodes["edge"]
    started = capture.start(report.running(), tmp_path, all_=True, bgp_only=True)
    assert {(c["node"], c["iface"]) for c in started} == {(n.name, i.name) for n in plan.nodes.values() for i in n.interfaces}
    t0 = time.time()
    victims = [p.prefix for p in plan.prefixes if p.prefix.version == 4][:10] + \
              [p.prefix for p in plan.prefixes if p.prefix.version == 6][:3]
    with channel(state) as ch:
        ch.send_many(exabgp.withdrawals(edge.sessions, victims))
    r1 = plan.nodes["r1"]
    wait_until(lambda: (not ({str(v) for v in victims} & (route_keys(r1.namespace, 2) | route_keys(r1.namespace, 10))),
                        "still there"), timeout=10, what="the withdrawal to reach r1")
    with channel(state) as ch:
        ch.send_many(exabgp.announcements(edge.sessions, victims))
    wait_until(lambda: ({str(v) for v in victims} <= (route_keys(r1.namespace, 2) | route_keys(r1.namespace, 10)),
                        "missing"), timeout=10, what="the announcement to reach r1")
    time.sleep(1.0)
    t1 = time.time()
    stopped = capture.stop(report.running())
    assert len(stopped) == len(started)

    # tshark decodes the edge->r1 capture and finds UPDATEs with exactly those NLRI
    edge_file = tmp_path / "edge-eth1.pcap"
    out = tshark("-r", str(edge_file), "-Y", "bgp.type == 2", "-T", "fields", "-e", "bgp.withdrawn_prefix",
                 "-e", "bgp.mp_unreach_nlri_ipv6_prefix", "-e", "bgp.nlri_prefix", "-e", "bgp.mp_reach_nlri_ipv6_prefix")
    seen = {x for line in out.splitlines() for field in line.split("\t") for x in field.split(",") if x}
    for v in victims:
        assert str(v.network_address) in seen, (v, sorted(seen)[:20])

    # the project's reading of the wire agrees with the collector's MRT for the same session
    collector = plan.nodes["collector"]
    cfiles = [tmp_path / f"collector-{i.name}.pcap" for i in collector.interfaces]
    on_wire = wire.link_counts(cfiles, t0, t1)
    in_mrt = mrt.wire_counts(state.node_dir("collector") / "updates.mrt", t0, t1)
    for s in collector.sessions:
        key = f"{s.peer_v4}>{s.local_v4}"
        assert on_wire.get(key, {"updates": 0, "announced": 0, "withdrawn": 0}) == \
            in_mrt.get(str(s.peer_v4), {"updates": 0, "announced": 0, "withdrawn": 0}), (key, on_wire, in_mrt)
    assert in_mrt[str(next(s.peer_v4 for s in collector.sessions if s.peer == "r1"))]["withdrawn"] == 13
    # r1's session: the collector hears r2 too (a vantage point feeds it everything, as a
    # customer), two hops away, so its own withdraw/announce pair comes after r1's
    from_r1 = next(f"{s.peer_v4}>{s.local_v4}" for s in collector.sessions if s.peer == "r1")
    hunt = [h for h in wire.prefix_paths(cfiles, str(victims[0])) if h[1] == from_r1]
    assert [k for _, _, k, _ in hunt] == ["withdraw", "announce"]
    assert hunt[1][3] == (65101, 13335)

    # one merged pcapng, in time order, with comments where they belong
    merged = capture.merge(capture.files_in(tmp_path), tmp_path / "all.pcapng",
                           [(t0, "step: withdraw 13"), (t1 - 1.0, "step: announce again")])
    comments = tshark("-r", str(merged), "-Y", "frame.comment", "-T", "fields", "-e", "frame.comment")
    assert "step: withdraw 13" in comments and "step: announce again" in comments
    times = [float(x) for x in tshark("-r", str(merged), "-T", "fields", "-e", "frame.time_epoch").split()]
    assert times == sorted(times) and len(times) > 10

    # Both ends of a veth pair see every segment: merged, Wireshark reads each second copy as a
    # retransmission (a sick network that is not there). The merge above is of both ends...
    assert wireshark_flags(merged)["tcp.analysis.retransmission"] > 0
    # ...one end of every link (what a drill captures) is each packet once: none, on a quiet lab
    once = capture.start(report.running(), tmp_path / "once", each_link_once=True, bgp_only=True)
    links = {i.link for n in plan.nodes.values() for i in n.interfaces}
    assert len(once) == len(links) == len({(c["node"], c["iface"]) for c in once})
    for c in once:  # the speaker's end where a link has one: the drill's analysis reads the speakers' files
        iface = next(i for i in plan.nodes[c["node"]].interfaces if i.name == c["iface"])
        if "edge" in (c["node"], iface.peer):
            assert c["node"] == "edge", c
    time.sleep(7)  # keepalives every 3 s on every session
    capture.stop(report.running())
    seen = wireshark_flags(capture.merge(capture.files_in(tmp_path / "once"), tmp_path / "once.pcapng"))
    assert seen["bgp"] > 0 and seen["tcp.analysis.retransmission"] == seen["tcp.analysis.duplicate_ack"] == 0, seen


def wireshark_flags(merged: Path) -> dict[str, int]:
    """How many frames Wireshark's TCP analysis flags, and how many are BGP."""
    return {flag: len(tshark("-r", str(merged), "-Y", flag, "-T", "fields", "-e", "frame.number").split())
            for flag in ("tcp.analysis.retransmission", "tcp.analysis.duplicate_ack", "bgp")}


def test_down_with_captures_running_leaves_complete_files(lab_factory, tmp_path: Path) -> None:
    from lab import lifecycle

    report = lab_factory("minimal")
    capture.start(report.running(), tmp_path, node="r1")
    time.sleep(4)  # keepalives cross meanwhile
    lifecycle.down(report.lab)
    for f in capture.files_in(tmp_path):
        out = subprocess.run(["capinfos", "-c", str(f)], capture_output=True, text=True)
        assert out.returncode == 0, out.stderr  # readable, not truncated
    assert capture.files_in(tmp_path)


def test_link_down_drops_the_session_and_up_brings_it_back(lab_factory) -> None:
    report = lab_factory("minimal")
    lab = report.lab
    state = LabState.load(lab)
    r2_addr = str(next(s.peer_v4 for s in report.plan.nodes["r1"].sessions if s.peer == "r2"))
    faults.set_link(report.running(), "r1", "r2", up=False)
    took = wait_until(lambda: (session_state(state, "r1", r2_addr).get("state") != "Established", "still up"),
                      timeout=30, what="r1 to drop its session with r2")
    # the interface went down: the session drops at once, not when the 9 s hold timer expires
    assert took < 3, f"the session took {took:.2f} s to drop: the hold timer, not the link, ended it"
    faults.set_link(report.running(), "r1", "r2", up=True)
    wait_until(lambda: (session_state(state, "r1", r2_addr).get("state") == "Established", "not yet"),
               timeout=30, what="the session to come back")
    # Up again, every end has what the link took with it: its IPv6 address (the kernel drops a
    # downed link's), and the speaker its default routes through its only link, as a router's
    # configuration outlives a carrier loss (before, the speaker could answer nothing after it)
    faults.set_link(report.running(), "edge", "r1", up=False)
    faults.set_link(report.running(), "edge", "r1", up=True)
    plan = report.plan
    for node in ("r1", "r2", "edge"):
        assert addresses(plan.nodes[node]) >= {str(a) for i in plan.nodes[node].interfaces for a in (i.v4, i.v6)}, node
    edge = plan.nodes["edge"]
    assert default_routes(edge) == {str(edge.gateway_v4), str(edge.gateway_v6)}
    kinds = [l.split('"fault": "')[1].split('"')[0] for l in (state.dir / "faults.jsonl").read_text().splitlines()]
    assert kinds == ["link_down", "link_up", "link_down", "link_up"]


def addresses(node) -> set[str]:
    with NetNS(node.namespace) as ns:
        return {f"{a.get_attr('IFA_ADDRESS')}/{a['prefixlen']}" for a in ns.get_addr()}


def default_routes(node) -> set[str]:
    with NetNS(node.namespace) as ns:
        return {r.get_attr("RTA_GATEWAY") for family in (2, 10) for r in ns.get_routes(family=family, table=254)
                if r["dst_len"] == 0 and r.get_attr("RTA_GATEWAY")}


def test_flap(lab_factory) -> None:
    report = lab_factory("minimal")
    state = LabState.load(report.lab)
    r2_addr = str(next(s.peer_v4 for s in report.plan.nodes["r1"].sessions if s.peer == "r2"))
    before = frr.vtysh_json(frr.FrrPaths(state.node_dir("r1")), "show bgp neighbors")[r2_addr]["connectionsEstablished"]
    faults.flap(report.running(), "r1", "r2", down_for=0.5, times=2, up_for=3.0)
    wait_until(lambda: (frr.vtysh_json(frr.FrrPaths(state.node_dir("r1")), "show bgp neighbors")[r2_addr]
                        ["connectionsEstablished"] >= before + 2, "not yet"), timeout=30,
               what="the session to come back after each flap")


def test_impairments(lab_factory) -> None:
    report = lab_factory("minimal")
    lab = report.running()
    faults.impair(lab, "r1", "r2", rate_kbit=10_000)
    assert faults.qdiscs(lab, "r1", "r2") == ["tbf", "tbf"]
    faults.clear_impairment(lab, "r1", "r2")
    assert "tbf" not in faults.qdiscs(lab, "r1", "r2")
    has_netem, why = faults.netem_supported()
    if not has_netem:
        # the kernel truly lacks it (asked of a scratch namespace, not of the code under test);
        # a skip that holds in CI as well: no setting of ours can add a kernel module
        print(f"\nskipping the delay part: {why}")
        pytest.skip(f"kernel without netem: {why}")
    faults.impair(lab, "r1", "r2", delay_ms=50)
    ns = report.plan.nodes["r1"].namespace
    peer = str(next(s.peer_v4 for s in report.plan.nodes["r1"].sessions if s.peer == "r2"))
    out = subprocess.run(["nsenter", f"--net=/run/netns/{ns}", "ping", "-c", "3", "-i", "0.2", peer],
                         capture_output=True, text=True).stdout
    rtt = float(out.rsplit("=", 1)[1].split("/")[1])
    assert rtt >= 90, out  # 50 ms each way
    faults.clear_impairment(lab, "r1", "r2")


def test_killed_speaker_is_withdrawn_downstream_and_restarts(lab_factory) -> None:
    report = lab_factory("minimal")
    lab = report.running()
    r2 = report.plan.nodes["r2"]
    pool = {str(p.prefix) for p in report.plan.prefixes}
    faults.daemon(lab, "edge", "exabgp", "kill")
    wait_until(lambda: (not (pool & route_keys(r2.namespace, 2)), "still there"), timeout=15,
               what="r2 to lose the killed speaker's prefixes")
    faults.daemon(lab, "edge", "exabgp", "start")
    state = lab.state
    edge_session = str(next(s.peer_v4 for s in report.plan.nodes["r1"].sessions if s.peer == "edge"))
    wait_until(lambda: (session_state(state, "r1", edge_session).get("state") == "Established", "not yet"),
               timeout=30, what="the restarted speaker's session")


def test_session_reset_re_establishes(lab_factory) -> None:
    report = lab_factory("minimal")
    state = LabState.load(report.lab)
    r2_addr = str(next(s.peer_v4 for s in report.plan.nodes["r1"].sessions if s.peer == "r2"))
    before = frr.vtysh_json(frr.FrrPaths(state.node_dir("r1")), "show bgp neighbors")[r2_addr]["connectionsEstablished"]
    faults.session_reset(report.running(), "r1", "r2")
    wait_until(lambda: (frr.vtysh_json(frr.FrrPaths(state.node_dir("r1")), "show bgp neighbors")[r2_addr]
                        ["connectionsEstablished"] == before + 1
                        and session_state(state, "r1", r2_addr).get("state") == "Established", "not yet"),
               timeout=30, what="the reset session to be Established again")


def test_stopped_daemon_holds_then_continues(lab_factory) -> None:
    report = lab_factory("minimal")
    state = LabState.load(report.lab)
    pid = state.daemons()["r2"]["bgpd"]

    def proc_state() -> str:
        return open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[0]

    faults.daemon(report.running(), "r2", "bgpd", "stop")
    wait_until(lambda: (proc_state() == "T", proc_state()), timeout=5, what="bgpd to be stopped")
    faults.daemon(report.running(), "r2", "bgpd", "cont")
    wait_until(lambda: (proc_state() in ("S", "R"), proc_state()), timeout=5, what="bgpd to run again")

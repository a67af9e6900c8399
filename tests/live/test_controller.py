"""The controller on a live lab: API changes reach every router's kernel, the collector's
timeline and the probes, and come back; a restarted speaker gets its state back."""

from __future__ import annotations

import grp
import json
import time
from pathlib import Path

import httpx
import pytest

from controller import launch
from controller.client import ApiClient
from controller.observe import mrt
from controller.observe.probe import by_end_host
from lab.daemons import exabgp
from lab.routers.frr import daemons as frr
from lab.kernel import route_keys
from lab.state import LabState
from lab.wait import wait_until

from .conftest import bgplab

pytestmark = pytest.mark.live
CTL = str(Path(__file__).parent / "topologies" / "ctl.yaml")


@pytest.fixture
def ctl(lab_factory):
    # the controller starts while the lab converges, as `bgplab up` starts it
    pids: list[int] = []
    report = lab_factory(CTL, daemons_started=lambda state, _plan: pids.append(launch.spawn(state, probes=30,
                                                                                            during_up=True)))
    info = {**launch.wait(report.running().state, pids[0]), "lab": report.lab}
    api = ApiClient(report.lab)
    info["headers"] = api.headers  # the lab's admin token, for requests made by hand
    yield report, api, info
    api.close()


def kernel_has(namespace: str, cidrs: set[str]) -> set[str]:
    keys = route_keys(namespace, 2) | route_keys(namespace, 10)
    return cidrs & keys


def probe_results(path: Path, prefixes: set[str], since: float) -> list[str]:
    """The end hosts' probe results (not the PoPs' egress attempts, which only work at the PoP
    the replies come back to)."""
    out = []
    for line in path.read_text().splitlines():
        e = json.loads(line)
        if e["t"] >= since and e["prefix"] in prefixes and by_end_host(e):
            out.append(e["result"])
    return out


def test_withdraw_an_account_everywhere_then_restore(ctl) -> None:
    report, api, _ = ctl
    lab, plan = report.lab, report.plan
    state = LabState.load(lab)
    obs = state.dir / "observe"
    targets = json.loads((obs / "probe-targets.json").read_text())
    target = targets[0]["prefix"]
    account = api.prefixes(cidr=target)[0]["account_id"]
    cidrs = {p["cidr"] for p in api.prefixes(account_id=account)}
    probed = {t["prefix"] for t in targets} & cidrs
    assert probed and cidrs

    # probes reach the account's service addresses before anything happens
    wait_until(lambda: (set(probe_results(obs / "probes.jsonl", probed, time.time() - 1.0)) == {"ok"}, "not ok yet"),
               timeout=15, what="probes to succeed")

    t0 = time.time()
    out = bgplab("prefixes", "withdraw", "--lab", lab, "--account", account)
    assert out.returncode == 0, out.stderr
    assert f"withdrew {len(cidrs)} prefixes" in out.stdout
    routers = [r for r in plan.routers() if r.installs_routes]
    took = wait_until(lambda: (all(not kernel_has(r.namespace, cidrs) for r in routers), "still in a kernel table"),
                      timeout=10, what="the account's prefixes to leave every kernel table")
    assert took < 2.0, f"withdrawal took {took:.2f} s to reach every kernel table"
    # other prefixes untouched
    others = {str(p.prefix) for p in plan.prefixes} - cidrs
    for r in routers:
        assert kernel_has(r.namespace, others) == others

    mrt_path = frr.FrrPaths(state.node_dir("collector")).mrt

    def timeline_shows(kind: str, since: float) -> tuple[bool, str]:
        seen = {e.prefix for e in mrt.events(mrt_path) if e.kind == kind and e.t >= since}
        return cidrs <= seen, f"{len(cidrs - seen)} prefixes without a {kind} since the change"

    wait_until(lambda: timeline_shows("withdraw", t0), timeout=10, what="the collector to record the withdrawals")
    wait_until(lambda: (len(probe_results(obs / "probes.jsonl", probed, time.time() - 1.0)) > 0
                        and "ok" not in probe_results(obs / "probes.jsonl", probed, time.time() - 1.0), "still ok"),
               timeout=10, what="probes to the withdrawn prefixes to fail")

    t1 = time.time()
    out = bgplab("prefixes", "advertise", "--lab", lab, "--account", account)
    assert out.returncode == 0, out.stderr
    wait_until(lambda: (all(kernel_has(r.namespace, cidrs) == cidrs for r in routers), "missing"),
               timeout=10, what="the account's prefixes back in every kernel table")
    wait_until(lambda: timeline_shows("announce", t1), timeout=10, what="the collector to record the announcements")
    wait_until(lambda: (set(probe_results(obs / "probes.jsonl", probed, time.time() - 1.0)) == {"ok"}, "not ok yet"),
               timeout=15, what="probes to succeed again")
    verified = api.call("POST", "/v1/lab/verify")["result"]
    assert verified["ok"], verified


def test_binding_removed_answers_403(ctl) -> None:
    report, api, _ = ctl
    obs = LabState.load(report.lab).dir / "observe"
    target = json.loads((obs / "probe-targets.json").read_text())[0]["prefix"]
    pid = target.replace("/", "_")
    for b in api.call("GET", f"/v1/prefixes/{pid}/bindings")["result"]:
        api.call("DELETE", f"/v1/prefixes/{pid}/bindings/{b['id']}")
    wait_until(lambda: (probe_results(obs / "probes.jsonl", {target}, time.time() - 0.6)[-1:] == ["http_403"], "not 403"),
               timeout=10, what="the edge to answer 403 Edge IP Restricted")


def test_pending_delete_handler_both_ways_live(ctl) -> None:
    _, api, info = ctl
    r = httpx.get(f"{info['url']}/v1/prefixes?pending_delete", headers=info["headers"])
    assert r.status_code == 400
    api.call("PUT", "/v1/lab/behaviour", json={"pending_delete_bug": True})
    r = httpx.get(f"{info['url']}/v1/prefixes?pending_delete", headers=info["headers"])
    assert r.status_code == 200 and r.json()["count"] == 440


def test_bad_input_changes_nothing(ctl) -> None:
    report, api, info = ctl
    t1 = report.plan.nodes["t1"]
    before = route_keys(t1.namespace, 2)
    r = httpx.patch(f"{info['url']}/v1/prefixes/8.8.8.0_24/bgp/status", json={"advertised": False}, headers=info["headers"])
    assert r.status_code == 404 and "8.8.8.0_24" in r.json()["errors"][0]["message"]
    r = httpx.patch(f"{info['url']}/v1/prefixes/bgp/status", json={"advertised": "no", "selector": {"count": 5}}, headers=info["headers"])
    assert r.status_code == 400
    out = bgplab("prefixes", "withdraw", "--lab", report.lab, "--account", "acct-9999")
    assert out.returncode == 1 and "no account 'acct-9999'" in out.stderr
    assert route_keys(t1.namespace, 2) == before


def test_restarted_speaker_gets_its_desired_state_back(ctl) -> None:
    report, api, _ = ctl
    lab = report.lab
    t1 = report.plan.nodes["t1"]
    api.set_advertised(False, family="ipv4", count=25)
    withdrawn = {p["cidr"] for p in api.prefixes(advertised=False)}
    assert len(withdrawn) == 25
    all_pool = {str(p.prefix) for p in report.plan.prefixes}
    wanted = all_pool - withdrawn

    report.running().stop_daemon("edge", "exabgp", sig=9)
    # the session drops and t1 forgets the edge's routes
    wait_until(lambda: (not kernel_has(t1.namespace, all_pool), "still has routes"), timeout=20,
               what="t1 to drop the dead speaker's routes")
    report.running().start_daemon("edge", "exabgp")
    took = wait_until(lambda: (kernel_has(t1.namespace, all_pool) == wanted, f"{len(kernel_has(t1.namespace, all_pool))} of {len(wanted)}"),
                      timeout=30, what="the controller to resend the speaker's desired state")
    state = api.call("GET", "/v1/lab/reconcile")["result"]
    assert state["restarts"]["edge"] == 1
    print(f"speaker back and resynced in {took:.2f} s")


def test_a_change_a_speaker_cannot_take_is_a_503_and_the_inventory_keeps_its_state(ctl) -> None:
    report, api, info = ctl
    lab = report.lab
    t1 = report.plan.nodes["t1"]
    target = next(p["cidr"] for p in api.prefixes(family="ipv4", limit=1))
    report.running().stop_daemon("edge", "exabgp", sig=9)
    wait_until(lambda: ("edge" in _lost(info), "no speaker_lost yet"), timeout=10,
               what="the controller to notice the speaker is gone")
    r = httpx.patch(f"{info['url']}/v1/prefixes/{target.replace('/', '_')}/bgp/status", json={"advertised": False}, timeout=30, headers=info["headers"])
    assert r.status_code == 503, r.text
    err = r.json()["errors"][0]
    assert "did not reach edge" in err["message"] and err["failed"]["edge"]["prefixes"] == [target]
    assert api.prefixes(cidr=target)[0]["advertised"] is True  # rolled back: no claim the network lacks
    r = httpx.post(f"{info['url']}/v1/lab/sync", params={"full": "true"}, timeout=30, headers=info["headers"])
    assert r.status_code == 503 and "edge" in r.json()["errors"][0]["failed"]
    # the speaker comes back: its whole state is sent again, and the same change now goes through
    report.running().start_daemon("edge", "exabgp")
    all_pool = {str(p.prefix) for p in report.plan.prefixes}
    wait_until(lambda: (kernel_has(t1.namespace, all_pool) == all_pool, "not all back"), timeout=30,
               what="the returned speaker to announce everything again")
    api.call("PATCH", f"/v1/prefixes/{target.replace('/', '_')}/bgp/status", json={"advertised": False})
    wait_until(lambda: (target not in kernel_has(t1.namespace, all_pool), "still there"), timeout=10,
               what=f"{target} to leave t1")


def _lost(info: dict) -> set[str]:
    """Speakers the controller has logged as lost."""
    path = LabState.load(info["lab"]).dir / "observe" / "controller.jsonl"
    return {json.loads(x).get("speaker") for x in path.read_text().splitlines() if '"speaker_lost"' in x}


def test_verify_reports_a_difference_made_behind_its_back(ctl) -> None:
    report, api, _ = ctl
    state = LabState.load(report.lab)
    edge = report.plan.nodes["edge"]
    victim = next(p.prefix for p in report.plan.prefixes if p.prefix.version == 4)
    with exabgp.SpeakerChannel("edge", exabgp.ExabgpPaths(state.node_dir("edge")).socket) as ch:
        ch.send_many(exabgp.withdrawals(edge.sessions, [victim]))
    v = api.call("POST", "/v1/lab/verify", params={"wait": 1.0})["result"]
    assert not v["ok"]
    [diff] = v["differences"]
    assert diff["speaker"] == "edge" and diff["peer"] == "t1"
    assert diff["intended"]["ipv4"] == diff["received"]["ipv4"] + 1
    # the remedy: push every speaker's whole desired state again
    api.call("POST", "/v1/lab/sync", params={"full": True})
    v = api.call("POST", "/v1/lab/verify", params={"wait": 5.0})["result"]
    assert v["ok"], v


def test_channel_survives_20000_commands(lab_factory) -> None:
    report = lab_factory("minimal")
    state = LabState.load(report.lab)
    edge = report.plan.nodes["edge"]
    nets = [p.prefix for p in report.plan.prefixes if p.prefix.version == 4][:100]
    cmds = []
    for i in range(20_000):
        p = nets[i % 100]
        cmds += (exabgp.withdrawals(edge.sessions, [p]) if (i // 100) % 2 == 0 else exabgp.announcements(edge.sessions, [p]))
    assert len(cmds) == 20_000
    t0 = time.monotonic()
    with exabgp.SpeakerChannel("edge", exabgp.ExabgpPaths(state.node_dir("edge")).socket, timeout=60) as ch:
        acks = ch.send_many(cmds, window=64)
    took = time.monotonic() - t0
    assert len(acks) == 20_000 and all(a.ok for a in acks)
    assert [a.command for a in acks] == [c.render() for c in cmds]
    print(f"20,000 commands, one acknowledgement each, in {took:.1f} s")
    # the last round announced them all: r1 has every prefix again
    r1 = report.plan.nodes["r1"]
    wait_until(lambda: (len(route_keys(r1.namespace, 2) & {str(n) for n in nets}) == 100, "missing"),
               timeout=10, what="r1 to hold the prefixes again")


def test_a_snapshot_restore_after_a_mass_withdrawal_brings_every_prefix_and_binding_back(ctl) -> None:
    """Through the CLI, as an operator would: snapshot, the damage (every BYOIP prefix withdrawn,
    bindings removed), then one restore; every kernel table, the collector and the edge have it all back."""
    report, api, _ = ctl
    lab, plan = report.lab, report.plan
    routers = [r for r in plan.routers() if r.installs_routes]
    every = {str(p.prefix) for p in plan.prefixes}
    bindings_before = sorted((b["prefix_id"], b["service"]) for b in api.call("GET", "/v1/bindings")["result"])
    out = bgplab("snapshots", "take", "--lab", lab, "known good")
    assert out.returncode == 0, out.stderr
    snap = out.stdout.split()[0]
    assert snap.startswith("snap-")

    byoip = {p["cidr"] for p in api.prefixes(byoip=True)}
    pinned = {p["cidr"] for p in api.prefixes(byoip=True) if p["pinned"]}
    assert bgplab("prefixes", "withdraw", "--lab", lab, "--byoip").returncode == 0
    stripped = sorted(byoip - pinned)[:50]
    for cidr in stripped:
        pid = cidr.replace("/", "_")
        for b in api.call("GET", f"/v1/prefixes/{pid}/bindings")["result"]:
            api.call("DELETE", f"/v1/prefixes/{pid}/bindings/{b['id']}")
    gone = byoip - pinned
    wait_until(lambda: (all(not kernel_has(r.namespace, gone) for r in routers), "still in a kernel table"),
               timeout=15, what="the BYOIP prefixes to leave every kernel table")

    out = bgplab("snapshots", "diff", "--lab", lab, snap)
    assert out.returncode == 0 and f"{len(gone)} prefixes differ: announce {len(gone)}" in out.stdout, out.stdout
    t0 = time.time()
    out = bgplab("snapshots", "restore", "--lab", lab, snap)
    assert out.returncode == 0, out.stderr
    assert f"announce {len(gone)}, bindings -0" in out.stdout and f"speakers: {len(gone)} announced" in out.stdout, out.stdout
    took = wait_until(lambda: (all(kernel_has(r.namespace, every) == every for r in routers), "missing"),
                      timeout=60, what="every prefix back in every kernel table")
    assert api.call("POST", "/v1/lab/verify", params={"wait": 10})["result"]["ok"]
    assert sorted((b["prefix_id"], b["service"]) for b in api.call("GET", "/v1/bindings")["result"]) == bindings_before
    wait_until(lambda: (sum(api.call("GET", "/v1/lab/edge")["result"]["lagging"].values()) == 0, "an edge machine lags"),
               timeout=60, what="every edge machine to serve the restored bindings")
    print(f"snapshot restore of {len(gone)} prefixes: every kernel table in {took:.2f} s "
          f"({time.time() - t0:.2f} s with the edge)")
    # restored in one change: the restore is one applied change in the audit log
    log = api.call("GET", "/v1/audit", params={"limit": 10000})["result"]
    assert [e["action"] for e in log].count("restore") == 1


def test_a_guardrail_holds_a_mass_withdrawal_until_an_operator_approves_it(ctl) -> None:
    report, api, _ = ctl
    lab, plan = report.lab, report.plan
    t1 = plan.nodes["t1"]
    before = route_keys(t1.namespace, 2)
    out = bgplab("guardrails", "--lab", lab, "--set", json.dumps({"blast_radius": {"max_prefixes": 100}}))
    assert out.returncode == 0, out.stderr
    out = bgplab("prefixes", "withdraw", "--lab", lab, "--byoip")
    assert out.returncode == 1 and "held by the blast_radius guardrail" in out.stderr, out.stderr
    assert route_keys(t1.namespace, 2) == before  # nothing reached the network
    out = bgplab("changes", "list", "--lab", lab, "--status", "held")
    assert out.returncode == 0 and "held" in out.stdout and "blast_radius" in out.stdout
    change = out.stdout.split()[0]
    assert bgplab("changes", "approve", "--lab", lab, change).returncode == 0
    byoip_v4 = {p["cidr"] for p in api.prefixes(byoip=True, family="ipv4") if not p["pinned"]}
    wait_until(lambda: (not kernel_has(t1.namespace, byoip_v4), "still there"), timeout=15,
               what="the approved withdrawal to reach the transit's kernel")


def test_the_api_needs_a_token_and_bgplab_up_keeps_the_admin_one_for_root_alone(ctl) -> None:
    report, api, info = ctl
    lab_dir = LabState.load(report.lab).dir
    path = lab_dir / "admin.token"
    assert path.stat().st_mode & 0o777 == 0o600
    # the lab's directory: root's, FRR's group may pass through to its nodes' files (0710), no one
    # else may enter; the inventory (token digests) and its WAL are root's alone
    st = lab_dir.stat()
    assert (st.st_uid, st.st_mode & 0o777) == (0, 0o710) and st.st_gid == grp.getgrnam("frr").gr_gid
    for f in lab_dir.glob("inventory.sqlite*"):
        assert f.stat().st_mode & 0o777 == 0o600, f
    url = f"{info['url']}/v1/prefixes"
    assert httpx.get(url, params={"limit": 1}).status_code == 401
    out = bgplab("token", "create", "--lab", report.lab, "--role", "read-only", "--name", "dashboard-viewer")
    assert out.returncode == 0, out.stderr
    ro = {"Authorization": f"Bearer {out.stdout.strip()}"}
    assert httpx.get(url, params={"limit": 1}, headers=ro).status_code == 200
    target = api.prefixes(byoip=True, limit=5)[-1]["id"]
    r = httpx.patch(f"{url}/{target}/bgp/status", json={"advertised": False}, headers=ro)
    assert r.status_code == 403 and "needs the 'write' permission" in r.json()["errors"][0]["message"]
    assert api.call("GET", f"/v1/prefixes/{target}")["result"]["advertised"]
    listed = bgplab("token", "list", "--lab", report.lab).stdout
    assert "dashboard-viewer" in listed and "admin" in listed


def test_an_observer_with_no_session_to_a_speaker_is_counted_by_its_table(lab_factory) -> None:
    """minimal.yaml's observer r2 hears the edge through r1: it has no speaker session to count
    routes on. The sampler and the dashboard count its BGP table instead, and say so (the
    headline showed 0 while r2 held all 250)."""
    report = lab_factory("minimal")
    info = launch.start(report.running(), probes=0)
    api = ApiClient(report.lab)
    try:
        want = len(report.plan.prefixes)

        def counted() -> tuple[bool, str]:
            sample = api.call("GET", "/v1/lab/observe")["result"]["sample"] or {}
            c = (sample.get("observer_received") or {}).get("r2", {})
            return c.get("from") == "table" and c.get("ipv4", 0) + c.get("ipv6", 0) == want, str(c)

        wait_until(counted, timeout=30, what="the sampler to count r2's table")
        with httpx.stream("GET", f"{info['url']}/v1/lab/stream", params={"frames": 2}, headers=api.headers,
                          timeout=30) as r:
            frames = [json.loads(line[6:]) for line in r.iter_lines() if line.startswith("data: ")]
        assert frames and frames[-1]["observer"] == want and frames[-1]["observer_from"] == ["table"], frames[-1]
    finally:
        api.close()

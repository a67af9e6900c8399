"""Benchmark: the controller on the reference lab (issue 3's figures). Run with `make bench`.

Per run, on a fresh reference lab brought up with nothing announced:
  1. direct: every speaker fed its 6,500 prefixes straight through the lab's channel
     (ExaBGP in bulk, no controller), until every router's kernel and the observer
     hold them; then withdrawn again the same way;
  2. API: one request advertises all 6,500 through the Addressing API; same finish line;
  3. API: one request withdraws 1,100 BYOIP prefixes; until gone from every kernel table;
  4. wire: UPDATE messages each transit sent the collector for 2 and 3 (from its MRT);
  5. channel: 20,000 commands in a row, one acknowledgement matched to each.
Prints medians, writes every run as JSON.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import tempfile

from controller.client import ApiClient
from controller.observe import mrt, wire
from lab import capture
from lab.daemons import exabgp
from lab.routers.frr import daemons as frr
from lab.routers.frr.daemons import frr_version
from lab.kernel import count_lab_routes_fast
from lab.running import RunningLab
from lab.plan import LabPlan
from lab.state import LabState
from lab.wait import wait_until
from tests.bench import common

ROOT = Path(__file__).resolve().parents[2]
BGPLAB = [sys.executable, "-m", "controller.cli"]


def kernel_totals(state: LabState, plan: LabPlan) -> dict[str, int]:
    out = {}
    for r in plan.routers():
        if r.installs_routes:
            c = count_lab_routes_fast(r.namespace, plan.pool_keys)
            out[r.name] = c["ipv4"] + c["ipv6"]
    return out


def observer_total(state: LabState, plan: LabPlan) -> int:
    node = plan.peer_routers()[0]
    edge = next(s for s in node.sessions if s.peer_kind.value == "exabgp")
    got = frr.sessions(frr.FrrPaths(state.node_dir(node.name))).get(str(edge.peer_v4), {}).get("received", {})
    return got.get("ipv4", 0) + got.get("ipv6", 0)


def wait_all(state: LabState, plan: LabPlan, want: int, t0: float, what: str) -> float:
    """Seconds from t0 until the observer and every router's kernel hold ``want`` lab prefixes."""

    # The observer hears one PoP: its anycast prefixes and its own /24, not the other PoP's.
    node = plan.peer_routers()[0]
    speaker = next(s.peer for s in node.sessions if s.peer_kind.value == "exabgp")
    observer_want = min(want, len(plan.originated_by(speaker)))

    def done() -> tuple[bool, str]:
        k = kernel_totals(state, plan)
        o = observer_total(state, plan)
        return all(v == want for v in k.values()) and o == observer_want, f"kernel {k}, observer {o}"

    wait_until(done, timeout=60, what=what, interval=0.01)
    return time.monotonic() - t0


def wait_kernels(state: LabState, plan: LabPlan, want: int, t0: float, what: str) -> float:
    wait_until(lambda: (all(v == want for v in kernel_totals(state, plan).values()), str(kernel_totals(state, plan))),
               timeout=60, what=what, interval=0.01)
    return time.monotonic() - t0


def direct(state: LabState, plan: LabPlan, announce: bool) -> None:
    """Feed (or withdraw) every speaker's planned prefixes through the channel, speakers in parallel."""
    errors: list[BaseException] = []

    def feed(node) -> None:
        nets = [p.prefix for p in plan.originated_by(node.name)]
        cmds = exabgp.announcements(node.sessions, nets) if announce else exabgp.withdrawals(node.sessions, nets)
        try:
            with exabgp.SpeakerChannel(node.name, exabgp.ExabgpPaths(state.node_dir(node.name)).socket) as ch:
                ch.send_many(cmds)
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=feed, args=(n,)) for n in plan.speakers()]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]


def updates_received(state: LabState, plan: LabPlan) -> dict[str, int]:
    """UPDATEs each router has received on each session from a speaker (FRR's own counters)."""
    out = {}
    for r in plan.routers():
        stats = frr.vtysh_json(frr.FrrPaths(state.node_dir(r.name)), "show bgp neighbors")
        for s in r.sessions:
            if s.peer_kind.value == "exabgp":
                out[f"{s.peer}->{r.name}"] = stats.get(str(s.peer_v4), {}).get("messageStats", {}).get("updatesRecv", 0)
    return out


def collector_counts(state: LabState, plan: LabPlan, since: float, until: float) -> dict[str, dict[str, int]]:
    collector = next(r for r in plan.routers() if r.role.value == "collector")
    names = {str(s.peer_v4): s.peer for s in collector.sessions}
    counts = mrt.wire_counts(frr.FrrPaths(state.node_dir(collector.name)).mrt, since, until)
    return {names.get(ip, ip): c for ip, c in counts.items()}


CLK = os.sysconf("SC_CLK_TCK")


class Cpu:
    """CPU seconds each kind of the lab's processes spent during one phase (zebra, bgpd,
    exabgp, the controller, the rest): where a phase's time goes on 2 cores."""

    def __init__(self, running: RunningLab):
        self.kinds = {pid: daemon if daemon in ("zebra", "bgpd", "exabgp") else "controller" if node == "controller"
                      else "other" for node, ds in running.state.daemons().items() for daemon, pid in ds.items()}

    @staticmethod
    def _cpu(pid: int) -> float:
        try:
            f = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            return (int(f[11]) + int(f[12])) / CLK
        except OSError:
            return 0.0

    def __enter__(self) -> "Cpu":
        self.start = {p: self._cpu(p) for p in self.kinds}
        return self

    def __exit__(self, *exc: object) -> None:
        self.spent: dict[str, float] = {}
        for p, kind in self.kinds.items():
            self.spent[kind] = round(self.spent.get(kind, 0.0) + self._cpu(p) - self.start[p], 2)


class Wire:
    """tcpdump on every speaker's links for one phase; then UPDATEs per session, counted on the
    wire (controller.observe.wire), as 'speaker->router'."""

    def __init__(self, running: RunningLab, tag: str):
        self.running, self.dir = running, Path(tempfile.mkdtemp(prefix=f"bgplab-bench-{tag}-"))

    def __enter__(self) -> "Wire":
        for sp in self.running.plan.speakers():
            capture.start(self.running, self.dir, node=sp.name, bgp_only=True)
        return self

    def __exit__(self, *exc: object) -> None:
        time.sleep(0.3)
        capture.stop(self.running)

    def counts(self) -> dict[str, int]:
        got = wire.link_counts(capture.files_in(self.dir))
        return {f"{sp.name}->{s.peer}": got.get(f"{s.local_v4}>{s.peer_v4}", {}).get("updates", 0)
                for sp in self.running.plan.speakers() for s in sp.sessions}


def one_run(topology: str, name: str) -> dict:
    up = subprocess.run([*BGPLAB, "up", topology, "--name", name, "--withdrawn", "--json"],
                        capture_output=True, text=True, cwd=ROOT)
    if up.returncode != 0:
        raise SystemExit(f"bench: up failed:\n{up.stderr}")
    try:
        running = RunningLab.open(name)
        state, plan = running.state, running.plan
        total = len(plan.prefixes)
        result: dict = {}

        with Wire(running, "direct") as w:
            t0 = time.monotonic()
            direct(state, plan, True)
            result["direct_announce_s"] = round(wait_all(state, plan, total, t0, "the direct announcement"), 3)
        result["wire_updates_direct"] = w.counts()
        t0 = time.monotonic()
        direct(state, plan, False)
        wait_all(state, plan, 0, t0, "the direct withdrawal")

        with ApiClient(name) as api:
            before = updates_received(state, plan)
            with Wire(running, "api") as w, Cpu(running) as cpu:
                wall0, t0 = time.time(), time.monotonic()
                body = api.set_advertised(True, all=True, advertised=False)
                result["api_request_s"] = round(time.monotonic() - t0, 3)
                result["api_announce_s"] = round(wait_all(state, plan, total, t0, "the API announcement"), 3)
            result["wire_updates_announce"] = w.counts()
            result["cpu_s_announce"] = cpu.spent
            time.sleep(1.0)  # let the MRT dump catch up before counting (and the verifier finish)
            rec = api.call("GET", "/v1/lab/reconcile")["result"]
            result["verify_queries_announce"] = rec["verify_queries"]
            result["verify_s_announce"] = rec["verify"].get("seconds")
            result["updates_announce"] = collector_counts(state, plan, wall0, time.time())
            after = updates_received(state, plan)
            result["speaker_updates_announce"] = {k: after[k] - before[k] for k in after}
            assert body["result"]["prefixes"] == total

            with Wire(running, "withdraw") as w:
                wall0, t0 = time.time(), time.monotonic()
                body = api.set_advertised(False, byoip=True, count=1100)
                assert body["result"]["prefixes"] == 1100
                result["api_withdraw_1100_s"] = round(wait_kernels(state, plan, total - 1100, t0, "the 1,100 withdrawal"), 3)
            result["wire_updates_withdraw"] = w.counts()
            time.sleep(1.0)
            result["updates_withdraw"] = collector_counts(state, plan, wall0, time.time())
            before = after
            after = updates_received(state, plan)
            result["speaker_updates_withdraw"] = {k: after[k] - before[k] for k in after}

            # The same 6,500 with every guardrail on (limits above the change, so nothing is held):
            # what deciding on the diff costs. Without them is api_announce_s above (the pipeline
            # runs either way: it is the API's only write path).
            api.set_advertised(False, all=True)  # the pinned resolver prefix stays
            pinned = sum(1 for x in api.prefixes(advertised=True))
            wait_kernels(state, plan, pinned, time.monotonic(), "the withdrawal before the guarded run")
            api.call("PUT", "/v1/lab/guardrails", json={
                "strict_api": True, "blast_radius": {"max_prefixes": 100_000, "max_accounts": 100_000, "window": 60},
                "breaker": {"max_withdrawals": 100_000, "window": 60}})
            t0 = time.monotonic()
            body = api.set_advertised(True, all=True, advertised=False)
            result["api_announce_guarded_s"] = round(wait_all(state, plan, total, t0, "the guarded announcement"), 3)
            assert body["result"]["prefixes"] == total - pinned
            api.call("PUT", "/v1/lab/guardrails", json={})
            result["guardrails_overhead"] = round(result["api_announce_guarded_s"] / result["api_announce_s"] - 1, 4)

        # the channel, 20,000 commands in a row: toggle 100 of the withdrawn prefixes, end withdrawn
        edge = plan.speakers()[0]
        nets = [p.prefix for p in plan.originated_by(edge.name) if p.byoip and p.prefix.version == 4][:100]
        cmds: list = []
        for i in range(200):
            for n in nets:
                cmds += exabgp.announcements(edge.sessions, [n]) if i % 2 == 0 else exabgp.withdrawals(edge.sessions, [n])
        t0 = time.monotonic()
        with exabgp.SpeakerChannel(edge.name, exabgp.ExabgpPaths(state.node_dir(edge.name)).socket, timeout=60) as ch:
            acks = ch.send_many(cmds, window=64)
        result["channel_commands"] = len(cmds)
        result["channel_acks_matched"] = sum(1 for a, c in zip(acks, cmds) if a.ok and a.command == c.render())
        result["channel_s"] = round(time.monotonic() - t0, 3)
        result["ratio_api_to_direct"] = round(result["api_announce_s"] / result["direct_announce_s"], 3)
        return result
    finally:
        subprocess.run([*BGPLAB, "down", name], capture_output=True, cwd=ROOT)


def main() -> None:
    args = common.arguments(__doc__, "bench-results/controller.json")
    runs = common.repeat(args.runs, "cbench", lambda name: one_run(args.topology, name), lambda r: (
        f"API announce {r['api_announce_s']:.2f} s (direct {r['direct_announce_s']:.2f} s), "
        f"withdraw 1,100 {r['api_withdraw_1100_s']:.2f} s, channel {r['channel_acks_matched']}/{r['channel_commands']} "
        f"in {r['channel_s']:.1f} s"))
    keys = ["api_request_s", "api_announce_s", "direct_announce_s", "ratio_api_to_direct", "api_withdraw_1100_s", "channel_s",
            "api_announce_guarded_s", "guardrails_overhead"]
    med = common.medians(runs, keys)
    peers = sorted(runs[0]["updates_announce"])
    med_updates = {
        phase: {p: statistics.median(r[phase].get(p, {}).get("updates", 0) for r in runs) for p in peers}
        for phase in ("updates_announce", "updates_withdraw")
    }
    sessions = sorted(runs[0]["speaker_updates_announce"])
    for phase in ("speaker_updates_announce", "speaker_updates_withdraw"):
        med_updates[phase] = {s: statistics.median(r[phase][s] for r in runs) for s in sessions}
    wire_sessions = sorted(runs[0]["wire_updates_announce"])
    for phase in ("wire_updates_direct", "wire_updates_announce", "wire_updates_withdraw"):
        med_updates[phase] = {s: statistics.median(r[phase][s] for r in runs) for s in wire_sessions}
    result = {"benchmark": "controller", "topology": args.topology, "runs": args.runs, "median": med,
              "median_updates_to_collector": med_updates, "all_runs": runs, "frr_version": frr_version()}
    out = common.write(args.out, result)

    print(f"\ncontroller on the reference lab, median of {args.runs} runs, {os.cpu_count()} CPUs, FRR {result['frr_version']}:")
    print(f"  6,500 through the API -> observer and every kernel   {med['api_announce_s']:>7.2f} s  target <= 2 s "
          f"(request returned in {med['api_request_s']:.2f} s)")
    print(f"  6,500 straight into ExaBGP, same finish line          {med['direct_announce_s']:>7.2f} s")
    print(f"  controller overhead (API / direct)                    {med['ratio_api_to_direct']:>7.2f}    target <= 1.2")
    print(f"  verifier: {statistics.median(r['verify_queries_announce'] for r in runs):.0f} bgpd queries for the 6,500 "
          f"(it waits for quiet kernels; it asked 5 routers through vtysh every 50 ms before)")
    kinds = sorted(runs[0]["cpu_s_announce"])
    spent = {k: statistics.median(r["cpu_s_announce"].get(k, 0.0) for r in runs) for k in kinds}
    print(f"    where it goes: CPU seconds during it, all 2 cores together ({sum(spent.values()):.1f} s): "
          + ", ".join(f"{k} {v:.2f}" for k, v in sorted(spent.items(), key=lambda kv: -kv[1])))
    print(f"  the same with every guardrail on                      {med['api_announce_guarded_s']:>7.2f} s  "
          f"({med['guardrails_overhead']:+.1%} against without; target <= +10%)")
    print(f"  1,100 withdrawn through the API -> gone from kernels  {med['api_withdraw_1100_s']:>7.2f} s")
    for phase, label in (("wire_updates_direct", "6,500 straight in"), ("wire_updates_announce", "6,500 via the API"),
                         ("wire_updates_withdraw", "1,100 withdrawal")):
        per = ", ".join(f"{p} {int(n)}" for p, n in med_updates[phase].items())
        print(f"  UPDATEs on the wire, {label:<18} {per}")
    print("    (targets: 6,000 IPv4 in <= 8 per session, 1 with extended messages; 1,100 withdrawals in <= 2;"
          " the 500 IPv6 add one MP_REACH UPDATE per session)")
    for phase, label in (("speaker_updates_announce", "6,500 announcement"), ("speaker_updates_withdraw", "1,100 withdrawal")):
        per = ", ".join(f"{p} {int(n)}" for p, n in med_updates[phase].items())
        print(f"  UPDATEs speaker->router (FRR's counters), {label:<20} {per}")
    for phase, label in (("updates_announce", "6,500 announcement"), ("updates_withdraw", "1,100 withdrawal")):
        per = ", ".join(f"{p} {int(n)}" for p, n in med_updates[phase].items())
        print(f"  UPDATEs transit->collector, {label:<17} {per}")
    print(f"  channel: {runs[0]['channel_acks_matched']}/{runs[0]['channel_commands']} acknowledgements matched, "
          f"median {med['channel_s']:.1f} s")
    print(f"written to {out}")


if __name__ == "__main__":
    main()

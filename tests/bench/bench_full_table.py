"""Benchmark: a full Internet table through the lab (topologies/full-table.yaml). `make bench`.

Per run, on a fresh lab brought up with nothing announced (sessions only), once per feeder
(lab/feed.py), in turn, so both meet the same machine in the same run:
  1. the speaker is fed the synthetic table (lab/table.py): by ExaBGP through the lab's channel,
     or by GoBGP from an MRT dump (`gobgp mrt inject`, then its sessions sent the table at once);
  2. measured: seconds until the observer's RIB holds every IPv4 prefix of it (its BGP
     summary), and until r1's kernel FIB does (the kernel's own counters: fib_triestat
     for IPv4, rt6_stats for IPv6, O(1) reads that cost the routers nothing), both from
     the first command sent;
  3. per daemon: peak resident memory (VmHWM) and CPU seconds (utime + stime) over the
     load; the feeder's whole CPU (its daemon, the controller's thread that fed it, and the
     gobgp client it ran); UPDATEs each router received (FRR's counters: a million-prefix
     capture read with scapy would take longer than the load).
With --profile, ExaBGP runs under cProfile (lab/daemons/exabgp_launch.py) and its top
functions are printed: where the speaker's time goes.
Prints medians per feeder beside the targets and the published anchor, says which feeder was
faster to the observer, writes every run as JSON.
"""

from __future__ import annotations

import argparse
import os
import pstats
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import yaml

from lab import announce
from lab import feed as gobgp_feed
from lab.feed import FEEDERS
from lab.routers.frr import daemons as frr
from lab.routers.frr.daemons import frr_version
from lab.running import RunningLab
from lab.topology.model import TABLE_FEEDER
from tests.bench import common

ROOT = Path(__file__).resolve().parents[2]
BGPLAB = [sys.executable, "-m", "controller.cli"]
CLK = os.sysconf("SC_CLK_TCK")

TARGETS = {"observer_rib_ipv4_s": 60.0, "fib_ipv4_s": 90.0, "resident_gib": 8.0}
# bgperf2's published figure for FRR 8.x: 1M routes loaded in ~10 s on 32 cores, ~0.8 GB.
ANCHOR = {"seconds": 10.0, "cores": 32, "memory_gb": 0.8, "source": "bgperf2 (FRR 8.x, 1M routes, 32 cores)"}


def fib_counts(pid: int) -> dict[str, int]:
    """Routes in the network namespace of ``pid``: IPv4 prefixes in the main trie, IPv6 FIB entries."""
    v4 = 0
    lines = Path(f"/proc/{pid}/net/fib_triestat").read_text().splitlines()
    for i, line in enumerate(lines):
        if line.startswith("Main:"):
            v4 = next(int(x.split()[1]) for x in lines[i + 1 :] if x.strip().startswith("Prefixes:"))
            break
    v6 = int(Path(f"/proc/{pid}/net/rt6_stats").read_text().split()[3], 16)  # fib6 route entries
    return {"ipv4": v4, "ipv6": v6}


def cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK


def peak_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


def received(running: RunningLab, router: str) -> dict[str, int]:
    got = {"ipv4": 0, "ipv6": 0}
    for s in frr.sessions(frr.FrrPaths(running.node_dir(router))).values():
        for f, n in s["received"].items():
            got[f] += n
    return got


def with_feeder(topology: str, feeder: str, into: Path) -> Path:
    """The topology with every speaker that originates a table fed by ``feeder``."""
    data = yaml.safe_load(Path(topology).read_text())
    tables = {n for n, p in data.get("pools", {}).items() if p.get("kind") == "internet"}
    for spec in data["nodes"].values():
        if spec.get("kind") == "exabgp" and set(spec.get("originates", ())) & tables:
            spec["feeder"] = feeder
    path = into / f"{Path(topology).stem}-{feeder}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def one_run(topology: str, name: str, profile: Path | None, feeder: str) -> dict:
    env = dict(os.environ, BGPLAB_EXABGP_PROFILE=str(profile)) if profile else None
    up = subprocess.run([*BGPLAB, "up", topology, "--name", name, "--withdrawn", "--json"],
                        capture_output=True, text=True, cwd=ROOT, env=env)
    if up.returncode != 0:
        raise SystemExit(f"bench: up failed:\n{up.stderr}")
    try:
        running = RunningLab.open(name)
        plan = running.plan
        [pool] = plan.tables
        spec = plan.tables[pool]
        t0 = time.monotonic()
        table = plan.table(pool)
        generate_s = time.monotonic() - t0
        daemons = {f"{node}/{d}": pid for node, ds in running.state.daemons().items() for d, pid in ds.items()}
        cpu0 = {k: cpu_s(p) for k, p in daemons.items()}
        zebra = running.state.daemons()["r1"]["zebra"]
        base = fib_counts(zebra)
        seen: dict[str, float] = {}
        errors: list[BaseException] = []

        children0 = resource.getrusage(resource.RUSAGE_CHILDREN)

        def feed() -> None:
            c0 = time.thread_time()
            try:
                if feeder == "gobgp":
                    [node] = [n for n in plan.speakers() if plan.tables_of(n.name)]
                    fed = gobgp_feed.inject(node, running.node_dir(node.name), [table])
                    seen.update(commands=sum(fed.prefixes.values()), write_s=fed.write_s, inject_s=fed.inject_s,
                                passes=fed.passes)
                else:
                    seen["commands"] = sum(announce.announce_tables(plan, running.state).values())
                seen["fed_s"] = time.monotonic() - t1
            except BaseException as e:  # noqa: BLE001 - raised below
                errors.append(e)
            finally:
                seen["feed_thread_cpu"] = time.thread_time() - c0

        t1 = time.monotonic()
        feeding = threading.Thread(target=feed)
        feeding.start()
        deadline = t1 + 600
        while time.monotonic() < deadline and not errors:
            now = time.monotonic() - t1
            at_observer = received(running, "observer")
            if "observer_rib_ipv4_s" not in seen and at_observer["ipv4"] >= spec.ipv4:
                seen["observer_rib_ipv4_s"] = now
            fib = fib_counts(zebra)
            if "fib_ipv4_s" not in seen and fib["ipv4"] - base["ipv4"] >= spec.ipv4:
                seen["fib_ipv4_s"] = now
            if "fib_ipv6_s" not in seen and fib["ipv6"] - base["ipv6"] >= spec.ipv6:
                seen["fib_ipv6_s"] = now
            if "observer_rib_all_s" not in seen and at_observer == {"ipv4": spec.ipv4, "ipv6": spec.ipv6}:
                seen["observer_rib_all_s"] = now
            if all(k in seen for k in ("observer_rib_ipv4_s", "fib_ipv4_s", "fib_ipv6_s", "observer_rib_all_s")):
                break
            time.sleep(0.5)  # a summary and two /proc reads: nothing the routers notice
        feeding.join()
        if errors:
            raise errors[0]
        cpu = {k: round(cpu_s(p) - cpu0[k], 1) for k, p in daemons.items()}
        children1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        client_cpu = (children1.ru_utime + children1.ru_stime) - (children0.ru_utime + children0.ru_stime)
        speaker = next(k for k in daemons if k.split("/")[1] in ("exabgp", "gobgpd") and k.split("/")[0] == "upstream")
        peak = {k: round(peak_kib(p) / 1024, 1) for k, p in daemons.items()}
        updates = {}
        for r in plan.routers():
            stats = frr.vtysh_json(frr.FrrPaths(running.node_dir(r.name)), "show bgp neighbors")
            for s in r.sessions:
                updates[f"{s.peer}->{r.name}"] = stats.get(str(s.peer_v4), {}).get("messageStats", {}).get("updatesRecv", 0)
        return {
            "feeder": feeder,
            "feeder_cpu_s": round(cpu[speaker] + seen.pop("feed_thread_cpu") + client_cpu, 1),
            "ipv4": spec.ipv4, "ipv6": spec.ipv6, "attribute_sets": table.attribute_sets("ipv4") + table.attribute_sets("ipv6"),
            "commands": seen.get("commands"), "generate_s": round(generate_s, 2),
            "speaker_fed_s": round(seen.get("fed_s", float("nan")), 2),
            **({"mrt_write_s": seen["write_s"], "inject_s": seen["inject_s"], "inject_passes": seen["passes"]}
               if feeder == "gobgp" else {}),
            **{k: round(v, 2) for k, v in seen.items() if k.endswith("_s") and k not in ("fed_s", "write_s", "inject_s")},
            "resident_gib": round(sum(peak.values()) / 1024, 2),
            "peak_mib": peak, "cpu_s": cpu, "updates_received": updates,
        }
    finally:
        subprocess.run([*BGPLAB, "down", name], capture_output=True, cwd=ROOT)


def report(runs: list[dict], feeder: str, n: int) -> dict:
    """One feeder's medians, printed beside the targets and the anchor."""
    keys = ["generate_s", "speaker_fed_s", "mrt_write_s", "inject_s", "observer_rib_ipv4_s", "observer_rib_all_s",
            "fib_ipv4_s", "fib_ipv6_s", "resident_gib", "feeder_cpu_s"]
    med = common.medians(runs, [k for k in keys if all(k in r for r in runs)])
    daemons = sorted(runs[0]["cpu_s"])
    med_cpu = {d: statistics.median(r["cpu_s"][d] for r in runs) for d in daemons}
    med_peak = {d: statistics.median(r["peak_mib"][d] for r in runs) for d in daemons}
    r0 = runs[0]
    nan = float("nan")
    print(f"\nfeeder {feeder} (input: {r0['ipv4']:,} IPv4 + {r0['ipv6']:,} IPv6 in {r0['attribute_sets']:,} attribute "
          f"sets; controller: {r0['commands']:,} {'prefixes injected' if feeder == 'gobgp' else 'commands'}), "
          f"median of {n} runs; times from the first command, measured in the network:")
    print(f"  table generated (input, the controller's work)      {med.get('generate_s', nan):>7.2f} s")
    if feeder == "gobgp":
        print(f"  MRT dump written (the controller's work)            {med.get('mrt_write_s', nan):>7.2f} s")
        print(f"  injected into gobgpd's RIB, then released           {med.get('inject_s', nan):>7.2f} s   "
              f"(passes: {[r['inject_passes'] for r in runs]})")
    print(f"  speaker fed, last command acknowledged              {med.get('speaker_fed_s', nan):>7.2f} s")
    for key, label in (("observer_rib_ipv4_s", f"{r0['ipv4']:,} IPv4 in the observer's RIB"),
                       ("fib_ipv4_s", f"{r0['ipv4']:,} IPv4 in r1's kernel FIB")):
        print(f"  {label:<50} {med.get(key, nan):>7.2f} s   target <= {TARGETS[key]:.0f} s; "
              f"anchor {ANCHOR['seconds']:.0f} s on {ANCHOR['cores']} cores ({ANCHOR['source']})")
    print(f"  whole table in the observer's RIB                   {med.get('observer_rib_all_s', nan):>7.2f} s")
    print(f"  IPv6 in r1's kernel FIB                             {med.get('fib_ipv6_s', nan):>7.2f} s")
    print(f"  the feeder's CPU (daemon, feeding thread, client)   {med.get('feeder_cpu_s', nan):>7.1f} s")
    print(f"  peak resident memory, whole lab                     {med['resident_gib']:>7.2f} GiB target <= "
          f"{TARGETS['resident_gib']:.0f} GiB; anchor {ANCHOR['memory_gb']} GB for FRR alone")
    print("  per daemon: CPU seconds during the load, peak resident MiB")
    for d in daemons:
        print(f"    {d:<20} {med_cpu[d]:>7.1f} s CPU  {med_peak[d]:>8.1f} MiB")
    print(f"  UPDATEs received per session (network: FRR's counters, run 1): {r0['updates_received']}")
    return {"median": med, "median_cpu_s": med_cpu, "median_peak_mib": med_peak, "all_runs": runs}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--topology", default="topologies/full-table.yaml")
    ap.add_argument("--feeders", default="exabgp,gobgp", help="comma-separated (lab/feed.py), each in turn per run")
    ap.add_argument("--out", default="bench-results/full-table.json")
    ap.add_argument("--profile", action="store_true", help="profile ExaBGP (cProfile) and print its top functions")
    args = ap.parse_args()
    feeders = args.feeders.split(",")
    unknown = [f for f in feeders if f not in FEEDERS]
    if unknown:
        raise SystemExit(f"bench: --feeders: no feeder {', '.join(unknown)} (feeders: {', '.join(FEEDERS)})")
    prof_dir = Path(tempfile.mkdtemp(prefix="bgplab-prof-")) if args.profile else None
    tmp = Path(tempfile.mkdtemp(prefix="bgplab-feeders-"))
    topologies = {f: with_feeder(args.topology, f, tmp) for f in feeders}
    by_feeder: dict[str, list[dict]] = {f: [] for f in feeders}

    def one_round(name: str) -> dict:
        for f in feeders:
            by_feeder[f].append(one_run(str(topologies[f]), f"{name}{f[0]}", prof_dir, f))
        return {f: by_feeder[f][-1] for f in feeders}

    common.repeat(args.runs, "ft", one_round, lambda r: "; ".join(
        f"{f}: observer RIB {x.get('observer_rib_ipv4_s', 'n/a')} s, r1 FIB {x.get('fib_ipv4_s', 'n/a')} s, "
        f"{x['resident_gib']} GiB peak" for f, x in r.items()))
    print(f"\nfull table, {os.cpu_count()} CPUs, FRR {frr_version()}, GoBGP {gobgp_version()}; feeders in turn, each run")
    results = {f: report(by_feeder[f], f, args.runs) for f in feeders}
    faster = None
    if len(feeders) > 1:
        # the finish line `up` waits for: every RIB and r1's kernel hold the table
        finish = {f: [max(r.get(k, float("inf")) for k in ("observer_rib_all_s", "fib_ipv4_s", "fib_ipv6_s"))
                      for r in by_feeder[f]] for f in feeders}
        med = {f: statistics.median(v) for f, v in finish.items()}
        best, *rest = sorted(feeders, key=med.get)
        spread = max(max(v) - min(v) for v in finish.values())
        print("\nthe lab up (every RIB and r1's kernel), median [runs]: " + "; ".join(
            f"{f} {med[f]:.1f} s {[round(x, 1) for x in finish[f]]}" for f in feeders))
        if all(med[f] - med[best] > spread for f in rest):
            faster = best
            print(f"faster: {best}, by more than the runs' spread ({spread:.1f} s)")
        else:
            print(f"no feeder faster by more than the runs' spread ({spread:.1f} s): a tie")
        print(f"the default for full tables: {TABLE_FEEDER} (lab/topology/model.py TABLE_FEEDER)")
    out = common.write(args.out, {"benchmark": "full table", "topology": args.topology, "runs": args.runs,
                                  "feeders": results, "faster": faster, "default_feeder": TABLE_FEEDER,
                                  "targets": TARGETS, "anchor": ANCHOR, "frr_version": frr_version(),
                                  "gobgp_version": gobgp_version()})
    if prof_dir:
        for f in sorted(prof_dir.glob("*.prof")):
            print(f"\nExaBGP profile {f.name} (top 15 by own time):")
            pstats.Stats(str(f)).sort_stats("tottime").print_stats(15)
    print(f"written to {out}")


def gobgp_version() -> str:
    out = subprocess.run(["gobgpd", "--version"], capture_output=True, text=True).stdout
    return out.split()[-1] if out.strip() else "not installed"


if __name__ == "__main__":
    main()

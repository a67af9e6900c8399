"""Benchmark: a full Internet table through the lab (topologies/full-table.yaml). `make bench`.

Per run, on a fresh lab brought up with nothing announced (sessions only):
  1. the speaker is fed the synthetic table (lab/table.py) through the lab's channel;
  2. measured: seconds until the observer's RIB holds every IPv4 prefix of it (its BGP
     summary), and until r1's kernel FIB does (the kernel's own counters: fib_triestat
     for IPv4, rt6_stats for IPv6, O(1) reads that cost the routers nothing), both from
     the first command sent;
  3. per daemon: peak resident memory (VmHWM) and CPU seconds (utime + stime) over the
     load; UPDATEs each router received (FRR's counters: a million-prefix capture read
     with scapy would take longer than the load).
With --profile, ExaBGP runs under cProfile (lab/daemons/exabgp_launch.py) and its top
functions are printed: where the speaker's time goes.
Prints medians beside the targets and the published anchor, writes every run as JSON.
"""

from __future__ import annotations

import argparse
import os
import pstats
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from lab import announce
from lab.routers.frr import daemons as frr
from lab.routers.frr.daemons import frr_version
from lab.running import RunningLab
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


def one_run(topology: str, name: str, profile: Path | None) -> dict:
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

        def feed() -> None:
            try:
                seen["commands"] = sum(announce.announce_tables(plan, running.state).values())
                seen["fed_s"] = time.monotonic() - t1
            except BaseException as e:  # noqa: BLE001 - raised below
                errors.append(e)

        t1 = time.monotonic()
        feeder = threading.Thread(target=feed)
        feeder.start()
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
        feeder.join()
        if errors:
            raise errors[0]
        cpu = {k: round(cpu_s(p) - cpu0[k], 1) for k, p in daemons.items()}
        peak = {k: round(peak_kib(p) / 1024, 1) for k, p in daemons.items()}
        updates = {}
        for r in plan.routers():
            stats = frr.vtysh_json(frr.FrrPaths(running.node_dir(r.name)), "show bgp neighbors")
            for s in r.sessions:
                updates[f"{s.peer}->{r.name}"] = stats.get(str(s.peer_v4), {}).get("messageStats", {}).get("updatesRecv", 0)
        return {
            "ipv4": spec.ipv4, "ipv6": spec.ipv6, "attribute_sets": table.attribute_sets("ipv4") + table.attribute_sets("ipv6"),
            "commands": seen.get("commands"), "generate_s": round(generate_s, 2),
            "speaker_fed_s": round(seen.get("fed_s", float("nan")), 2),
            **{k: round(v, 2) for k, v in seen.items() if k.endswith("_s") and k != "fed_s"},
            "resident_gib": round(sum(peak.values()) / 1024, 2),
            "peak_mib": peak, "cpu_s": cpu, "updates_received": updates,
        }
    finally:
        subprocess.run([*BGPLAB, "down", name], capture_output=True, cwd=ROOT)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--topology", default="topologies/full-table.yaml")
    ap.add_argument("--out", default="bench-results/full-table.json")
    ap.add_argument("--profile", action="store_true", help="profile ExaBGP (cProfile) and print its top functions")
    args = ap.parse_args()
    prof_dir = Path(tempfile.mkdtemp(prefix="bgplab-prof-")) if args.profile else None
    runs = common.repeat(args.runs, "ft", lambda name: one_run(args.topology, name, prof_dir), lambda r: (
        f"observer RIB {r.get('observer_rib_ipv4_s', 'n/a')} s, r1 FIB {r.get('fib_ipv4_s', 'n/a')} s, "
        f"{r['resident_gib']} GiB peak"))
    keys = ["generate_s", "speaker_fed_s", "observer_rib_ipv4_s", "observer_rib_all_s", "fib_ipv4_s", "fib_ipv6_s",
            "resident_gib"]
    med = common.medians(runs, [k for k in keys if all(k in r for r in runs)])
    daemons = sorted(runs[0]["cpu_s"])
    med_cpu = {d: statistics.median(r["cpu_s"][d] for r in runs) for d in daemons}
    med_peak = {d: statistics.median(r["peak_mib"][d] for r in runs) for d in daemons}
    result = {"benchmark": "full table", "topology": args.topology, "runs": args.runs, "median": med,
              "median_cpu_s": med_cpu, "median_peak_mib": med_peak, "targets": TARGETS, "anchor": ANCHOR,
              "all_runs": runs, "frr_version": frr_version()}
    out = common.write(args.out, result)
    r0 = runs[0]
    print(f"\nfull table (input: {r0['ipv4']:,} IPv4 + {r0['ipv6']:,} IPv6 in {r0['attribute_sets']:,} attribute sets; "
          f"controller: {r0['commands']:,} commands), median of {args.runs} runs, {os.cpu_count()} CPUs, "
          f"FRR {result['frr_version']}; times from the first command, measured in the network:")
    print(f"  table generated (input, the controller's work)      {med.get('generate_s', float('nan')):>7.2f} s")
    print(f"  speaker fed, last command acknowledged              {med.get('speaker_fed_s', float('nan')):>7.2f} s")
    for key, label in (("observer_rib_ipv4_s", f"{r0['ipv4']:,} IPv4 in the observer's RIB"),
                       ("fib_ipv4_s", f"{r0['ipv4']:,} IPv4 in r1's kernel FIB")):
        print(f"  {label:<50} {med.get(key, float('nan')):>7.2f} s   target <= {TARGETS[key]:.0f} s; "
              f"anchor {ANCHOR['seconds']:.0f} s on {ANCHOR['cores']} cores ({ANCHOR['source']})")
    print(f"  whole table in the observer's RIB                   {med.get('observer_rib_all_s', float('nan')):>7.2f} s")
    print(f"  IPv6 in r1's kernel FIB                             {med.get('fib_ipv6_s', float('nan')):>7.2f} s")
    print(f"  peak resident memory, whole lab                     {med['resident_gib']:>7.2f} GiB target <= "
          f"{TARGETS['resident_gib']:.0f} GiB; anchor {ANCHOR['memory_gb']} GB for FRR alone")
    print("  per daemon: CPU seconds during the load, peak resident MiB")
    for d in daemons:
        print(f"    {d:<20} {med_cpu[d]:>7.1f} s CPU  {med_peak[d]:>8.1f} MiB")
    print(f"  UPDATEs received per session (network: FRR's counters, run 1): {r0['updates_received']}")
    if prof_dir:
        for f in sorted(prof_dir.glob("*.prof")):
            print(f"\nExaBGP profile {f.name} (top 15 by own time):")
            pstats.Stats(str(f)).sort_stats("tottime").print_stats(15)
    print(f"written to {out}")


if __name__ == "__main__":
    main()

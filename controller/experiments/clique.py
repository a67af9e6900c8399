"""The Labovitz clique experiment, on real FRR: the lab checked against theory.

Labovitz, Ahuja, Bose and Jahanian ("Delayed Internet Routing Convergence", SIGCOMM 2000)
showed that after a withdrawal, a full mesh of n ASes explores the alternative paths one
advertisement interval (MRAI) at a time: T_down grows as (n - 2) x MRAI in their model,
between (n - 3) and (n - 1) MRAI on real routers, with the number of UPDATEs growing fast
in n.

Here: n FRR routers in a full mesh (siblings: each exports everything to every other, as
the paper's clique does), the first of them the origin's only neighbour: an ExaBGP speaker
announces one prefix to r1 and withdraws it. r1 then has no path (every other one goes
through r1's own AS) and the others hunt through each other. Per run:

* T_down: from the withdrawal leaving the speaker to the last UPDATE about the prefix
  sent by any router (tcpdump on every router's links: measured on the wire);
* UPDATEs: the UPDATE messages about the prefix the routers sent each other after it.

Before each withdrawal the prefix is announced and the routers are left until none has
sent an UPDATE for MRAI + 2 s (FRR's counters), so that the announcement's own path
exploration is over and every MRAI timer has run out: each run starts from the same
state, and repeats agree to within FRR's clock: bgpd decides whether an MRAI has passed in whole seconds
(bgp_adjust_routeadv compares monotime(NULL), a time_t), so a run may end up to a second
sooner or later than another; at MRAI 2 s that is half of it, at 30 s a thirtieth.
"""

from __future__ import annotations

import ipaddress
import json
import statistics
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import yaml

from controller.observe import wire
from lab import capture, lifecycle
from lab.daemons import exabgp
from lab.kinds import router_of
from lab.routers import get_router
from lab.errors import BgplabError, UsageError
from lab.running import RunningLab
from lab.wait import wait_until

PREFIX = ipaddress.ip_network("100.64.0.0/24")
Progress = Callable[[str], None]


def topology(n: int, mrai: int, name: str, implementation: str = "frr") -> dict:
    """A full mesh of n routers (transits: siblings by role) run by ``implementation``, the
    origin speaker on r1."""
    if not 3 <= n <= 12:
        raise UsageError(f"clique size {n}: between 3 and 12 routers")
    routers = [f"r{i + 1}" for i in range(n)]
    nodes = {"origin": {"kind": "exabgp", "role": "edge", "asn": 64512, "originates": ["p"]}}
    nodes |= {r: {"kind": "router", "implementation": implementation, "role": "transit", "asn": 65001 + i}
              for i, r in enumerate(routers)}
    links = [["origin", "r1"]] + [[a, b] for i, a in enumerate(routers) for b in routers[i + 1:]]
    return {
        "name": name,
        "description": f"Labovitz clique: {n} {implementation} routers in a full mesh, MRAI {mrai} s, origin on r1",
        "timers": {"keepalive": 3, "hold": 9, "mrai": mrai, "connect_retry": 1},
        "pools": {"p": {"prefix": str(PREFIX), "length": 24, "count": 1}},
        "nodes": nodes,
        "links": links,
    }


def bounds(n: int, mrai: float) -> tuple[float, float]:
    """The issue's target for T_down: [0.75 (n-3) MRAI, (n-1) MRAI + 2 s]."""
    return 0.75 * (n - 3) * mrai, (n - 1) * mrai + 2.0


@dataclass
class Run:
    t_down: float  # seconds, on the wire
    updates: int  # UPDATE messages about the prefix between routers after the withdrawal
    paths: int  # distinct AS paths announced while hunting (all routers)


@dataclass
class Case:
    n: int
    mrai: int
    runs: list[Run] = field(default_factory=list)

    @property
    def t_down(self) -> float:
        return statistics.median(r.t_down for r in self.runs)

    @property
    def updates(self) -> float:
        return statistics.median(r.updates for r in self.runs)

    @property
    def spread(self) -> float:
        """Largest deviation of a run's T_down from the median, as a share of it."""
        m = self.t_down
        return max(abs(r.t_down - m) for r in self.runs) / m if m > 0 else 0.0

    def summary(self) -> dict:
        lo, hi = bounds(self.n, self.mrai)
        return {"n": self.n, "mrai": self.mrai, "runs": [asdict(r) for r in self.runs],
                "t_down_median_s": round(self.t_down, 3), "updates_median": self.updates,
                "spread": round(self.spread, 4), "staircase_s": (self.n - 2) * self.mrai,
                "bounds_s": [lo, hi], "within_bounds": all(lo <= r.t_down <= hi for r in self.runs)}


def _has_prefix(lab: RunningLab, router: str) -> bool:
    return str(PREFIX) in router_of(lab.node(router)).rib(lab.node_dir(router), "ipv4")


def _updates_sent(lab: RunningLab, routers: list[str]) -> int:
    """UPDATEs the routers have sent so far (each router's per-session counters)."""
    return sum(router_of(lab.node(r)).updates_sent(lab.node_dir(r)) for r in routers)


def _wait_quiet(lab: RunningLab, routers: list[str], quiet: float, timeout: float) -> None:
    """Until no router has sent an UPDATE for ``quiet`` seconds: the announcement's own path
    exploration is over and every MRAI timer has run out, so each withdrawal starts from the
    same state (a fixed pause after the prefix first arrived cut the announcement's hunting
    short and made the first run of a case a second longer than the others)."""
    deadline = time.monotonic() + timeout
    last, since = _updates_sent(lab, routers), time.monotonic()
    while time.monotonic() - since < quiet:
        if time.monotonic() > deadline:
            raise BgplabError(f"the routers did not go quiet for {quiet:g} s within {timeout:g} s")
        time.sleep(0.5)
        now = _updates_sent(lab, routers)
        if now != last:
            last, since = now, time.monotonic()


def _sent_updates(lab: RunningLab, files: list[Path]) -> list[wire.WireUpdate]:
    """UPDATEs about the prefix, each once: from each node's own capture, what that node sent."""
    out = []
    for f in files:
        node = next((n for n in lab.plan.nodes.values() if f.name.startswith(f"{n.name}-")), None)
        if node is None:
            continue
        mine = {str(i.v4.ip) for i in node.interfaces} | {str(i.v6.ip) for i in node.interfaces}
        out += [u for u in wire.updates(f) if u.src in mine and str(PREFIX) in (*u.announced, *u.withdrawn)]
    return sorted(out, key=lambda u: u.t)


def one_run(lab: RunningLab, mrai: int, dest: Path, timeout: float) -> Run:
    origin = lab.node("origin")
    routers = [r.name for r in lab.plan.routers()]
    sock = exabgp.ExabgpPaths(lab.node_dir("origin")).socket
    with exabgp.SpeakerChannel("origin", sock) as ch:
        ch.send_many(exabgp.announcements(origin.sessions, [PREFIX]))
    wait_until(lambda: (all(_has_prefix(lab, r) for r in routers), "not every router has the prefix"),
               timeout=timeout, what="the prefix at every router")
    _wait_quiet(lab, routers, mrai + 2.0, timeout)
    dest.mkdir(parents=True, exist_ok=True)
    capture.start(lab, dest, all_=True, bgp_only=True)
    try:
        with exabgp.SpeakerChannel("origin", sock) as ch:
            ch.send_many(exabgp.withdrawals(origin.sessions, [PREFIX]))
        def gone() -> tuple[bool, str]:
            held = {r: router_of(lab.node(r)).rib(lab.node_dir(r), "ipv4").get(str(PREFIX)) for r in routers}
            held = {r: [p["as_path"] for p in paths] for r, paths in held.items() if paths}
            # what each still holds, by AS path: a stale route names itself (GoBGP 3.10: README)
            return not held, "; ".join(f"{r} holds {paths}" for r, paths in held.items())

        wait_until(gone, timeout=timeout, interval=0.2, what="the prefix gone from every router")
        time.sleep(1.0)  # the last withdrawals in flight reach tcpdump
    finally:
        capture.stop(lab)
    sent = _sent_updates(lab, capture.files_in(dest))
    speaker = {str(s.local_v4) for s in origin.sessions}
    gone = next((u.t for u in sent if u.src in speaker and str(PREFIX) in u.withdrawn), None)
    if gone is None:
        raise BgplabError(f"the origin's withdrawal of {PREFIX} is not in the captures under {dest}")
    among = [u for u in sent if u.src not in speaker and u.t >= gone]
    if not among:
        raise BgplabError(f"no router sent an UPDATE about {PREFIX} after the withdrawal (captures under {dest})")
    paths = {u.as_path for u in among if str(PREFIX) in u.announced}
    return Run(t_down=round(among[-1].t - gone, 4), updates=len(among), paths=len(paths))


def run_case(n: int, mrai: int, runs: int, out: Path, *, lab_name: str | None = None,
             progress: Progress = lambda s: None, implementation: str = "frr") -> Case:
    name = lab_name or f"clq{n}m{mrai}"
    topo_path = out / f"clique-n{n}-mrai{mrai}.yaml"
    out.mkdir(parents=True, exist_ok=True)
    topo_path.write_text(yaml.safe_dump(topology(n, mrai, name, implementation), sort_keys=False))
    up = lifecycle.up(topo_path, name, announce=False)
    case = Case(n, mrai)
    try:
        lab = up.running()
        timeout = 60 + 3 * (n - 1) * mrai
        # One withdrawal first, not counted. The first of a fresh lab's life has converged short of
        # the staircase by a whole MRAI (n = 4: 0.20 s at MRAI 4 s, then 4.20 and 4.20), and no
        # later one has (a later one can be a second short, FRR's MRAI clock being whole
        # seconds: at MRAI 2 s, 2.20, 2.20 and 1.20 s): after the first, each run starts from a
        # withdrawal and a re-announcement of the same prefix, so the routers' MRAI timers stand
        # the same way (FRR re-arms a peer's MRAI timer as it sends, bgpd/bgp_fsm.c). Where FRR's
        # first withdrawal stands instead was not pinned down; it is not what the case measures.
        warm = one_run(lab, mrai, out / f"n{n}-mrai{mrai}" / "warm-up", timeout)
        progress(f"n={n} MRAI={mrai}s warm-up (not counted): T_down {warm.t_down:.2f} s")
        for i in range(runs):
            r = one_run(lab, mrai, out / f"n{n}-mrai{mrai}" / f"run{i + 1}", timeout)
            case.runs.append(r)
            progress(f"n={n} MRAI={mrai}s run {i + 1}: T_down {r.t_down:.2f} s, {r.updates} UPDATEs, {r.paths} paths")
    finally:
        lifecycle.down(name)
    return case


def plot(cases: list[Case], path: Path) -> Path:
    """T_down against n, per MRAI, beside the (n-2) x MRAI staircase and the target band."""
    # Here, not at the top: matplotlib.pyplot costs 1.0 s of start-up (python -X importtime),
    # paid only when the clique is drawn, not by every `bgplab` command that imports this module.
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    mrais = sorted({c.mrai for c in cases})
    fig, axes = plt.subplots(1, len(mrais), figsize=(4.2 * len(mrais), 3.6), squeeze=False)
    for ax, m in zip(axes[0], mrais):
        cs = sorted((c for c in cases if c.mrai == m), key=lambda c: c.n)
        ns = [c.n for c in cs]
        span = list(range(min(ns), max(ns) + 1))
        ax.step(span, [(n - 2) * m for n in span], where="mid", color="#888", label="(n-2) x MRAI (Labovitz)")
        ax.fill_between(span, [bounds(n, m)[0] for n in span], [bounds(n, m)[1] for n in span], color="#ddd",
                        alpha=0.6, label="target band")
        for c in cs:
            ax.scatter([c.n] * len(c.runs), [r.t_down for r in c.runs], color="#c33", s=14)
        ax.plot(ns, [c.t_down for c in cs], color="#c33", marker="o", label="lab: T_down (median, runs)")
        ax.set_title(f"MRAI {m} s")
        ax.set_xlabel("clique size n")
        ax.set_xticks(span)
        ax.set_ylabel("T_down (s, on the wire)")
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def prediction(implementation: str) -> str:
    """What to set a case beside: Labovitz's staircase where the implementation has an MRAI;
    where it has none, what its own documentation and source predict."""
    r = get_router(implementation)
    if r.mrai:
        return "Labovitz et al. 2000: T_down about (n-2) x MRAI, between (n-3) and (n-1) MRAI on real routers"
    return (f"{r.label} has no MRAI (its documentation and source: see the README's semantics table): every "
            "alternative is sent as soon as it is chosen, so T_down is processing and propagation alone, under "
            "a second for any n here (the band of MRAI 0: [0, 2 s]), and nothing paces the UPDATEs")


def run_grid(ns: list[int], mrais: list[int], runs: int, out: Path, progress: Progress = lambda s: None,
             implementation: str = "frr") -> dict:
    if not get_router(implementation).mrai and any(mrais):
        raise UsageError(f"{get_router(implementation).label} has no MRAI: a clique of it runs with --mrai 0 only")
    cases = [run_case(n, m, runs, out, progress=progress, implementation=implementation) for m in mrais for n in ns]
    result = {
        "experiment": f"Labovitz clique: n {get_router(implementation).label} routers in a full mesh, one origin withdraws",
        "implementation": implementation,
        "prediction": prediction(implementation),
        "sources": {"t_down_s": "network: tcpdump on every router's links (withdrawal leaving the speaker to the "
                                "last UPDATE a router sent)",
                    "updates": "network: UPDATE messages about the prefix between routers, same captures",
                    "n, mrai": "input: the generated topology", "bounds_s": "input: the issue's target band",
                    "staircase_s": "input: (n-2) x MRAI, Labovitz et al. 2000"},
        "cases": [c.summary() for c in cases],
    }
    (out / "clique.json").write_text(json.dumps(result, indent=1))
    plot(cases, out / "clique.png")
    return result

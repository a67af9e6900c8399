"""The controller process of a lab: Addressing API + reconciler + observers, on loopback.

Started by `bgplab up` after the lab has converged (``start``), marked with the lab
like every other process of it, so `bgplab down` ends it. It writes
``controller.json`` (pid, port) into the lab directory once it is listening.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from controller.dashboard import Dashboard
from controller.api import Behaviour, create_app
from controller.client import admin_token_path
from controller.edge import Edge, EdgeFiles, Ticker
from controller.inventory import Inventory, InventoryError, cidr_of
from controller.observe.probe import CANARY_INTERVAL, by_end_host
from controller.observe.sampler import Sampler
from controller.reconcile import Reconciler
from lab.daemons import frr
from lab.errors import BgplabError
from lab.plan import LabPlan
from lab.running import RunningLab
from lab.procs import alive, mark_env
from lab.runtime.netns import spawn_net
from lab.state import LabState
from lab.wait import wait_until


def inventory_path(state: LabState) -> Path:
    return state.dir / "inventory.sqlite"


def info_path(state: LabState) -> Path:
    return state.dir / "controller.json"


def observe_dir(state: LabState) -> Path:
    d = state.dir / "observe"
    d.mkdir(exist_ok=True)
    return d


class EventLog:
    """Timestamped events, one JSON object per line, safe from several threads."""

    def __init__(self, path: Path):
        self.path = path
        self.lock = threading.Lock()
        self.f = open(path, "a", buffering=1)

    def __call__(self, kind: str, data: dict[str, Any]) -> None:
        line = json.dumps({"t": time.time(), "kind": kind, **data})
        with self.lock:
            self.f.write(line + "\n")


def serve(lab: str, seed: int, probes: int, extra: list[str], machines: int = 4, edge_seed: int = 1) -> None:
    running = RunningLab.open(lab)
    state, plan = running.state, running.plan
    log = EventLog(observe_dir(state) / "controller.jsonl")
    path = inventory_path(state)
    fresh = not path.exists()
    inv = Inventory(path)
    lab_announced = bool(state.data.get("announced", True))
    if fresh:
        # A lab brought up withdrawn starts with every prefix withdrawn, the pinned one too: that is
        # its initial state, not a withdrawal through the API.
        counts = inv.seed(plan, seed=seed, advertised=lab_announced)
        log("seeded", {**counts, "advertised": lab_announced})
        # `up` announced exactly the plan (or nothing): that is what the speakers hold now.
        announced = {s.name: inv.desired(s.name) for s in plan.speakers()}
    else:
        announced = {}  # unknown after a controller restart: resend everything
    token_file = admin_token_path(state)
    if fresh or not token_file.exists():
        # The lab's admin token: `bgplab up` makes it, the CLI and drills read it (root's, 0600).
        token = inv.create_token("admin", "admin")
        fd = os.open(token_file.with_suffix(".tmp"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(token + "\n")
        os.replace(token_file.with_suffix(".tmp"), token_file)
        log("admin_token", {"path": str(token_file)})
    reconciler = Reconciler(plan, state, inv, announced, log)
    reconciler.start()
    if not fresh:
        reconciler.sync()

    obs = observe_dir(state)
    routers = {r.name: r.namespace for r in plan.routers() if r.installs_routes}
    observers = {
        r.name: (frr.FrrPaths(state.node_dir(r.name)), [str(x.peer_v4) for x in r.sessions if x.peer_kind.value == "exabgp"])
        for r in plan.peer_routers()
    }
    sampler = Sampler(routers, plan.pool_keys, observers, obs)
    sampler.start()
    reconciler.settled = sampler.wait_quiet
    # The edge: every PoP's machines start with the inventory's bindings; changes reach them
    # through the ticker (controller.edge), and each PoP's responder reads its own file.
    initial: dict[str, list[str]] = {}
    for b in inv.bindings():
        initial.setdefault(cidr_of(b.prefix_id), []).append(b.service)
    serving = {n.name: [str(p.prefix) for p in plan.originated_by(n.name)] for n in plan.speakers() if plan.originated_by(n.name)}
    edge = None
    if serving:
        files = EdgeFiles(state.dir / "edge", serving)
        edge = Edge({pop: machines for pop in serving}, initial, seed=edge_seed, store=files)
        ticker = Ticker(edge.tick, "edge-ticker")
        ticker.start()
    start_data_plane(state, plan, inv, seed, probes, extra, machines)

    routes = LabRoutes(reconciler, sampler, obs, ticker if edge else None)
    # The live dashboard: its costly part (every router's sessions) polls only while a browser
    # is connected (controller.dashboard).
    dashboard = Dashboard(plan, state.node_dir, sampler, inv, None, obs / "probes.jsonl")
    app = create_app(inv, reconciler.on_change, Behaviour(), lab=routes, edge=edge, dashboard=dashboard)
    # The staged rollout: the reconciler keeps a change in its window from the other PoPs, the
    # end hosts' probes judge it, a ticker decides once its window has passed.
    changes = app.state.changes
    reconciler.overlay = changes.overlay
    changes.health = lambda since, until: probe_health(obs / "probes.jsonl", since, until, changes.announced_anywhere())
    stager = routes.stager = Ticker(changes.tick, "stage-ticker")
    stager.start()

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    # Accepted connections inherit it: without it a kept-alive client waited ~40 ms
    # (Nagle against delayed ACK) for every small answer.
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind(("127.0.0.1", 0))  # loopback only; the port is whatever is free
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False))

    def stop(*_: object) -> None:
        server.should_exit = True

    signal.signal(signal.SIGTERM, stop)
    tmp = info_path(state).with_suffix(".tmp")
    tmp.write_text(json.dumps({"pid": os.getpid(), "port": port, "url": f"http://127.0.0.1:{port}"}))
    os.replace(tmp, info_path(state))
    log("listening", {"port": port})
    try:
        server.run(sockets=[sock])
    finally:
        dashboard.stop()
        stager.stop()
        if edge is not None:
            ticker.stop()
        sampler.stop()
        reconciler.stop()
        inv.close()


class EdgeStopped(InventoryError):
    """The edge's propagation thread failed: not the client's mistake, 503, with the reason."""

    status = 503


class LabRoutes:
    """The lab's own API routes (observe, verify, sync) over the reconciler and the sampler."""

    def __init__(self, reconciler: Reconciler, sampler: Sampler, observe_dir: Path, ticker: Ticker | None = None):
        self.reconciler, self.sampler, self.observe_dir, self.ticker = reconciler, sampler, observe_dir, ticker
        self.stager: Ticker | None = None

    def observe(self) -> dict[str, Any]:
        if self.ticker is not None and self.ticker.error is not None:
            raise EdgeStopped(f"the edge's propagation stopped: {self.ticker.error!r}")
        if self.stager is not None and self.stager.error is not None:
            raise EdgeStopped(f"the staged rollout's decisions stopped: {self.stager.error!r}")
        return {"sample": self.sampler.latest, "probes": probe_summary(self.observe_dir / "probes.jsonl")}

    def status(self) -> dict[str, Any]:
        r = self.reconciler
        return {"sync": r.last_sync, "verify": r.last_verify, "verify_queries": r.verify_queries,
                "edge_error": repr(self.ticker.error) if self.ticker is not None and self.ticker.error else None,
                "stage_error": repr(self.stager.error) if self.stager is not None and self.stager.error else None,
                "suspect": sorted(r.suspect),
                "restarts": {n: link.restarts for n, link in r.links.items()}}

    def verify(self, wait: float = 0.0) -> dict[str, Any]:
        return self.reconciler.verify(wait=wait)

    def sync(self):
        return self.reconciler.sync()

    def resend_all(self):
        return self.reconciler.resend_all()


# Each product's probe: its port on the edge and how many of its prefixes are probed (the
# CDN's count is the lab's --probes; the others a fifth of it, at least two).
PRODUCT_PORTS = {"cdn": 80, "resolver_web": 80, "spectrum": 8443, "magic_transit": 7000, "dns": 53}


def probe_targets(plan: LabPlan, inv: Inventory, seed: int, count: int, extra: list[str] = ()) -> list[dict[str, Any]]:
    """What the end hosts probe, per product: a deterministic, stratified sample (``stratified``)
    of the BYOIP prefixes bound to it before anything happened (an address inside each: its
    first host address), the
    resolver's website and DNS, and ``extra`` prefixes (a drill's canary) over HTTP."""
    rng = random.Random(seed)
    byoip = [p for p in inv.prefixes(byoip=True, onboarding_order=True) if not p.pinned]
    bound: dict[str, list[str]] = {}
    for b in inv.bindings():
        bound.setdefault(b.service, []).append(b.prefix_id)
    out: list[dict[str, Any]] = []

    def add(product: str, cidr: str) -> None:
        net = ipaddress.ip_network(cidr)
        out.append({"product": product, "prefix": cidr, "address": str(net.network_address + 1),
                    "port": PRODUCT_PORTS[product]})

    others = max(2, count // 5) if count > 0 else 0
    for product, n in (("cdn", count), ("spectrum", others), ("magic_transit", others)):
        ids = set(bound.get(product, []))
        for cidr in stratified([p.cidr for p in byoip if p.id in ids], n, rng):
            add(product, cidr)
    known = {str(p.prefix) for p in plan.prefixes}
    for cidr in extra:
        if cidr not in known:
            raise BgplabError(f"probe target {cidr} is not one of the lab's prefixes")
        if not any(t["prefix"] == cidr and t["product"] == "cdn" for t in out):
            add("cdn", cidr)
    if inv.meta("resolver_web"):
        add("resolver_web", inv.meta("resolver_web"))
        out[-1]["interval"] = CANARY_INTERVAL  # the replay's canary: probed on a finer clock
    if inv.meta("resolver_dns"):
        add("dns", inv.meta("resolver_dns"))
    return out


def stratified(pool: list[str], n: int, rng: random.Random) -> list[str]:
    """``n`` of ``pool`` (in the API's onboarding order): half from its oldest fifth, half from
    the rest. A cleanup that walks the API's order strikes the oldest first, so a drill watches
    prefixes it strikes and prefixes it spares, whatever the sample. Which ones is the seed's."""
    if n <= 0 or not pool:
        return []
    old, rest = pool[: max(1, len(pool) // 5)], pool[max(1, len(pool) // 5):]
    k = min(len(old), (n + 1) // 2)
    return rng.sample(old, k) + rng.sample(rest, min(len(rest), n - k))


def egress_targets(inv: Inventory, seed: int, count: int) -> list[dict[str, str]]:
    """BYOIP prefixes with Dedicated Egress bound (stratified like the probes' targets), and the
    source address egress uses in each."""
    ids = {b.prefix_id for b in inv.bindings() if b.service == "dedicated_egress"}
    pool = [p.cidr for p in inv.prefixes(byoip=True, onboarding_order=True) if p.id in ids and not p.pinned]
    chosen = stratified(pool, max(2, count // 5), random.Random(f"{seed}:egress")) if count else []
    return [{"prefix": c, "source": str(ipaddress.ip_network(c).network_address + 2)} for c in chosen]


def pop_sources(plan: LabPlan) -> dict[str, str]:
    """Each PoP's own unicast address: the first address of a non-BYOIP pool only it originates
    (the proxies connect to origins from it, so replies come back to that PoP)."""
    out = {}
    for node in plan.speakers():
        for name in node.pools:
            pool = plan.topology.pools[name]
            only = [p for p in plan.prefixes if p.pool == name]
            if only and not pool.byoip and all(p.origins == (node.name,) for p in only):
                out[node.name] = str(only[0].prefix.network_address + 1)
                break
    return out


def start_data_plane(state: LabState, plan: LabPlan, inv: Inventory, seed: int, probes: int,
                     extra: list[str] = (), machines: int = 4) -> None:
    """Each PoP's front ends (controller.observe.responder) and egress gateway, and the end
    hosts' servers and probes, each in its node's namespace."""
    obs = observe_dir(state)
    lengths = ",".join(sorted({f"{p.prefix.version}:{p.prefix.prefixlen}" for p in plan.prefixes}))
    running = state.daemons()
    hosts = plan.hosts()
    host_addr = {h.name: str(h.interfaces[0].v4.ip) for h in hosts}
    origin = f"{host_addr[hosts[0].name]}:9000" if hosts else None
    site = f"{host_addr[hosts[-1].name]}:9001" if hosts else None
    sources = pop_sources(plan)
    dns = inv.meta("resolver_dns")
    web = inv.meta("resolver_web")
    # A speaker that carries only a synthetic table (no pool of the inventory's) serves nothing.
    serving = [n for n in plan.speakers() if plan.originated_by(n.name)]
    for host in hosts:
        if not alive(running.get(host.name, {}).get("origin", -1)):
            argv = [sys.executable, "-m", "controller.observe.origin", "--host", host.name]
            state.add_daemon(host.name, "origin", spawn_net(state.lab, host, argv, log=state.node_dir(host.name) / "origin.out"))
    for node in serving:
        if alive(running.get(node.name, {}).get("responder", -1)):
            continue
        argv = [sys.executable, "-m", "controller.observe.responder", "--edge-db", str(edge_db(state, node.name)),
                "--pop", node.name, "--machines", str(machines), "--lengths", lengths]
        if node.name in sources:
            argv += ["--source", sources[node.name]]
            argv += ["--origin", origin] if origin else []
            argv += ["--site", site] if site else []
        if dns:
            argv += ["--dns-prefix", dns, "--dns-answer", str(ipaddress.ip_network(web).network_address + 1)]
        state.add_daemon(node.name, "responder", spawn_net(state.lab, node, argv, log=state.node_dir(node.name) / "responder.out"))

    # Probes start once every front end and server listens: a refused probe at start is not an outage.
    def listening() -> tuple[bool, str]:
        d = state.daemons()
        waiting = [n.name for n in serving if not _listens(d[n.name]["responder"], 80)]
        waiting += [h.name for h in hosts if not _listens(d[h.name]["origin"], 9000)]
        return not waiting, f"no listener yet on {', '.join(waiting)}"

    wait_until(listening, timeout=20, what="the edge's front ends and the hosts' servers to listen")
    if (probes <= 0 and not extra) or not hosts:
        return
    targets = probe_targets(plan, inv, seed, probes, extra)
    if not sources:
        # Without a PoP's own address the proxies cannot reach an origin: those products are not probed.
        targets = [t for t in targets if t["product"] not in ("spectrum", "magic_transit")]
    (obs / "probe-targets.json").write_text(json.dumps(targets, indent=1))
    for host in hosts:
        if alive(running.get(host.name, {}).get("probe", -1)):
            continue
        argv = [sys.executable, "-m", "controller.observe.probe", "--host", host.name, "--targets",
                str(obs / "probe-targets.json"), "--out", str(obs / "probes.jsonl")]
        state.add_daemon(host.name, "probe", spawn_net(state.lab, host, argv, log=state.node_dir(host.name) / "probe.out"))
    egress = egress_targets(inv, seed, probes)
    if not egress:
        return
    (obs / "egress-targets.json").write_text(json.dumps(egress, indent=1))
    for node in serving:
        if alive(running.get(node.name, {}).get("egress", -1)):
            continue
        argv = [sys.executable, "-m", "controller.observe.egress", "--pop", node.name, "--edge-db",
                str(edge_db(state, node.name)), "--machines", str(machines), "--lengths", lengths,
                "--targets", str(obs / "egress-targets.json"), "--destination", f"{host_addr[hosts[0].name]}:9100",
                "--destination6", f"[{hosts[0].interfaces[0].v6.ip}]:9100",
                "--out", str(obs / "probes.jsonl")]
        state.add_daemon(node.name, "egress", spawn_net(state.lab, node, argv, log=state.node_dir(node.name) / "egress.out"))


def edge_db(state: LabState, pop: str) -> Path:
    return EdgeFiles.path(state.dir / "edge", pop)


def _listens(pid: int, port: int) -> bool:
    """A socket listening on ``port`` in the network namespace of process ``pid``."""
    for table in ("tcp6", "tcp"):
        try:
            lines = Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            f = line.split()
            if f[3] == "0A" and int(f[1].rsplit(":", 1)[1], 16) == port:
                return True
    return False


def recent_probes(path: Path, window: float = 1.5) -> list[dict[str, Any]]:
    """Probe results of the last ``window`` seconds (read from the file's tail)."""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 256 * 1024))
            lines = f.read().decode(errors="replace").splitlines()[1:]
    except FileNotFoundError:
        return []
    cutoff = time.time() - window
    out = []
    for line in reversed(lines):
        try:
            e = json.loads(line)
        except ValueError:
            continue
        if e["t"] < cutoff:
            break
        out.append(e)
    return out


def probe_health(path: Path, since: float, until: float, announced: set[str]) -> dict[str, Any]:
    """The end hosts' probe results between ``since`` and ``until``, of every product, on the
    prefixes some PoP announces (``announced``): a prefix withdrawn everywhere serves nothing and
    is not a failure of the network. How many, and how many were not ok: the staged rollout's
    health signal (network)."""
    results = [e for e in recent_probes(path, until - since + 1.0)
               if by_end_host(e) and since <= e["t"] <= until and e["prefix"] in announced]
    not_ok = [e for e in results if e["result"] != "ok"]
    by: dict[str, int] = {}
    for e in not_ok:
        by[e["result"]] = by.get(e["result"], 0) + 1
    return {"total": len(results), "not_ok": len(not_ok), "by_result": by,
            "basis": "the end hosts' probes of every product in the window, on prefixes some PoP announces"}


def probe_summary(path: Path, window: float = 1.5) -> dict[str, dict[str, int]]:
    """Results of the end hosts' probes of the last ``window`` seconds, per host."""
    out: dict[str, dict[str, int]] = {}
    for e in recent_probes(path, window):
        if not by_end_host(e):
            continue  # the PoPs' own egress attempts, not an end host's view
        per = out.setdefault(e["host"], {})
        per[e["result"]] = per.get(e["result"], 0) + 1
    return out
def start(running: RunningLab, *, seed: int = 20260220, probes: int = 20, probe_prefixes: list[str] = (),
          machines: int = 4, edge_seed: int = 1, timeout: float = 60.0) -> dict[str, Any]:
    """Start the controller of a running lab and wait until its API answers."""
    lab, state = running.name, running.state
    log = state.dir / "controller.out"
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "controller.service", "--lab", lab, "--seed", str(seed), "--probes", str(probes),
             "--edge-machines", str(machines), "--edge-seed", str(edge_seed),
             *[a for p in probe_prefixes for a in ("--probe-prefix", p)]],
            stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
            env=mark_env(lab), start_new_session=True,
        )
    state.add_daemon("controller", "api", proc.pid)

    def answering() -> tuple[bool, str]:
        if not alive(proc.pid):
            raise BgplabError(f"the controller of lab '{lab}' exited at start: {log.read_text()[-800:]}")
        try:
            info = json.loads(info_path(state).read_text())
            r = httpx.get(f"{info['url']}/v1/health", timeout=2.0)
            return r.status_code == 200, f"health answered {r.status_code}"
        except (OSError, ValueError, KeyError, httpx.HTTPError) as e:
            return False, str(e)

    wait_until(answering, timeout=timeout, what=f"the controller of lab '{lab}' to answer", interval=0.05)
    return json.loads(info_path(state).read_text())


def main() -> None:
    ap = argparse.ArgumentParser(description="the controller of one lab (started by `bgplab up`)")
    ap.add_argument("--lab", required=True)
    ap.add_argument("--seed", type=int, default=20260220)
    ap.add_argument("--probes", type=int, default=20, help="BYOIP service addresses each end host probes")
    ap.add_argument("--probe-prefix", action="append", default=[], help="a prefix to probe as well (repeatable)")
    ap.add_argument("--edge-machines", type=int, default=4, help="machines per PoP")
    ap.add_argument("--edge-seed", type=int, default=1, help="the order binding changes reach the machines in")
    args = ap.parse_args()
    serve(args.lab, args.seed, args.probes, args.probe_prefix, args.edge_machines, args.edge_seed)


if __name__ == "__main__":
    main()

"""GoBGP as a lab router (lab.routers.base.Router): one ``gobgpd`` per node, configured from
one rendered JSON file, its gRPC API on a unix socket in the node's directory, asked through
the ``gobgp`` command (GoBGP's own client: its API is gRPC, which the project does not speak).

GoBGP is RIB-only here. Its one way to the kernel is FRR's zebra (GoBGP's docs/sources/
zebra.md), and GoBGP 3.10's zebra client panics on FRR 8.4's interface messages (zapi 6,
with software-name frr8.1 and frr8.2 alike: tried here), so a GoBGP node installs nothing, and
the topology's check says so for each one.

Its semantics where drills are sensitive, read in GoBGP's source (pkg/server, pkg/config/oc):
``minimum-advertisement-interval`` is stored and handed over the API, but nothing schedules
by it, so there is no MRAI; after a reset a neighbour waits ``idle-hold-time-after-reset``
(30 s by default) before it connects again: set here to the topology's connect-retry.
"""

from __future__ import annotations

import grp
import os
import pwd
import json
import re
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lab.daemons.base import Toolset
from lab.errors import ConfigError, DaemonError
from lab.routers.ask import command_json
from lab.plan import NodePlan
from lab.routers.base import STANDARD_MESSAGE, Install, Run
from lab.routers.policy import EXPORTED_UP, export_kind, policy
from lab.topology import Relation

GOBGP_DIR = Path("/usr/bin")
# gobgpd has no user of its own (Debian's package makes none, and gobgpd drops no privileges):
# it runs as the lab's router user, FRR's, with only the capability to bind BGP's port.
RUN_AS = "frr"


@dataclass(frozen=True)
class GobgpPaths:
    dir: Path

    @property
    def conf(self) -> Path:
        return self.dir / "gobgpd.json"

    @property
    def api(self) -> Path:
        return self.dir / "gobgp.sock"

    @property
    def networks(self) -> Path:
        """What the node originates: not gobgpd's (its config has no networks), added through
        its API by the daemon's ready()."""
        return self.dir / "networks.json"


def config(node: NodePlan) -> dict[str, Any]:
    """gobgpd's configuration (its JSON form of the TOML in GoBGP's docs)."""
    pol = policy(node)
    neighbors = []
    for s in node.sessions:
        t = s.timers
        neighbors.append({
            "config": {"neighbor-address": str(s.peer_v4), "peer-as": s.peer_asn,
                       "description": f"{s.peer} via {s.ifname}"},
            "timers": {"config": {"connect-retry": t.connect_retry, "hold-time": t.hold,
                                  "keepalive-interval": t.keepalive, "idle-hold-time-after-reset": t.connect_retry,
                                  # stored and never acted on by gobgpd (module docstring)
                                  "minimum-advertisement-interval": t.mrai}},
            "transport": {"config": {"local-address": str(s.local_v4),
                                     "passive-mode": s.peer_connects}},
            "afi-safis": [{"config": {"afi-safi-name": f}} for f in ("ipv4-unicast", "ipv6-unicast")],
        })
    by_export: dict[str, list[str]] = {"none": [], "up": [], "all": []}
    for s in node.sessions:
        by_export[export_kind(node, s)].append(str(s.peer_v4))
    neighbor_sets = [{"neighbor-set-name": f"to-{k}", "neighbor-info-list": v} for k, v in by_export.items() if v]
    statements: list[dict[str, Any]] = []
    imports: list[dict[str, Any]] = []
    large_sets, as_sets = [], []
    if pol:
        for rel in pol.imports:
            peers = [str(s.peer_v4) for s in node.sessions if s.relation is Relation(rel.name)]
            neighbor_sets.append({"neighbor-set-name": f"from-{rel.name}", "neighbor-info-list": peers})
            imports.append({
                "name": f"from-{rel.name}",
                "conditions": {"match-neighbor-set": {"neighbor-set": f"from-{rel.name}"}},
                "actions": {"route-disposition": "accept-route",
                            "bgp-actions": {"set-local-pref": rel.local_pref,
                                            "set-large-community": {"options": "replace",
                                                                    "set-large-community-method": {
                                                                        "communities-list": [f"{node.asn}:1:{rel.code}"]}}}},
            })
        large_sets.append({"large-community-set-name": "export-all",
                           "large-community-list": [f"^{node.asn}:1:{c}$" for c in EXPORTED_UP]})
    # IPv6 routes on an IPv4 session: gobgpd gives them the session's IPv4 address as next hop,
    # which BIRD refuses ("mismatched address family") and FRR installs as nothing reachable;
    # each session's IPv6 routes leave with its own link's IPv6 address (a statement that only
    # sets, so the ones below still decide)
    for i, s in enumerate(node.sessions):
        if export_kind(node, s) == "none":
            continue
        neighbor_sets.append({"neighbor-set-name": f"session-{i}", "neighbor-info-list": [str(s.peer_v4)]})
        statements.append({"name": f"next-hop-v6-{i}",
                           "conditions": {"match-neighbor-set": {"neighbor-set": f"session-{i}"},
                                          "bgp-conditions": {"afi-safi-in-list": ["ipv6-unicast"]}},
                           "actions": {"bgp-actions": {"set-next-hop": str(s.local_v6)}}})
    if by_export["none"]:
        statements.append({"name": "to-none", "conditions": {"match-neighbor-set": {"neighbor-set": "to-none"}},
                           "actions": {"route-disposition": "reject-route"}})
    if by_export["up"]:
        statements += [
            {"name": "up-customers-siblings",
             "conditions": {"match-neighbor-set": {"neighbor-set": "to-up"},
                            "bgp-conditions": {"match-large-community-set": {"large-community-set": "export-all"}}},
             "actions": {"route-disposition": "accept-route"}},
            # what this AS originates: GoBGP's own route type (an as-path-set "^$" matched nothing)
            {"name": "up-own", "conditions": {"match-neighbor-set": {"neighbor-set": "to-up"},
                                              "bgp-conditions": {"route-type": "local"}},
             "actions": {"route-disposition": "accept-route"}},
            {"name": "up-nothing-else", "conditions": {"match-neighbor-set": {"neighbor-set": "to-up"}},
             "actions": {"route-disposition": "reject-route"}},
        ]
    apply: dict[str, Any] = {"default-import-policy": "accept-route", "default-export-policy": "accept-route"}
    definitions = []
    if imports:
        definitions.append({"name": "bgplab-import", "statements": imports})
        apply["import-policy-list"] = ["bgplab-import"]
    if statements:
        definitions.append({"name": "bgplab-export", "statements": statements})
        apply["export-policy-list"] = ["bgplab-export"]
    return {
        "global": {"config": {"as": node.asn, "router-id": str(node.router_id)},
                   "apply-policy": {"config": apply}},
        "neighbors": neighbors,
        "defined-sets": {"neighbor-sets": neighbor_sets,
                         "bgp-defined-sets": {"large-community-sets": large_sets, "as-path-sets": as_sets}},
        "policy-definitions": definitions,
    }


def render(node: NodePlan) -> str:
    return json.dumps(config(node), indent=2) + "\n"


def files(node: NodePlan) -> dict[str, str]:
    """The node's files: gobgpd's config, and what it originates (added through its API)."""
    return {"gobgpd.json": render(node), "networks.json": json.dumps([str(n) for n in node.networks])}


def gobgpd_argv(p: GobgpPaths, tools_dir: Path, user: int | str, group: int | str) -> list[str]:
    """gobgpd as ``user``, with only the capability to bind BGP's port (it drops no privileges)."""
    return ["setpriv", f"--reuid={user}", f"--regid={group}", "--clear-groups",
            "--inh-caps=+net_bind_service", "--ambient-caps=+net_bind_service",
            str(tools_dir / "gobgpd"), "-t", "json", "-f", str(p.conf),
            "--api-hosts", f"unix://{p.api}", "--pprof-disable", "-p"]


def gobgp(paths: GobgpPaths, *args: str, timeout: float = 15.0) -> Any:
    """``gobgp -j`` on the node's API socket: its JSON answer."""
    argv = [str(GOBGP_DIR / "gobgp"), "--target", f"unix://{paths.api}", "-j", *args]
    return command_json(argv, f"{paths.api}: gobgp {' '.join(args)}", timeout=timeout)


_FAMILY = {(1, 1): "ipv4", (2, 1): "ipv6"}


def neighbors(paths: GobgpPaths) -> list[dict[str, Any]]:
    return gobgp(paths, "neighbor") or []


def _family(af: dict[str, Any]) -> str | None:
    fam = af.get("config", {}).get("family", {})
    return _FAMILY.get((fam.get("afi"), fam.get("safi")))


class GobgpDaemon:
    name = "gobgpd"
    after: tuple[str, ...] = ()
    check_timeout = 30.0

    def files(self, node: NodePlan) -> dict[str, str]:
        """What it writes in the node's directory: a router's (a speaker GoBGP feeds has its own: lab.feed)."""
        return files(node)

    def write(self, lab: str, node: NodePlan, node_dir: Path, tools: Toolset) -> None:
        paths = GobgpPaths(node_dir)
        node_dir.mkdir(parents=True, exist_ok=True)
        for name, text in self.files(node).items():
            (node_dir / name).write_text(text)
        paths.api.unlink(missing_ok=True)  # gobgpd will not listen on a socket left behind
        os.chown(node_dir, *tools.router_owners["gobgp"])

    def check_argv(self, node: NodePlan, node_dir: Path, tools: Toolset) -> list[str]:
        return [str(tools.router_dirs["gobgp"] / "gobgpd"), "-d", "-t", "json", "-f", str(GobgpPaths(node_dir).conf)]

    def check_result(self, node: NodePlan, node_dir: Path, rc: int | None, out: str, err: str) -> None:
        text = out + err
        bad = re.findall(r'level=(?:fatal|error)[^\n]*', text)
        if rc != 0 or bad:
            detail = "; ".join(bad) or text.strip()[-1000:] or f"exit status {rc}"
            raise ConfigError(f"node {node.name}: gobgpd rejected {GobgpPaths(node_dir).conf}: {detail}")

    def argv(self, node: NodePlan, node_dir: Path, tools: Toolset) -> list[str]:
        return gobgpd_argv(GobgpPaths(node_dir), tools.router_dirs["gobgp"], *tools.router_owners["gobgp"])

    def environment(self) -> dict[str, str] | None:
        return None

    def ready(self, node_dir: Path) -> bool:
        """Its API answers, and what the node originates (an eyeball's subnets) is in its RIB:
        gobgpd's configuration has no networks, they go in through its API (as FRR's `network`
        lines, announced whether or not the kernel has them). Adding one twice changes nothing."""
        paths = GobgpPaths(node_dir)
        if not paths.api.exists():
            return False
        for net in json.loads(paths.networks.read_text()):
            family = "ipv6" if ":" in net else "ipv4"
            gobgp(paths, "global", "rib", "add", net, "-a", family)
        return True


GOBGPD = GobgpDaemon()


def host_owner() -> tuple[int, int]:
    try:
        return pwd.getpwnam(RUN_AS).pw_uid, grp.getgrnam(RUN_AS).gr_gid
    except KeyError:
        raise DaemonError(f"there is no '{RUN_AS}' user on this host; run `make lab-up` to install FRR and GoBGP") from None


class GobgpRouter:
    name = "gobgp"
    label = "GoBGP"
    daemons = (GOBGPD,)
    log_files = ("gobgpd.out",)
    kernel_proto = None  # RIB-only: see the module's docstring
    mrai = False  # minimum-advertisement-interval is stored and never acted on (module docstring)
    records_updates = False  # its MRT dump is not read here (the collector stays FRR)
    # a `gobgp -j neighbor` process costs ~14 ms of CPU: at 10 Hz the controller and its
    # children took 24% of a core (measured with a GoBGP observer); at 2 Hz, a fifth of that
    poll_interval = 0.5
    install = Install(("gobgpd",), GOBGP_DIR, ("frr", 179, 179), services=("gobgpd",))

    def host_tools(self) -> tuple[Path, tuple[int, int]]:
        if not (GOBGP_DIR / "gobgpd").exists():
            raise DaemonError(f"GoBGP is not at {GOBGP_DIR / 'gobgpd'}; run `make lab-up` to install it (gobgpd)")
        return GOBGP_DIR, host_owner()

    def version(self, run: Run, tools: Toolset) -> str:
        m = re.search(r"version\s+(\S+)", run([str(tools.router_dirs[self.name] / "gobgpd"), "--version"]))
        return m.group(1) if m else "unknown"

    def render(self, lab: str, node: NodePlan, node_dir: Path) -> dict[str, str]:
        return files(node)

    def start_script(self, node: NodePlan, node_dir: Path, tools_dir: Path, owner: str) -> list[str]:
        p, q = GobgpPaths(node_dir), shlex.quote
        user, group = owner.split(":")
        return [f"chown -R {owner} .", f"rm -f {q(str(p.api))}",
                " ".join(map(q, gobgpd_argv(p, tools_dir, user, group))) + " > gobgpd.out 2>&1 &",
                # what the node originates goes in through the API once it answers
                f"for _ in $(seq 100); do [ -S {q(str(p.api))} ] && break; sleep 0.1; done",
                *[f"{q(str(tools_dir / 'gobgp'))} --target unix://{q(str(p.api))} global rib add {n} -a "
                  f"{'ipv6' if n.version == 6 else 'ipv4'}" for n in node.networks]]

    def sessions(self, node_dir: Path) -> dict[str, dict[str, Any]]:
        out = {}
        for n in neighbors(GobgpPaths(node_dir)):
            conf, state = n.get("conf", {}), n.get("state", {})
            received, sent = {"ipv4": 0, "ipv6": 0}, {"ipv4": 0, "ipv6": 0}
            for af in n.get("afi_safis", []):
                fam = _family(af)
                if fam:
                    received[fam] = int(af.get("state", {}).get("accepted", 0) or 0)
                    sent[fam] = int(af.get("state", {}).get("advertised", 0) or 0)
            st = state.get("session_state", "?")
            out[conf.get("neighbor_address", "?")] = {
                "state": "Established" if st in (6, "ESTABLISHED", "established") else str(st),
                "received": received, "sent": sent, "description": conf.get("description", "")}
        return out

    def received(self, node_dir: Path) -> dict[str, int]:
        out = {}
        for family in ("ipv4", "ipv6"):
            summary = gobgp(GobgpPaths(node_dir), "global", "rib", "summary", "-a", family)
            out[family] = int((summary or {}).get("num_destination", 0))
        return out

    def rib(self, node_dir: Path, family: str = "ipv4") -> dict[str, list[dict[str, Any]]]:
        table = gobgp(GobgpPaths(node_dir), "global", "rib", "-a", family) or {}
        out = {}
        for prefix, paths in table.items():
            rows = []
            for p in paths:
                as_path: list[int] = []
                for attr in p.get("attrs", []):
                    if attr.get("type") == 2:  # AS_PATH
                        for seg in attr.get("as_paths", []):
                            as_path += [int(a) for a in seg.get("asns", [])]
                rows.append({"as_path": as_path, "best": bool(p.get("best"))})
            out[prefix] = rows
        return out

    def updates_sent(self, node_dir: Path) -> int:
        return sum(int(n.get("state", {}).get("messages", {}).get("sent", {}).get("update", 0) or 0)
                   for n in neighbors(GobgpPaths(node_dir)))

    def message_sizes(self, node_dir: Path) -> dict[str, int]:
        # GoBGP 3.10 has no RFC 8654 (no extended-message capability in its config or its
        # capability list): every session it is on carries 4,096-byte UPDATEs at most
        return {n.get("conf", {}).get("neighbor_address", "?"): STANDARD_MESSAGE for n in neighbors(GobgpPaths(node_dir))}

    def clear_session(self, node_dir: Path, address: str) -> None:
        gobgp(GobgpPaths(node_dir), "neighbor", address, "reset")

    def feed(self, node_dir: Path) -> Path | None:
        return None

    def shell(self, node_dir: Path, commands: list[str]) -> list[str]:
        return ["gobgp", "--target", f"unix://{GobgpPaths(node_dir).api}",
                *[w for c in commands for w in shlex.split(c)]]

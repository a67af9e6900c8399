"""The `bgplab` command: parse arguments, call the library, print. No logic a test cannot reach."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import sys
import time
from dataclasses import asdict
from pathlib import Path

import click

from controller import service
from controller.api import ROLES
from controller.changes import STATUSES
from controller.client import ApiClient
from controller.inventory import SERVICES, prefix_id
from lab import lifecycle
from lab.errors import BgplabError, LabNotFound, UsageError
from lab.runtime import RUNTIMES
from lab.runtime.netns import net_argv
from lab.procs import mark_env
from lab.running import RunningLab

DEFAULT_TOPOLOGY = "topologies/byoip-incident.yaml"


class BgplabGroup(click.Group):
    """The command group: a BgplabError from any command is printed and becomes its exit code."""

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except BgplabError as e:
            click.echo(f"error: {e}", err=True)
            for note in getattr(e, "__notes__", []):
                click.echo(f"  {note}", err=True)
            ctx.exit(e.exit_code)


def _open(lab: str | None) -> RunningLab:
    """The named lab (or the only one that is up), opened once for the command."""
    return RunningLab.open(_pick_lab(lab))


def _pick_lab(lab: str | None) -> str:
    if lab:
        return lab
    running = lifecycle.labs()
    if len(running) == 1:
        return running[0]
    if not running:
        raise LabNotFound("no lab is up (`bgplab up` brings one up)")
    raise UsageError(f"several labs are up ({', '.join(running)}): name one with --lab")


@click.group(cls=BgplabGroup, context_settings={"help_option_names": ["-h", "--help"]})
def cli() -> None:
    """bgplab: a live BGP lab for outage drills."""


@cli.command()
@click.argument("topology", default=DEFAULT_TOPOLOGY, required=False)
@click.option("--name", help="lab name (default: the topology's name)")
@click.option("--runtime", type=click.Choice(RUNTIMES), default="netns", show_default=True)
@click.option("--json", "as_json", is_flag=True, help="print the timings as JSON")
@click.option("--status", "show_status", is_flag=True, help="print the status table once it is up")
@click.option("--controller/--no-controller", default=True, show_default=True,
              help="start the lab's Addressing API and reconciler")
@click.option("--withdrawn", is_flag=True, help="start with every prefix withdrawn (the API advertises them)")
@click.option("--seed", type=int, default=20260220, show_default=True, help="inventory seed")
def up(topology: str, name: str | None, runtime: str, as_json: bool, show_status: bool,
       controller: bool, withdrawn: bool, seed: int) -> None:
    """Bring a lab up from TOPOLOGY and wait until it has converged."""
    progress = lambda s: click.echo(f"... {s}", err=True)  # noqa: E731
    t0 = time.monotonic()
    if withdrawn and not controller:
        raise UsageError("--withdrawn needs the controller: nothing else would ever announce")
    report = lifecycle.up(topology, name, runtime=runtime, progress=progress, announce=not withdrawn)
    if controller:
        progress("start the controller")
        try:
            info = service.start(report.running(), seed=seed)
        except BaseException as e:
            # all or nothing: a lab whose controller did not start is removed
            lifecycle.down(report.lab)
            raise BgplabError(f"lab '{report.lab}' did not come up: the controller failed: {e}; the lab was removed") from e
        report.timings["controller"] = round(time.monotonic() - t0, 3)
    if as_json:
        click.echo(json.dumps({"lab": report.lab, "frr_version": report.frr_version, "timings": report.timings,
                               "api": info["url"] if controller else None}))
        return
    counts = report.plan.counts()
    t = report.timings
    tables = "".join(f", Internet table '{n}' ({p.ipv4:,} IPv4 + {p.ipv6:,} IPv6{', not announced yet' if withdrawn else ''})"
                     for n, p in report.plan.tables.items())
    click.echo(
        f"lab '{report.lab}' is up: {len(report.plan.nodes)} nodes, {counts['prefixes']} prefixes "
        f"({counts['byoip']} BYOIP){tables}, FRR {report.frr_version}"
    )
    click.echo(
        f"  network {t['network']:.2f} s, sessions {t['sessions_established']:.2f} s, "
        + (f"observer full {t['observer_full']:.2f} s, kernel tables {t['kernel_converged']:.2f} s" if not withdrawn
           else "nothing announced yet")
    )
    if controller:
        click.echo(f"  Addressing API: {info['url']}  (OpenAPI: {info['url']}/docs)")
    if show_status:
        click.echo()
        _print_status(report.running())


@cli.command()
@click.argument("lab", required=False)
@click.option("--all", "all_", is_flag=True, help="every lab on this machine")
def down(lab: str | None, all_: bool) -> None:
    """Remove everything a lab made. Works without its topology file and after a crash."""
    if all_ and lab:
        raise UsageError("give a lab name or --all, not both")
    targets = lifecycle.labs() if all_ else [_pick_lab(lab)] if not lab else [lab]
    failed = []
    for name in targets:
        try:
            r = lifecycle.down(name)
        except BgplabError as e:
            failed.append(e)
            continue
        msg = f"lab '{name}' removed in {r.seconds:.2f} s" if r.existed else f"lab '{name}' was not up: nothing to do"
        click.echo(msg)
    if not targets:
        click.echo("no lab is up: nothing to do")
    if failed:
        raise failed[0] if len(failed) == 1 else BgplabError("\n".join(str(e) for e in failed))


def _fmt(counts: dict[str, int] | None) -> str:
    if counts is None:
        return "-"
    return "/".join(str(counts.get(f, 0)) for f in ("ipv4", "ipv6"))


@cli.command()
@click.argument("lab", required=False)
@click.option("--json", "as_json", is_flag=True)
def status(lab: str | None, as_json: bool) -> None:
    """Nodes, daemons, sessions and prefix counts of a lab."""
    running = _open(lab)
    if as_json:
        click.echo(json.dumps([asdict(n) for n in running.status()], indent=2))
        return
    _print_status(running)


def _print_status(running: RunningLab) -> None:
    nodes = running.status()
    name, runtime = running.name, running.runtime.name
    kind = "containers" if runtime == "docker" else "namespaces"
    click.echo(f"lab '{name}' on the {runtime} runtime ({kind} bgplab-{name}-<node>)   (prefix counts are ipv4/ipv6)")
    click.echo(f"{'NODE':<11} {'KIND':<7} {'ROLE':<10} {'AS':<7} {'DAEMONS':<22} {'SESSIONS':<9} {'BGP TABLE':<10} {'KERNEL':<10}")
    for n in nodes:
        daemons = " ".join(f"{d}{'' if ok else '(dead)'}" for d, ok in n.daemons.items()) or "-"
        est = sum(s["state"] == "Established" for s in n.sessions)
        sess = f"{est}/{len(n.sessions)}" if n.sessions else "-"
        click.echo(
            f"{n.name:<11} {n.kind:<7} {n.role:<10} {n.asn or '-':<7} {daemons:<22} {sess:<9} {_fmt(n.received):<10} {_fmt(n.installed):<10}"
        )
    click.echo("\nSESSIONS (as the router sees them; received/sent are ipv4/ipv6 prefixes; max UPDATE size as negotiated)")
    for n in nodes:
        for s in n.sessions:
            click.echo(
                f"  {n.name:<10} -> {s['peer']:<10} {s.get('address', ''):<14} {s['state']:<12} "
                f"received {_fmt(s.get('received')):<10} sent {_fmt(s.get('sent')):<10} "
                f"max UPDATE {s.get('message_size') or '?'}"
            )
    bad = [f"{n.name}->{s['peer']}" for n in nodes for s in n.sessions if s["state"] != "Established"]
    dead = [f"{n.name}/{d}" for n in nodes for d, ok in n.daemons.items() if not ok]
    if bad or dead:
        click.echo(f"\nnot healthy: {', '.join(dead + bad)}", err=True)
        sys.exit(1)


@cli.command(name="exec", context_settings={"ignore_unknown_options": True})
@click.option("--lab", help="lab name (default: the only lab that is up)")
@click.argument("node")
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
def exec_(lab: str | None, node: str, command: tuple[str, ...]) -> None:
    """Run COMMAND inside NODE (its namespace, or its container): bgplab exec t1 -- ip route."""
    running = _open(lab)
    running.node(node)
    argv = running.runtime.exec_argv(running.name, node, list(command), tty=sys.stdin.isatty() and sys.stdout.isatty())
    os.execvpe(argv[0], argv, mark_env(running.name))


@cli.command()
@click.option("--lab", help="lab name (default: the only lab that is up)")
@click.argument("node")
@click.option("-c", "commands", multiple=True, help="a vtysh command (repeatable); none: interactive")
def vtysh(lab: str | None, node: str, commands: tuple[str, ...]) -> None:
    """FRR's shell on router NODE."""
    running = _open(lab)
    name, plan = running.name, running.plan
    if node not in plan.nodes or plan.nodes[node].kind.value != "frr":
        routers = ", ".join(n.name for n in plan.routers())
        raise UsageError(f"lab '{name}' has no router '{node}' (routers: {routers})")
    argv = ["vtysh", "--vty_socket", str(running.node_dir(node))]
    for c in commands:
        argv += ["-c", c]
    # Inside the node: the container's own vtysh on the docker runtime (the socket directory
    # is mounted at the same path).
    argv = running.runtime.exec_argv(name, node, argv, tty=sys.stdin.isatty() and not commands)
    os.execvpe(argv[0], argv, mark_env(name))


# -- the Addressing API, from the command line --------------------------------------


def _api(lab: str | None) -> ApiClient:
    return ApiClient(_pick_lab(lab))


def _selector_options(f):
    for opt in reversed([
        click.option("--lab", help="lab name (default: the only lab that is up)"),
        click.option("--account", help="only this account's prefixes (acct-0001, acct-operator, ...)"),
        click.option("--family", type=click.Choice(["ipv4", "ipv6"]), help="only this address family"),
        click.option("--byoip/--owned", default=None, help="only BYOIP prefixes, or only the operator's own"),
        click.option("--count", type=click.IntRange(min=1), help="at most this many, in inventory order"),
    ]):
        f = opt(f)
    return f


@cli.group()
def prefixes() -> None:
    """List, advertise, withdraw and delete prefixes through the lab's Addressing API."""


@prefixes.command(name="list")
@_selector_options
@click.option("--advertised/--withdrawn", default=None)
@click.option("--pending-delete", is_flag=True, help="only prefixes pending deletion")
@click.option("--json", "as_json", is_flag=True)
def prefixes_list(lab, account, family, byoip, count, advertised, pending_delete, as_json) -> None:
    """Prefixes in the inventory, with their state."""
    with _api(lab) as api:
        rows = api.prefixes(account_id=account, family=family, byoip=byoip, advertised=advertised,
                            pending_delete=True if pending_delete else None, limit=count)
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    click.echo(f"{'PREFIX':<22} {'ACCOUNT':<14} {'BYOIP':<6} {'ADVERTISED':<11} {'PENDING-DELETE':<14}")
    for p in rows:
        click.echo(f"{p['cidr']:<22} {p['account_id']:<14} {str(p['byoip']).lower():<6} "
                   f"{str(p['advertised']).lower():<11} {str(p['pending_delete']).lower():<14}")
    click.echo(f"({len(rows)} prefixes)", err=True)


def _set(advertised: bool, lab, account, family, byoip, count, cidrs) -> None:
    if cidrs and (account or family or byoip is not None):
        raise UsageError("name prefixes or give selectors (--account, --family, --byoip/--owned), not both")
    ids = [prefix_id(c) for c in cidrs] or None
    with _api(lab) as api:
        body = api.set_advertised(advertised, ids=ids, account_id=account, family=family, byoip=byoip, count=count)
    r, rec = body["result"], body.get("reconcile", {})
    verb = "advertised" if advertised else "withdrew"
    click.echo(f"{verb} {r['prefixes']} prefixes; speakers: {rec.get('announced', 0)} announced, "
               f"{rec.get('withdrawn', 0)} withdrawn in {rec.get('seconds', 0):.3f} s"
               + ("" if rec.get("ok", True) else f"; errors: {'; '.join(rec['errors'])}"))


@prefixes.command()
@_selector_options
@click.argument("cidrs", nargs=-1)
def advertise(lab, account, family, byoip, count, cidrs) -> None:
    """Advertise prefixes (named, or chosen by selectors)."""
    _set(True, lab, account, family, byoip, count, cidrs)


@prefixes.command()
@_selector_options
@click.argument("cidrs", nargs=-1)
def withdraw(lab, account, family, byoip, count, cidrs) -> None:
    """Withdraw prefixes (named, or chosen by selectors): bgplab prefixes withdraw --account acct-0007."""
    _set(False, lab, account, family, byoip, count, cidrs)


@prefixes.command()
@click.option("--lab")
@click.option("--request", "request_only", is_flag=True, help="only request deletion (pending delete)")
@click.argument("cidrs", nargs=-1, required=True)
def delete(lab, request_only, cidrs) -> None:
    """Delete prefixes (withdrawn, bindings removed), or request their deletion."""
    with _api(lab) as api:
        for c in cidrs:
            prefix = prefix_id(c)
            if request_only:
                api.call("POST", f"/v1/prefixes/{prefix}/deletion_request")
            else:
                api.call("DELETE", f"/v1/prefixes/{prefix}")
            click.echo(f"{c}: {'deletion requested' if request_only else 'deleted'}")


@cli.group()
def bindings() -> None:
    """Service bindings of a prefix (a service: cdn, spectrum, magic_transit, dedicated_egress)."""


@bindings.command(name="list")
@click.option("--lab")
@click.argument("cidr")
def bindings_list(lab, cidr) -> None:
    with _api(lab) as api:
        rows = api.call("GET", f"/v1/prefixes/{prefix_id(cidr)}/bindings")["result"]
    for b in rows:
        click.echo(f"{b['id']}  {b['service']}")
    if not rows:
        click.echo(f"{cidr} has no service bindings")


@bindings.command(name="add")
@click.option("--lab")
@click.argument("cidr")
@click.argument("service", type=click.Choice(SERVICES))
def bindings_add(lab, cidr, service) -> None:
    with _api(lab) as api:
        b = api.call("POST", f"/v1/prefixes/{prefix_id(cidr)}/bindings", json={"service": service})["result"]
    click.echo(f"{b['id']}  {b['service']}")


@bindings.command(name="delete")
@click.option("--lab")
@click.argument("cidr")
@click.argument("binding")
def bindings_delete(lab, cidr, binding) -> None:
    with _api(lab) as api:
        api.call("DELETE", f"/v1/prefixes/{prefix_id(cidr)}/bindings/{binding}")
    click.echo(f"{binding} deleted")


@cli.group()
def token() -> None:
    """API tokens: the lab's admin token is in /run/bgplab/<lab>/admin.token (0600); make others here."""


@token.command(name="create")
@click.option("--lab")
@click.option("--role", type=click.Choice(list(ROLES)), required=True)
@click.option("--account", help="the account a customer token is confined to")
@click.option("--name", help="how the audit log names it (default: the role)")
def token_create(lab, role, account, name) -> None:
    """Print a new token (shown once) for ROLE: admin, operator, task, customer (--account), read-only."""
    with _api(lab) as api:
        r = api.call("POST", "/v1/lab/tokens", json={"role": role, "name": name or role,
                                                     **({"account": account} if account else {})})["result"]
    click.echo(r["token"])


@token.command(name="list")
@click.option("--lab")
def token_list(lab) -> None:
    with _api(lab) as api:
        rows = api.call("GET", "/v1/lab/tokens")["result"]
    for t in rows:
        click.echo(f"{t['name']:<24} {t['role']:<10} {t['account'] or '-'}")


# -- the change pipeline: held changes, the breaker, guardrails, snapshots (controller.changes) --


def _diff_line(d: dict) -> str:
    return (f"withdraw {d.get('withdraw', 0)}, announce {d.get('announce', 0)}, bindings -{d.get('bindings_removed', 0)}"
            f" +{d.get('bindings_added', 0)}, {d.get('accounts', 0)} accounts, {d.get('byoip_share', 0):.2%} of BYOIP")


@cli.group()
def changes() -> None:
    """Changes through the pipeline: list, show, approve or reject held ones, reset the breaker."""


@changes.command(name="list")
@click.option("--lab")
@click.option("--status", type=click.Choice(STATUSES))
@click.option("--limit", type=click.IntRange(1, 10_000), default=50, show_default=True)
@click.option("--json", "as_json", is_flag=True)
def changes_list(lab, status, limit, as_json) -> None:
    with _api(lab) as api:
        body = api.call("GET", "/v1/changes", params={"limit": limit, **({"status": status} if status else {})})
    if as_json:
        click.echo(json.dumps(body["result"], indent=2))
        return
    for c in body["result"]:
        why = f"  [{c['guardrail']}: {c['reason']}]" if c["status"] == "held" else ""
        click.echo(f"{c['id']}  {c['status']:<8} {c['kind']:<14} {c['actor']:<22} {_diff_line(c['diff'])}{why}")
    click.echo("totals: " + ", ".join(f"{k} {v}" for k, v in sorted(body["totals"].items())), err=True)


@changes.command(name="show")
@click.option("--lab")
@click.argument("change_id")
def changes_show(lab, change_id) -> None:
    with _api(lab) as api:
        c = api.call("GET", f"/v1/changes/{change_id}")["result"]
    click.echo(json.dumps(c, indent=2))


@changes.command(name="approve")
@click.option("--lab")
@click.argument("change_id")
def changes_approve(lab, change_id) -> None:
    """Apply a held change past the guardrails."""
    with _api(lab) as api:
        r = api.call("POST", f"/v1/changes/{change_id}/approve")["result"]
    click.echo(f"{change_id} approved, applied as {r['applied_as']}: {_diff_line(r['diff'])}")


@changes.command(name="reject")
@click.option("--lab")
@click.argument("change_id")
def changes_reject(lab, change_id) -> None:
    with _api(lab) as api:
        api.call("POST", f"/v1/changes/{change_id}/reject")
    click.echo(f"{change_id} rejected")


@changes.command(name="reset-breaker")
@click.option("--lab")
def changes_reset_breaker(lab) -> None:
    """Close the withdrawal breaker: withdrawals go through again, counted afresh."""
    with _api(lab) as api:
        r = api.call("POST", "/v1/lab/breaker/reset")["result"]
    click.echo(f"breaker reset (it tripped at {r['was']['change']} on {r['was'].get('withdrawals')} withdrawals)")


@cli.command()
@click.option("--lab")
@click.option("--set", "settings", help="guardrails as JSON, e.g. '{\"breaker\": {\"max_withdrawals\": 25, "
                                         "\"window\": 600}}' (windows in seconds); '{}' switches every one off")
def guardrails(lab, settings) -> None:
    """Show the lab's guardrails, or set them."""
    with _api(lab) as api:
        if settings is not None:
            try:
                body = json.loads(settings)
            except ValueError as e:
                raise UsageError(f"--set is not JSON: {e}") from None
            r = api.call("PUT", "/v1/lab/guardrails", json=body)["result"]
        else:
            r = api.call("GET", "/v1/lab/guardrails")["result"]
    click.echo(json.dumps(r, indent=2))


@cli.group()
def snapshots() -> None:
    """Snapshots of operational state (one before every change, and labelled ones): list, diff, restore."""


@snapshots.command(name="list")
@click.option("--lab")
@click.option("--limit", type=click.IntRange(1, 10_000), default=30, show_default=True)
def snapshots_list(lab, limit) -> None:
    with _api(lab) as api:
        rows = api.call("GET", "/v1/snapshots", params={"limit": limit})["result"]
    for s in rows:
        what = f"label {s['label']!r}" if s["label"] else f"before {s['before_change']} ({s['change_kind']})"
        click.echo(f"{s['id']}  {time.strftime('%H:%M:%S', time.gmtime(s['at']))}  {s['by']:<22} {what}")


@snapshots.command(name="take")
@click.option("--lab")
@click.argument("label")
def snapshots_take(lab, label) -> None:
    with _api(lab) as api:
        r = api.call("POST", "/v1/snapshots", json={"label": label})["result"]
    click.echo(f"{r['id']}  {label}: announced {r['announced']}, bindings {r['bindings']}")


@snapshots.command(name="diff")
@click.option("--lab")
@click.argument("snapshot_id")
def snapshots_diff(lab, snapshot_id) -> None:
    """What restoring the snapshot would change now."""
    with _api(lab) as api:
        d = api.call("GET", f"/v1/snapshots/{snapshot_id}/diff")["result"]
    click.echo(f"{snapshot_id}: {d['prefixes']} prefixes differ: announce {d['announce']}, withdraw {d['withdraw']}, "
               f"bindings back {d['bindings_back']}, bindings gone {d['bindings_gone']}")
    for x in d["first"]:
        click.echo(f"  {x['prefix']:<22} advertised {str(x['advertised']).lower():<5} services {','.join(x['services']) or '-'}")


@snapshots.command(name="restore")
@click.option("--lab")
@click.argument("snapshot_id")
def snapshots_restore(lab, snapshot_id) -> None:
    """Put operational state back as the snapshot had it, in one change."""
    t0 = time.monotonic()
    with _api(lab) as api:
        r = api.call("POST", f"/v1/snapshots/{snapshot_id}/restore")
    res, rec = r["result"], r.get("reconcile", {})
    click.echo(f"restored {snapshot_id} as {res['change']}: {_diff_line(res['diff'])}; speakers: "
               f"{rec.get('announced', 0)} announced, {rec.get('withdrawn', 0)} withdrawn "
               f"({time.monotonic() - t0:.2f} s through the API)")


@cli.command()
@click.option("--lab")
@click.option("--interval", type=float, default=0.5, show_default=True)
@click.option("--once", is_flag=True, help="print one frame and exit")
def watch(lab, interval, once) -> None:
    """Live prefix counts per router (kernel), at the observer (BGP), and probe results."""
    try:
        with _api(lab) as api:
            while True:
                r = api.call("GET", "/v1/lab/observe")["result"]
                frame = _watch_frame(r)
                if once:
                    click.echo(frame)
                    return
                click.clear()
                click.echo(frame)
                time.sleep(interval)
    except KeyboardInterrupt:
        pass


def _watch_frame(r: dict) -> str:
    sample = r.get("sample") or {}
    lines = [time.strftime("%H:%M:%S", time.localtime(sample.get("t", time.time()))) + "  (ipv4/ipv6 lab prefixes)"]
    lines.append(f"{'ROUTER':<12} {'KERNEL':<12}")
    for router, c in sorted(sample.get("kernel", {}).items()):
        lines.append(f"{router:<12} {_fmt(c):<12}")
    for name, c in sorted(sample.get("observer_received", {}).items()):
        lines.append(f"observer {name}, received from the edge: {_fmt(c) if 'error' not in c else c['error']}")
    probes = r.get("probes", {})
    if probes:
        lines.append("")
        lines.append("PROBES (last 1.5 s)")
        for host, results in sorted(probes.items()):
            total = sum(results.values())
            ok = results.get("ok", 0)
            detail = ", ".join(f"{k} {v}" for k, v in sorted(results.items()))
            lines.append(f"{host:<12} {100 * ok / total:5.1f}% ok   {detail}")
    return "\n".join(lines)


@cli.command()
@click.option("--lab")
@click.argument("prefix")
def timeline(lab, prefix) -> None:
    """What the collector heard about PREFIX: every announce (with AS path) and withdraw, to the microsecond."""
    from controller.observe import mrt

    running = _open(lab)
    collectors = [n for n in running.plan.routers() if n.role.value == "collector"]
    if not collectors:
        raise UsageError(f"lab '{running.name}' has no collector")
    peers = {str(s.peer_v4): s.peer for s in collectors[0].sessions}
    events = mrt.events(running.node_dir(collectors[0].name) / "updates.mrt", prefix)
    for e in events:
        when = time.strftime("%H:%M:%S", time.localtime(e.t)) + f".{int(e.t % 1 * 1e6):06d}"
        path = " ".join(map(str, e.as_path)) if e.as_path else ""
        click.echo(f"{when}  from {peers.get(e.peer_ip, e.peer_ip):<8} {e.kind:<9} {path}")
    if not events:
        click.echo(f"the collector heard nothing about {prefix}")


@cli.group()
def topology() -> None:
    """Topology files: generate an Internet-like one."""


@topology.command(name="generate")
@click.option("--tier1", default=4, show_default=True, help="tier-1 networks (a clique of peers)")
@click.option("--tier2", default=12, show_default=True, help="tier-2 networks (customers of 2-3 tier-1s)")
@click.option("--stubs", default=28, show_default=True, help="stub and eyeball networks (customers of 2 tier-2s)")
@click.option("--pops", default=4, show_default=True, help="the edge's PoPs, each an ExaBGP speaker")
@click.option("--hosts", default=4, show_default=True, help="eyeball networks with an end host")
@click.option("--vantage-points", default=8, show_default=True, help="routers feeding the collector")
@click.option("--tier2-peering", default=0.3, show_default=True, help="chance that two tier-2s peer")
@click.option("--edge-peers", default=4, show_default=True, help="networks each PoP peers with")
@click.option("--mrai", default=30, show_default=True, help="advertisement interval of every session, seconds")
@click.option("--keepalive", default=30, show_default=True)
@click.option("--hold", default=90, show_default=True)
@click.option("--seed", default=1, show_default=True)
@click.option("--name", default="internet", show_default=True, help="the topology's (and default lab) name")
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="write here (default: standard output)")
def topology_generate(tier1, tier2, stubs, pops, hosts, vantage_points, tier2_peering, edge_peers, mrai, keepalive,
                      hold, seed, name, output) -> None:
    """Generate an Internet-like topology: tiers, business relationships, the edge's PoPs,
    the observer and a route collector. The same options give the same file."""
    from lab import generate
    from lab.topology import parse_topology

    import yaml

    sizes = generate.Sizes(tier1=tier1, tier2=tier2, stubs=stubs, pops=pops, hosts=hosts, vantage_points=vantage_points,
                           tier2_peering=tier2_peering, edge_peers=edge_peers, seed=seed, mrai=mrai,
                           keepalive=keepalive, hold=hold)
    defaults = generate.Sizes()
    args = " ".join(f"--{k.replace('_', '-')} {v}" for k, v in asdict(sizes).items() if getattr(defaults, k) != v)
    args = " ".join(filter(None, [args, f"--name {name}" if name != "internet" else ""]))
    text = generate.render(sizes, name, args)
    parse_topology(yaml.safe_load(text), output or "<generated>")  # what it writes validates like any file
    if output:
        Path(output).write_text(text)
        click.echo(f"wrote {output}: {sizes.ases} ASes", err=True)
    else:
        click.echo(text, nl=False)


@cli.group()
def experiment() -> None:
    """Experiments that check the lab against theory."""


def _ints(text: str) -> list[int]:
    try:
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise click.BadParameter(f"{text!r}: a comma-separated list of integers, such as 3,4,5") from None


@experiment.command(name="clique")
@click.option("--n", "ns", default="3,4,5,6", show_default=True, help="clique sizes, comma-separated")
@click.option("--mrai", "mrais", default="0,5,30", show_default=True, help="advertisement intervals (s), comma-separated")
@click.option("--runs", default=3, show_default=True, type=click.IntRange(1, 20), help="withdrawals per case")
@click.option("--out", default="runs/clique", show_default=True, type=click.Path(file_okay=False))
def experiment_clique(ns, mrais, runs, out) -> None:
    """Labovitz's clique: T_down and UPDATEs after a withdrawal in a full mesh of n FRR
    routers, for each MRAI, beside the (n-2) x MRAI staircase. Writes clique.json and clique.png."""
    from controller.experiments import clique

    sizes, intervals = _ints(ns), _ints(mrais)
    bad = [n for n in sizes if not 3 <= n <= 12] + [m for m in intervals if not 0 <= m <= 600]
    if not sizes or not intervals or bad:
        raise UsageError(f"--n takes sizes from 3 to 12 and --mrai seconds from 0 to 600 (got --n {ns} --mrai {mrais})")
    result = clique.run_grid(sizes, intervals, runs, Path(out), progress=lambda s: click.echo(s, err=True))
    click.echo(f"{'n':>3} {'MRAI':>5} {'T_down (s)':>11} {'(n-2)MRAI':>10} {'target band':>16} {'UPDATEs':>8} {'spread':>7}")
    for c in result["cases"]:
        lo, hi = c["bounds_s"]
        click.echo(f"{c['n']:>3} {c['mrai']:>5} {c['t_down_median_s']:>11.2f} {c['staircase_s']:>10} "
                   f"{f'[{lo:g}, {hi:g}]':>16} {c['updates_median']:>8g} {c['spread']:>7.1%}"
                   f"{'' if c['within_bounds'] else '  OUTSIDE'}")
    click.echo(f"wrote {Path(out) / 'clique.json'} and {Path(out) / 'clique.png'}")


def dashboard_url(api: ApiClient, lab: str) -> str:
    """The dashboard's address, with a read-only token of its own in the fragment (never sent
    to a server but the lab's, never in a log line of the API's)."""
    import secrets

    token = api.call("POST", "/v1/lab/tokens", json={"role": "read-only",
                                                     "name": f"dashboard-{secrets.token_hex(3)}"})["result"]["token"]
    return f"{api.url}/dashboard#lab={lab}&token={token}"


@cli.command()
@click.option("--lab", help="lab name (default: the only lab that is up)")
@click.option("--open", "open_", is_flag=True, help="open it in a browser when this machine has a display")
def dashboard(lab, open_) -> None:
    """Print the live dashboard's address (loopback; a read-only token in it)."""
    name = _pick_lab(lab)
    with ApiClient(name) as api:
        url = dashboard_url(api, name)
    click.echo(url)
    if open_:
        _open_in_browser(url)


def _open_in_browser(target: str) -> None:
    import webbrowser

    if not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        click.echo("no display here (DISPLAY is not set): open the address above in a browser", err=True)
        return
    if not webbrowser.open(target):
        click.echo("no browser found: open the address above in one", err=True)


@cli.group()
def drill() -> None:
    """Scripted outage drills on a live lab."""


@drill.command(name="run")
@click.argument("path")
@click.option("--speed", type=float, help="incident seconds per lab second (default: the drill's)")
@click.option("--name", help="lab name (default: one made up for the run)")
@click.option("--runs-dir", default="runs", show_default=True, type=click.Path(file_okay=False))
@click.option("--keep", is_flag=True, help="leave the lab up afterwards")
@click.option("--runtime", type=click.Choice(RUNTIMES), default="netns", show_default=True)
@click.option("--realtime/--no-realtime", default=True, show_default=True,
              help="play the drill's real-time windows at speed 1 (off: compress them too; the report says so)")
@click.option("--topology", type=click.Path(dir_okay=False), help="run the drill on this topology instead of its own")
@click.option("--sensitivity/--no-sensitivity", default=True, show_default=True,
              help="after the lab is down, the mechanism's sensitivity table into the report (replays only, ~1-2 min)")
@click.option("--lab", "on_lab", help="run on this lab, which is up (default for a drill with an exec task: the lab "
              "that is up with the drill's topology, if exactly one is; else the drill brings up its own)")
@click.option("--automation", help="the command the drill's exec task runs (your automation), in this directory")
@click.option("--junit", type=click.Path(dir_okay=False), help="write the grade as a JUnit XML file here")
@click.option("--dashboard", "with_dashboard", is_flag=True,
              help="print the live dashboard's address once the lab is up (bgplab dashboard)")
def drill_run(path, speed, name, runs_dir, keep, runtime, realtime, topology, sensitivity, on_lab, automation,
              junit, with_dashboard) -> None:
    """Run the drill in PATH; write its run directory and report.

    On a lab that is up (--lab; for a drill that grades an automation, also the only lab up
    with the drill's topology) the drill runs there and leaves it as it found it; otherwise
    it brings up its own lab and removes it afterwards.

    Exits 1 if an expectation failed, 3 if the drill passed its maximum duration, 130 or
    143 if interrupted (SIGINT, SIGTERM: the lab is removed, the report marked so)."""
    from controller.drills import run_drill
    from controller.drills.model import load_drill
    from lab.state import LabState

    if on_lab and name:
        raise UsageError("--lab runs on a lab that is up, --name names the lab the drill brings up: give one")
    if on_lab and LabState.load(on_lab) is None:
        raise UsageError(f"--lab {on_lab}: no such lab is up (labs: {', '.join(lifecycle.labs()) or 'none'})")
    lab = on_lab or name
    drill_, own = load_drill(path)
    if lab is None and topology is None and any(t.kind == "exec" for t in drill_.tasks.values()):
        # grading a team's automation: `bgplab up && bgplab drill run ...` runs it on that lab
        up = {n: LabState.load(n) for n in LabState.labs()}
        mine = [n for n, st in up.items() if st is not None and st.data.get("topology") == str(own)]
        if len(mine) > 1:
            raise UsageError(f"several labs run {own.name} ({', '.join(mine)}): name one with --lab")
        if mine:
            lab = mine[0]
            click.echo(f"running on lab '{lab}' (up, with the drill's topology)", err=True)
    from controller.drills.terminal import TerminalView

    view = TerminalView(sys.stderr)  # a table redrawn in place on a terminal; plain lines in a log
    r = run_drill(path, runs_dir=Path(runs_dir), speed=speed, lab=lab, keep=keep,
                  progress=view.line, status=view.update, runtime=runtime, realtime=realtime,
                  topology=Path(topology) if topology else None, sensitivity=sensitivity, automation=automation,
                  junit=Path(junit) if junit else None,
                  on_ready=(lambda api, lab_name: view.line(f"dashboard: {dashboard_url(api, lab_name)}"))
                  if with_dashboard else None)
    click.echo(f"run directory: {r.run_dir}")
    click.echo(f"report: {r.run_dir / 'report.html'}")
    keys = ("withdrawn_by_task", "withdrawn_on_wire", "observer_min", "restored_by_revert", "restored_by_config_push",
            "restored_in_network", "duration_incident_s", "convergence_s")
    if "withdrawn_in_network" in r.metrics["figures"]:  # a team's automation, graded
        keys = ("asked", "withdrawn_in_network", "withdrawn_not_asked", "bindings_removed", "bindings_removed_not_asked",
                "accounts_affected", "accounts_unbound", "observer_min", "api_denied", "held_changes", "convergence_s")
    for key in keys:
        f = r.metrics["figures"].get(key)
        if f:
            click.echo(f"  {key:<26} {_figure(f['value']):<44} ({f['source']})")
    for run in (r.metrics["figures"].get("automation_runs") or {}).get("value") or []:
        how = ("ended at its time limit" if run["killed_at_limit"] else f"exit {run['exit_code']}")
        click.echo(f"  automation {run['task']} run {run['run']}: {how} after {run['seconds']:.1f} s "
                   f"(stdout: {r.run_dir / run['stdout']}, stderr: {r.run_dir / run['stderr']})")
        if run["stderr_tail"]:
            click.echo("    " + "\n    ".join(run["stderr_tail"].strip().splitlines()[-8:]))
    if junit:
        click.echo(f"junit: {junit}")
    for c in r.checks:
        n = f", n={c['n']}" if c.get("n") is not None else ""
        click.echo(f"  {'ok    ' if c['ok'] else 'FAILED'} {c['expectation']} = {c['value']} (expected {c['range']}{n})")
    if any(not c["ok"] for c in r.checks):
        sys.exit(1)


@drill.command(name="mechanism")
@click.argument("path")
@click.option("--speed", type=float, multiple=True, help="incident seconds per lab second (repeatable; default: the drill's)")
@click.option("--seed", "seeds", type=int, multiple=True, help="inventory seed (repeatable; default: the drill's)")
@click.option("--sensitivity", is_flag=True, help="and each knob moved by 10%%, alone")
@click.option("--out", type=click.Path(dir_okay=False), help="write the results as JSON here")
def drill_mechanism(path, speed, seeds, sensitivity, out) -> None:
    """The drill's mechanism alone: the real API over a fresh inventory, no BGP, in seconds.

    Prints what the controller did (withdrawn, restored by the revert and the push, customers,
    dashboard) for each seed and speed; no lab is brought up."""
    from controller.drills.mechanism import sensitivity as table, simulate_many
    from controller.drills.model import load_drill

    drill, topology = load_drill(path)
    seeds = seeds or (drill.edge.inventory_seed,)
    speeds = speed or (drill.speed,)
    jobs = [(drill.model_copy(update={"edge": drill.edge.model_copy(update={"inventory_seed": s})}), topology, v)
            for s in seeds for v in speeds]
    results = simulate_many(jobs)
    click.echo(f"{'seed':>9} {'speed':>6} {'withdrawn':>9} {'revert':>7} {'push':>5} {'dashboard':>9} {'refused':>7} "
               f"{'customers':>9} {'detected':>9} {'stopped':>9}")
    for r in results:
        click.echo(f"{r['inventory_seed']:>9} {r['speed']:>6g} {r['withdrawn']:>9} {r['restored_by_revert']:>7} "
                   f"{r['restored_by_config_push']:>5} {r['dashboard_toggles_ok']:>9} {r['dashboard_refused']:>7} "
                   f"{r['affected_customers']:>9} {r['canary_failed'] or '-':>9} {r['task_stopped'] or '-':>9}")
    doc = {"results": results}
    if sensitivity:
        doc["sensitivity"] = t = table(drill, topology, speed=speeds[0])
        click.echo(f"\n{'knob':<20} {'value':>10} {'withdrawn':>16} {'revert':>16} {'push':>16}")
        for row in t["rows"]:
            click.echo(f"{row['knob']:<20} {str(row['value']):>10} " + " ".join(
                f"{row[h]:>7} ({row['change'][h]:+6.1%})" for h in ("withdrawn", "restored_by_revert", "restored_by_config_push")))
        click.echo(f"largest change of a headline figure: {t['largest_change']:.1%}")
    if out:
        Path(out).write_text(json.dumps(doc, indent=1))
        click.echo(f"wrote {out}")


@drill.command(name="compare")
@click.argument("run_dirs", nargs=-1, required=True, type=click.Path(exists=True, file_okay=False))
@click.option("--out", type=click.Path(dir_okay=False), help="also write the table as HTML here")
@click.option("--json", "as_json", is_flag=True)
def drill_compare(run_dirs, out, as_json) -> None:
    """Drill runs side by side: the unguarded replay and its guarded variants, one table
    ("what each defence would have changed on 2026-02-20"), each figure with its source."""
    from controller.drills.compare import compare, markdown, write_html

    t = compare([Path(d) for d in run_dirs])
    click.echo(json.dumps(t, indent=1) if as_json else markdown(t))
    if out:
        click.echo(f"wrote {write_html(t, Path(out))}", err=True)


def _figure(v: object) -> str:
    if isinstance(v, dict) and "median" in v:
        return f"median {v['median']}, p90 {v['p90']}, max {v['max']}, n={v['n']}"
    return str(v)


@cli.command()
@click.argument("run_dir", type=click.Path(exists=True, file_okay=False))
@click.option("--open", "open_", is_flag=True, help="open it in a browser when this machine has a display")
def report(run_dir, open_) -> None:
    """(Re)write a drill run's report.html (one file, its interactive plots inside) and metrics.json."""
    from controller.drills import write_report
    from controller.drills.rundir import RunDir

    _, out = write_report(RunDir(Path(run_dir)))
    click.echo(str(out))
    if open_:
        _open_in_browser(Path(out).resolve().as_uri())


# -- captures --------------------------------------------------------------------------


@cli.group(name="capture")
def capture_group() -> None:
    """Packet captures for Wireshark: per interface, merged with drill steps as comments."""


@capture_group.command(name="start")
@click.option("--lab")
@click.option("--node", help="every interface of this node")
@click.option("--link", help="both ends of the link A:B")
@click.option("--all", "all_", is_flag=True, help="every interface of the lab")
@click.option("--bgp-only", is_flag=True, help="only TCP port 179")
@click.option("--ring", type=click.IntRange(min=1), help="ring buffer: files of this many MB (10 files)")
@click.option("--dir", "dest", type=click.Path(file_okay=False), help="where the files go (default: captures/<lab>-<time>)")
def capture_start(lab, node, link, all_, bgp_only, ring, dest) -> None:
    """tcpdump on a node's interfaces, a link's two ends, or everything."""
    from lab import capture

    running = _open(lab)
    d = Path(dest) if dest else Path("captures") / f"{running.name}-{time.strftime('%Y%m%dT%H%M%S')}"
    started = capture.start(running, d, node=node, link=link, all_=all_, bgp_only=bgp_only, ring_mb=ring)
    for c in started:
        click.echo(f"{c['node']:<10} {c['iface']:<6} -> {c['file']}")


@capture_group.command(name="stop")
@click.option("--lab")
def capture_stop(lab) -> None:
    """Stop every capture of the lab; the files are complete when this returns."""
    from lab import capture

    stopped = capture.stop(_open(lab))
    for c in stopped:
        click.echo(c["file"])
    if not stopped:
        click.echo("no capture was running")


@capture_group.command(name="list")
@click.option("--lab")
def capture_list(lab) -> None:
    """The lab's captures and whether they still run."""
    from lab import capture

    caps = capture.list_(_open(lab))
    for c in caps:
        click.echo(f"{c['node']:<10} {c['iface']:<6} {'running' if c['running'] else 'stopped':<8} {c['file']}")


@capture_group.command(name="merge")
@click.argument("directory", type=click.Path(exists=True, file_okay=False))
@click.option("--out", type=click.Path(dir_okay=False), help="default: capture.pcapng beside the captures")
def capture_merge(directory, out) -> None:
    """Merge a run's (or a capture directory's) files into one pcapng, drill steps as packet comments."""
    from controller.drills.rundir import RunDir
    from controller.drills.runner import step_comments
    from lab import capture

    rd = RunDir(Path(directory))
    capdir = rd.captures if rd.captures.is_dir() else rd.path
    merged = capture.merge(capture.files_in(capdir), Path(out) if out else rd.capture, step_comments(rd))
    click.echo(str(merged))


@capture_group.command(name="wireshark")
@click.argument("path", type=click.Path(exists=True))
def capture_wireshark(path) -> None:
    """The command that opens a merged capture with a BGP display filter (run where there is a display)."""
    from lab import capture

    p = Path(path)
    merged = p / "capture.pcapng" if p.is_dir() else p
    argv = capture.wireshark_command(merged)
    if os.environ.get("DISPLAY") and shutil.which("wireshark"):
        os.execvp(argv[0], argv)
    click.echo(" ".join(shlex.quote(a) for a in argv))


@capture_group.command(name="stream")
@click.option("--lab")
@click.argument("target")
@click.option("--bgp-only", is_flag=True)
def capture_stream(lab, target, bgp_only) -> None:
    """Live capture to stdout: bgplab capture stream t1:eth2 | wireshark -k -i -"""
    from lab import capture

    running = _open(lab)
    node, _, iface = target.partition(":")
    if node not in running.plan.nodes or iface not in [i.name for i in running.plan.nodes[node].interfaces]:
        raise UsageError(f"'{target}' is not NODE:IFACE of lab '{running.name}'")
    argv = capture.tcpdump_argv(iface, None, bgp_only=bgp_only)
    full = net_argv(running.name, node, argv)
    os.execvpe(full[0], full, mark_env(running.name))


@capture_group.command(name="analyse")
@click.argument("directory", type=click.Path(exists=True, file_okay=False))
@click.option("--prefix", help="also the AS paths this prefix carried, link by link")
def capture_analyse(directory, prefix) -> None:
    """UPDATEs and NLRI per link direction (scapy's BGP layer); path hunting of one prefix on the wire."""
    from controller.observe import wire
    from lab import capture

    d = Path(directory)
    files = capture.files_in(d / "captures" if (d / "captures").is_dir() else d)
    if not files:
        raise BgplabError(f"no capture files in {directory}")
    for link, c in sorted(wire.link_counts(files).items()):
        click.echo(f"{link:<32} updates {c['updates']:>5}  announced {c['announced']:>6}  withdrawn {c['withdrawn']:>6}")
    if prefix:
        for t, link, kind, path in wire.prefix_paths(files, prefix):
            click.echo(f"{t:.6f} {link:<32} {kind:<9} {' '.join(map(str, path or ()))}")


# -- faults ----------------------------------------------------------------------------


@cli.group()
def fault() -> None:
    """Break the lab on purpose: links, impairments, daemons, sessions."""


def _link_fault(name: str, help_text: str, action) -> None:
    """A fault command that takes a link (NODE PEER) and nothing else."""

    @fault.command(name=name, help=help_text)
    @click.option("--lab")
    @click.argument("node")
    @click.argument("peer")
    def command(lab, node, peer) -> None:
        action(_open(lab), node, peer)


def _faults():
    from lab import faults

    return faults


_link_fault("link-down", "Carrier down at both ends of the link NODE-PEER.",
            lambda lab, n, p: _faults().set_link(lab, n, p, up=False))
_link_fault("link-up", "Carrier up again at both ends of the link NODE-PEER.",
            lambda lab, n, p: _faults().set_link(lab, n, p, up=True))
_link_fault("clear", "Remove an impairment from the link NODE-PEER.",
            lambda lab, n, p: _faults().clear_impairment(lab, n, p))
_link_fault("session-reset", "Reset the BGP session NODE-PEER (clear bgp on NODE).",
            lambda lab, n, p: _faults().session_reset(lab, n, p))


@fault.command(name="flap")
@click.option("--lab")
@click.argument("node")
@click.argument("peer")
@click.option("--down", "down_for", type=float, default=2.0, show_default=True, help="seconds down each time")
@click.option("--up", "up_for", type=float, default=2.0, show_default=True, help="seconds up between")
@click.option("--times", type=int, default=1, show_default=True)
def fault_flap(lab, node, peer, down_for, up_for, times) -> None:
    from lab import faults

    faults.flap(_open(lab), node, peer, down_for, times, up_for)


@fault.command(name="impair")
@click.option("--lab")
@click.argument("node")
@click.argument("peer")
@click.option("--delay", "delay_ms", type=float, default=0, help="ms")
@click.option("--jitter", "jitter_ms", type=float, default=0, help="ms")
@click.option("--loss", "loss_pct", type=float, default=0, help="%")
@click.option("--rate", "rate_kbit", type=int, help="kbit/s")
def fault_impair(lab, node, peer, delay_ms, jitter_ms, loss_pct, rate_kbit) -> None:
    """Delay, jitter, loss and rate on both ends of the link NODE-PEER (replaces an earlier one)."""
    from lab import faults

    faults.impair(_open(lab), node, peer, delay_ms=delay_ms, jitter_ms=jitter_ms, loss_pct=loss_pct, rate_kbit=rate_kbit)


@fault.command(name="daemon")
@click.option("--lab")
@click.argument("node")
@click.argument("name")
@click.argument("action", type=click.Choice(["kill", "stop", "cont", "start"]))
def fault_daemon(lab, node, name, action) -> None:
    """Kill, stop (SIGSTOP), continue or start a daemon: bgplab fault daemon t1 bgpd kill."""
    from lab import faults

    pid = faults.daemon(_open(lab), node, name, action)
    click.echo(f"{name} on {node}: {action} (pid {pid})")


# -- other tools ------------------------------------------------------------------------


@cli.group()
def export() -> None:
    """Write a lab in another tool's format."""


@export.command(name="containerlab")
@click.argument("topology")
@click.option("--name", help="lab name (default: the topology's name)")
@click.option("--out", type=click.Path(file_okay=False), help="directory to write (default: clab-<lab>)")
@click.option("--image", help="node image (default: bgplab:<version>, as `make image` builds it)")
def export_containerlab(topology: str, name: str | None, out: str | None, image: str | None) -> None:
    """TOPOLOGY as a containerlab topology, with each node's configs and start script."""
    from lab.export import containerlab
    from lab.images.build import image_tag
    from lab.plan import build_plan
    from lab.topology import load_topology

    plan = build_plan(load_topology(topology), name)
    dest = Path(out or f"clab-{plan.lab}")
    path = containerlab.export(plan, dest, image or image_tag())
    click.echo(f"{path}: {len(plan.nodes)} nodes, {len(plan.topology.links)} links; "
               f"deploy with `containerlab deploy -t {path}`")


def main() -> None:
    cli()


if __name__ == "__main__":
    main()

"""`bgplab changes`, `guardrails` and `snapshots`: the change pipeline from the command line."""

from __future__ import annotations

import json
import time

import click

from controller.changes import STATUSES
from controller.cli.base import lab_option
from lab.errors import UsageError


def _diff_line(d: dict) -> str:
    return (f"withdraw {d.get('withdraw', 0)}, announce {d.get('announce', 0)}, bindings -{d.get('bindings_removed', 0)}"
            f" +{d.get('bindings_added', 0)}, {d.get('accounts', 0)} accounts, {d.get('byoip_share', 0):.2%} of BYOIP")


@click.group()
def changes() -> None:
    """Changes through the pipeline: list, show, approve or reject held ones, reset the breaker."""


@changes.command(name="list")
@lab_option
@click.option("--status", type=click.Choice(STATUSES))
@click.option("--limit", type=click.IntRange(1, 10_000), default=50, show_default=True)
@click.option("--json", "as_json", is_flag=True)
def changes_list(lab, status, limit, as_json) -> None:
    with lab.api() as api:
        body = api.call("GET", "/v1/changes", params={"limit": limit, **({"status": status} if status else {})})
    if as_json:
        click.echo(json.dumps(body["result"], indent=2))
        return
    for c in body["result"]:
        why = f"  [{c['guardrail']}: {c['reason']}]" if c["status"] == "held" else ""
        click.echo(f"{c['id']}  {c['status']:<8} {c['kind']:<14} {c['actor']:<22} {_diff_line(c['diff'])}{why}")
    click.echo("totals: " + ", ".join(f"{k} {v}" for k, v in sorted(body["totals"].items())), err=True)


@changes.command(name="show")
@lab_option
@click.argument("change_id")
def changes_show(lab, change_id) -> None:
    with lab.api() as api:
        c = api.call("GET", f"/v1/changes/{change_id}")["result"]
    click.echo(json.dumps(c, indent=2))


@changes.command(name="approve")
@lab_option
@click.argument("change_id")
def changes_approve(lab, change_id) -> None:
    """Apply a held change past the guardrails."""
    with lab.api() as api:
        r = api.call("POST", f"/v1/changes/{change_id}/approve")["result"]
    click.echo(f"{change_id} approved, applied as {r['applied_as']}: {_diff_line(r['diff'])}")


@changes.command(name="reject")
@lab_option
@click.argument("change_id")
def changes_reject(lab, change_id) -> None:
    with lab.api() as api:
        api.call("POST", f"/v1/changes/{change_id}/reject")
    click.echo(f"{change_id} rejected")


@changes.command(name="reset-breaker")
@lab_option
def changes_reset_breaker(lab) -> None:
    """Close the withdrawal breaker: withdrawals go through again, counted afresh."""
    with lab.api() as api:
        r = api.call("POST", "/v1/lab/breaker/reset")["result"]
    click.echo(f"breaker reset (it tripped at {r['was']['change']} on {r['was'].get('withdrawals')} withdrawals)")


@click.command()
@lab_option
@click.option("--set", "settings", help="guardrails as JSON, e.g. '{\"breaker\": {\"max_withdrawals\": 25, "
                                         "\"window\": 600}}' (windows in seconds); '{}' switches every one off")
def guardrails(lab, settings) -> None:
    """Show the lab's guardrails, or set them."""
    with lab.api() as api:
        if settings is not None:
            try:
                body = json.loads(settings)
            except ValueError as e:
                raise UsageError(f"--set is not JSON: {e}") from None
            r = api.call("PUT", "/v1/lab/guardrails", json=body)["result"]
        else:
            r = api.call("GET", "/v1/lab/guardrails")["result"]
    click.echo(json.dumps(r, indent=2))


@click.group()
def snapshots() -> None:
    """Snapshots of operational state (one before every change, and labelled ones): list, diff, restore."""


@snapshots.command(name="list")
@lab_option
@click.option("--limit", type=click.IntRange(1, 10_000), default=30, show_default=True)
def snapshots_list(lab, limit) -> None:
    with lab.api() as api:
        rows = api.call("GET", "/v1/snapshots", params={"limit": limit})["result"]
    for s in rows:
        what = f"label {s['label']!r}" if s["label"] else f"before {s['before_change']} ({s['change_kind']})"
        click.echo(f"{s['id']}  {time.strftime('%H:%M:%S', time.gmtime(s['at']))}  {s['by']:<22} {what}")


@snapshots.command(name="take")
@lab_option
@click.argument("label")
def snapshots_take(lab, label) -> None:
    with lab.api() as api:
        r = api.call("POST", "/v1/snapshots", json={"label": label})["result"]
    click.echo(f"{r['id']}  {label}: announced {r['announced']}, bindings {r['bindings']}")


@snapshots.command(name="diff")
@lab_option
@click.argument("snapshot_id")
def snapshots_diff(lab, snapshot_id) -> None:
    """What restoring the snapshot would change now."""
    with lab.api() as api:
        d = api.call("GET", f"/v1/snapshots/{snapshot_id}/diff")["result"]
    click.echo(f"{snapshot_id}: {d['prefixes']} prefixes differ: announce {d['announce']}, withdraw {d['withdraw']}, "
               f"bindings back {d['bindings_back']}, bindings gone {d['bindings_gone']}")
    for x in d["first"]:
        click.echo(f"  {x['prefix']:<22} advertised {str(x['advertised']).lower():<5} services {','.join(x['services']) or '-'}")


@snapshots.command(name="restore")
@lab_option
@click.argument("snapshot_id")
def snapshots_restore(lab, snapshot_id) -> None:
    """Put operational state back as the snapshot had it, in one change."""
    t0 = time.monotonic()
    with lab.api() as api:
        r = api.call("POST", f"/v1/snapshots/{snapshot_id}/restore")
    res, rec = r["result"], r.get("reconcile", {})
    click.echo(f"restored {snapshot_id} as {res['change']}: {_diff_line(res['diff'])}; speakers: "
               f"{rec.get('announced', 0)} announced, {rec.get('withdrawn', 0)} withdrawn "
               f"({time.monotonic() - t0:.2f} s through the API)")

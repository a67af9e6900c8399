"""`bgplab prefixes`, `bindings` and `token`: the lab's Addressing API from the command line."""

from __future__ import annotations

import json

import click

from controller.cli.base import lab_option
from controller.inventory import prefix_id
from controller.products import SERVICES
from controller.roles import ROLES
from lab.errors import UsageError


def _selector_options(f):
    for opt in reversed([
        lab_option,
        click.option("--account", help="only this account's prefixes (acct-0001, acct-operator, ...)"),
        click.option("--family", type=click.Choice(["ipv4", "ipv6"]), help="only this address family"),
        click.option("--byoip/--owned", default=None, help="only BYOIP prefixes, or only the operator's own"),
        click.option("--count", type=click.IntRange(min=1), help="at most this many, in inventory order"),
    ]):
        f = opt(f)
    return f


@click.group()
def prefixes() -> None:
    """List, advertise, withdraw and delete prefixes through the lab's Addressing API."""


@prefixes.command(name="list")
@_selector_options
@click.option("--advertised/--withdrawn", default=None)
@click.option("--pending-delete", is_flag=True, help="only prefixes pending deletion")
@click.option("--json", "as_json", is_flag=True)
def prefixes_list(lab, account, family, byoip, count, advertised, pending_delete, as_json) -> None:
    """Prefixes in the inventory, with their state."""
    with lab.api() as api:
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
    with lab.api() as api:
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
@lab_option
@click.option("--request", "request_only", is_flag=True, help="only request deletion (pending delete)")
@click.argument("cidrs", nargs=-1, required=True)
def delete(lab, request_only, cidrs) -> None:
    """Delete prefixes (withdrawn, bindings removed), or request their deletion."""
    with lab.api() as api:
        for c in cidrs:
            prefix = prefix_id(c)
            if request_only:
                api.call("POST", f"/v1/prefixes/{prefix}/deletion_request")
            else:
                api.call("DELETE", f"/v1/prefixes/{prefix}")
            click.echo(f"{c}: {'deletion requested' if request_only else 'deleted'}")


@click.group()
def bindings() -> None:
    """Service bindings of a prefix (a service: cdn, spectrum, magic_transit, dedicated_egress)."""


@bindings.command(name="list")
@lab_option
@click.argument("cidr")
def bindings_list(lab, cidr) -> None:
    with lab.api() as api:
        rows = api.call("GET", f"/v1/prefixes/{prefix_id(cidr)}/bindings")["result"]
    for b in rows:
        click.echo(f"{b['id']}  {b['service']}")
    if not rows:
        click.echo(f"{cidr} has no service bindings")


@bindings.command(name="add")
@lab_option
@click.argument("cidr")
@click.argument("service", type=click.Choice(SERVICES))
def bindings_add(lab, cidr, service) -> None:
    with lab.api() as api:
        b = api.call("POST", f"/v1/prefixes/{prefix_id(cidr)}/bindings", json={"service": service})["result"]
    click.echo(f"{b['id']}  {b['service']}")


@bindings.command(name="delete")
@lab_option
@click.argument("cidr")
@click.argument("binding")
def bindings_delete(lab, cidr, binding) -> None:
    with lab.api() as api:
        api.call("DELETE", f"/v1/prefixes/{prefix_id(cidr)}/bindings/{binding}")
    click.echo(f"{binding} deleted")


@click.group()
def token() -> None:
    """API tokens: the lab's admin token is in /run/bgplab/<lab>/admin.token (0600); make others here."""


@token.command(name="create")
@lab_option
@click.option("--role", type=click.Choice(list(ROLES)), required=True)
@click.option("--account", help="the account a customer token is confined to")
@click.option("--name", help="how the audit log names it (default: the role)")
def token_create(lab, role, account, name) -> None:
    """Print a new token (shown once) for ROLE: admin, operator, task, customer (--account), read-only."""
    with lab.api() as api:
        r = api.call("POST", "/v1/lab/tokens", json={"role": role, "name": name or role,
                                                     **({"account": account} if account else {})})["result"]
    click.echo(r["token"])


@token.command(name="list")
@lab_option
def token_list(lab) -> None:
    with lab.api() as api:
        rows = api.call("GET", "/v1/lab/tokens")["result"]
    for t in rows:
        click.echo(f"{t['name']:<24} {t['role']:<10} {t['account'] or '-'}")



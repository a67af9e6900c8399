"""The Addressing API's dataset, its records: accounts, prefixes, bindings, the schema they are
stored in, and the errors a request gets (each with its HTTP status)."""

from __future__ import annotations

import hashlib
import ipaddress
from dataclasses import dataclass
from typing import Callable

from lab.errors import BgplabError
from controller.products import SERVICES

OPERATOR = "acct-operator"
# The resolver (the 1.1.1.1 analogue), an account of the operator's own. Its website is served
# from a prefix onboarded through BYOIP before any customer's (1.1.1.1 opened on 2018-04-01) and
# pinned: the operator holds its advertisement, the Addressing API never withdraws it. Its DNS
# answers on the first of the operator's own prefixes, which no BYOIP change touches. So when
# the website's binding goes its address still answers, with 403 "Edge IP Restricted", and
# DNS keeps answering: what the resolver showed on 2026-02-20.
RESOLVER = "acct-resolver"
RESOLVER_ONBOARDED = 1522540800.0  # 2018-04-01 UTC
# Customers onboarded their BYOIP prefixes between these dates (input: the seeded inventory's
# shape), in sessions of a few prefixes each; the API lists prefixes in onboarding order.
ONBOARDING = (1546300800.0, 1769904000.0)  # 2019-01-01 .. 2026-02-01 UTC
ONBOARDING_SESSION = 6  # mean prefixes a customer onboards at once

SCHEMA = """
CREATE TABLE IF NOT EXISTS accounts (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('byoip', 'operator'))
);
CREATE TABLE IF NOT EXISTS prefixes (
    id TEXT PRIMARY KEY,
    cidr TEXT NOT NULL UNIQUE,
    family INTEGER NOT NULL CHECK (family IN (4, 6)),
    account_id TEXT NOT NULL REFERENCES accounts(id),
    byoip INTEGER NOT NULL,
    pool TEXT NOT NULL,
    origins TEXT NOT NULL,
    advertised INTEGER NOT NULL DEFAULT 1,
    pending_delete INTEGER NOT NULL DEFAULT 0,
    deleted INTEGER NOT NULL DEFAULT 0,
    pinned INTEGER NOT NULL DEFAULT 0,
    created REAL NOT NULL,
    modified REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS prefixes_account ON prefixes(account_id);
CREATE INDEX IF NOT EXISTS prefixes_created ON prefixes(created, id);
CREATE TABLE IF NOT EXISTS bindings (
    id TEXT PRIMARY KEY,
    prefix_id TEXT NOT NULL REFERENCES prefixes(id),
    service TEXT NOT NULL CHECK (service IN ({SERVICES})),
    created REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS bindings_prefix ON bindings(prefix_id);
CREATE TABLE IF NOT EXISTS changes (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    at REAL NOT NULL,
    what TEXT NOT NULL,
    prefix_id TEXT,
    detail TEXT
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS tokens (
    digest TEXT PRIMARY KEY,  -- sha256 of the secret: the secret itself is never stored
    name TEXT NOT NULL,
    role TEXT NOT NULL CHECK (role IN ('admin', 'operator', 'task', 'customer', 'read-only')),
    account TEXT REFERENCES accounts(id),
    created REAL NOT NULL
);
"""
SCHEMA = SCHEMA.replace("{SERVICES}", ", ".join(f"'{s}'" for s in SERVICES))


NBIND = "(SELECT COUNT(*) FROM bindings b WHERE b.prefix_id = prefixes.id) AS nbind"


class InventoryError(BgplabError):
    status = 400


class NotFound(InventoryError):
    status = 404


class Conflict(InventoryError):
    status = 409


class Pinned(Conflict):
    """A withdrawal named pinned prefixes (the operator holds their advertisement)."""

    def __init__(self, ids: list[str]):
        self.ids = ids
        super().__init__(f"prefix {', '.join(repr(i) for i in ids[:5])} is pinned: the operator holds its "
                         "advertisement and the Addressing API does not withdraw it")


@dataclass(frozen=True)
class Prefix:
    id: str
    cidr: str
    family: int
    account_id: str
    byoip: bool
    pool: str
    origins: tuple[str, ...]
    advertised: bool
    pending_delete: bool
    deleted: bool
    modified: float
    bindings: int = 0
    pinned: bool = False
    created: float = 0.0

    @property
    def network(self) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
        return ipaddress.ip_network(self.cidr)

    def as_dict(self) -> dict:
        return {
            "id": self.id,
            "cidr": self.cidr,
            "family": f"ipv{self.family}",
            "account_id": self.account_id,
            "byoip": self.byoip,
            "pool": self.pool,
            "origins": list(self.origins),
            "advertised": self.advertised,
            "pending_delete": self.pending_delete,
            "deleted": self.deleted,
            "modified": self.modified,
            "created": self.created,
            "pinned": self.pinned,
            "bindings": self.bindings,
        }


@dataclass(frozen=True)
class Binding:
    id: str
    prefix_id: str
    service: str
    created: float

    def as_dict(self) -> dict:
        return {"id": self.id, "prefix_id": self.prefix_id, "service": self.service, "created": self.created}


def prefix_id(cidr: str) -> str:
    """A prefix's id: its CIDR with '_' for '/', so it fits in a URL path segment."""
    return cidr.replace("/", "_")


def cidr_of(prefix_ident: str) -> str:
    """The CIDR a prefix id stands for (``prefix_id`` reversed)."""
    return prefix_ident.replace("_", "/")




def token_digest(token: str) -> str:
    """What the inventory keeps of a token. A token is 192 random bits, so one SHA-256 is enough
    (a slow password hash guards low-entropy secrets against guessing; these have none to guess)."""
    return hashlib.sha256(token.encode()).hexdigest()



# Called with the changed prefixes before a change commits; raising rolls the change back.
Then = Callable[[list["Prefix"]], None]

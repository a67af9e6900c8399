"""The Addressing API's dataset: accounts, prefixes, advertisement state, service bindings.

One SQLite file in the lab directory; the source of truth for what every speaker
should announce. Seeding is deterministic for a given seed: the same lab and seed
give the same customers, prefixes and bindings.
"""

from __future__ import annotations

import ipaddress
import json
import os
import secrets
import sqlite3
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterable, Iterator

from controller.inventory import seeding
from controller.inventory.records import (NBIND, SCHEMA, Binding, Conflict, InventoryError, NotFound, Pinned, Prefix,
                                          Then, prefix_id, token_digest)
from controller.products import SERVICES
from controller.inventory.seeding import InventoryShape
from lab.plan import LabPlan


class Inventory:
    """Thread-safe access to the inventory file (one connection, one lock: writes are tiny)."""

    def __init__(self, path: Path | str):
        self.path = Path(path)
        # It holds the tokens' digests: 0600 from its creation, and SQLite makes its -wal and
        # -shm with the database's own mode.
        os.close(os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600))
        self.db = sqlite3.connect(str(self.path), check_same_thread=False, isolation_level=None)
        self.db.row_factory = sqlite3.Row
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA foreign_keys=ON")
        self.db.executescript(SCHEMA)
        self.lock = threading.RLock()

    def close(self) -> None:
        self.db.close()

    @contextmanager
    def tx(self) -> Iterator[sqlite3.Connection]:
        with self.lock:
            self.db.execute("BEGIN IMMEDIATE")
            try:
                yield self.db
            except BaseException:
                self.db.execute("ROLLBACK")
                raise
            self.db.execute("COMMIT")

    def seed(self, plan: LabPlan, seed: int = 20260220, advertised: bool = True,
             shape: InventoryShape = InventoryShape()) -> dict[str, int]:
        """Fill an empty inventory from the lab's plan (``seeding.seed``): every prefix starts
        advertised, or with ``advertised`` false withdrawn."""
        return seeding.seed(self, plan, seed, advertised, shape)

    def meta(self, key: str) -> str | None:
        with self.lock:
            row = self.db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    def create_token(self, role: str, name: str, account: str | None = None) -> str:
        """A new API token (a random secret) for ``role``; a customer token is confined to ``account``.
        The secret is returned once; the inventory keeps its digest."""
        token = "bgp-" + secrets.token_urlsafe(24)
        with self.tx() as db:
            db.execute("INSERT INTO tokens VALUES (?, ?, ?, ?, ?)", (token_digest(token), name, role, account, time.time()))
        return token

    def token_info(self, token: str) -> dict[str, str | None] | None:
        """Who a token is (name, role, account), or None for a token this lab never made."""
        with self.lock:
            row = self.db.execute("SELECT name, role, account FROM tokens WHERE digest = ?",
                                  (token_digest(token),)).fetchone()
        return None if row is None else {"name": row[0], "role": row[1], "account": row[2]}

    def token_list(self) -> list[dict]:
        with self.lock:
            return [dict(r) for r in self.db.execute("SELECT name, role, account, created FROM tokens ORDER BY created")]

    # -- reads -------------------------------------------------------------------

    @staticmethod
    def _prefix(row: sqlite3.Row) -> Prefix:
        return Prefix(
            row["id"], row["cidr"], row["family"], row["account_id"], bool(row["byoip"]), row["pool"],
            tuple(row["origins"].split(",")) if row["origins"] else (), bool(row["advertised"]),
            bool(row["pending_delete"]), bool(row["deleted"]), row["modified"], row["nbind"],
            bool(row["pinned"]), row["created"],
        )

    def prefixes(
        self,
        *,
        account: str | None = None,
        advertised: bool | None = None,
        pending_delete: bool | None = None,
        family: int | None = None,
        byoip: bool | None = None,
        include_deleted: bool = False,
        ids: Iterable[str] | None = None,
        limit: int | None = None,
        offset: int = 0,
        onboarding_order: bool = False,
    ) -> list[Prefix]:
        """Prefixes in the plan's order, or with ``onboarding_order`` in the API's: oldest
        onboarded first, then by id (what a paging API over a created-at index returns)."""
        where, args = [], []
        for column, value in (
            ("account_id", account),
            ("advertised", None if advertised is None else int(advertised)),
            ("pending_delete", None if pending_delete is None else int(pending_delete)),
            ("family", family),
            ("byoip", None if byoip is None else int(byoip)),
        ):
            if value is not None:
                where.append(f"{column} = ?")
                args.append(value)
        if not include_deleted:
            where.append("deleted = 0")
        if ids is not None:
            ids = list(ids)
            where.append(f"id IN ({','.join('?' * len(ids))})")
            args += ids
        sql = (f"SELECT *, {NBIND} FROM prefixes" + (" WHERE " + " AND ".join(where) if where else "")
               + (" ORDER BY created, id" if onboarding_order else " ORDER BY rowid"))
        if limit is not None or offset:
            sql += " LIMIT ? OFFSET ?"
            args += [-1 if limit is None else limit, offset]
        with self.lock:
            return [self._prefix(r) for r in self.db.execute(sql, args)]

    def get(self, pfx_id: str) -> Prefix:
        with self.lock:
            row = self.db.execute(f"SELECT *, {NBIND} FROM prefixes WHERE id = ?", (pfx_id,)).fetchone()
        if row is None:
            raise NotFound(f"no prefix '{pfx_id}' in this lab's inventory")
        return self._prefix(row)

    def by_cidr(self, cidr: str) -> Prefix:
        try:
            net = ipaddress.ip_network(cidr, strict=True)
        except ValueError as e:
            raise InventoryError(f"'{cidr}' is not a prefix in CIDR form ({e})") from None
        return self.get(prefix_id(str(net)))

    def accounts(self) -> list[dict]:
        with self.lock:
            rows = self.db.execute(
                "SELECT a.id, a.name, a.kind, COUNT(p.id) AS prefixes FROM accounts a "
                "LEFT JOIN prefixes p ON p.account_id = a.id AND p.deleted = 0 GROUP BY a.id ORDER BY a.id"
            ).fetchall()
        return [dict(r) for r in rows]

    def account_exists(self, account: str) -> bool:
        with self.lock:
            return self.db.execute("SELECT 1 FROM accounts WHERE id = ?", (account,)).fetchone() is not None

    def bindings(self, pfx_id: str | None = None) -> list[Binding]:
        with self.lock:
            if pfx_id is None:
                rows = self.db.execute("SELECT * FROM bindings ORDER BY id").fetchall()
            else:
                self.get(pfx_id)
                rows = self.db.execute("SELECT * FROM bindings WHERE prefix_id = ? ORDER BY id", (pfx_id,)).fetchall()
        return [Binding(r["id"], r["prefix_id"], r["service"], r["created"]) for r in rows]

    def desired(self, speaker: str) -> set[str]:
        """CIDRs ``speaker`` should announce now: advertised, not deleted, originated by it."""
        with self.lock:
            rows = self.db.execute("SELECT cidr, origins FROM prefixes WHERE advertised = 1 AND deleted = 0").fetchall()
        return {r["cidr"] for r in rows if speaker in r["origins"].split(",")}

    # -- writes (each returns the prefixes whose advertisement may have changed) ---

    def _log(self, db: sqlite3.Connection, what: str, pfx_id: str | None, detail: dict | None = None) -> None:
        db.execute(
            "INSERT INTO changes (at, what, prefix_id, detail) VALUES (?, ?, ?, ?)",
            (time.time(), what, pfx_id, json.dumps(detail) if detail else None),
        )

    def set_advertised(self, pfx_ids: list[str], advertised: bool, then: Then | None = None) -> list[Prefix]:
        """Set the BGP status of several prefixes at once; all exist and none is deleted, or nothing changes.
        A pinned prefix is never withdrawn: naming one in a withdrawal is a conflict.

        ``then`` is called with the changed prefixes inside the transaction: if it raises
        (the change could not reach the network), the change is rolled back."""
        now = time.time()
        with self.tx() as db:
            found = {r["id"]: r for r in db.execute(
                f"SELECT id, deleted, pinned FROM prefixes WHERE id IN ({','.join('?' * len(pfx_ids))})", pfx_ids
            )} if pfx_ids else {}
            missing = [p for p in pfx_ids if p not in found]
            if missing:
                raise NotFound(f"no prefix {', '.join(repr(m) for m in missing[:5])} in this lab's inventory")
            gone = [p for p in pfx_ids if found[p]["deleted"]]
            if gone:
                raise Conflict(f"prefix {', '.join(repr(g) for g in gone[:5])} has been deleted; it cannot be advertised or withdrawn")
            pinned = [p for p in pfx_ids if found[p]["pinned"]]
            if pinned and not advertised:
                raise Pinned(pinned)
            if advertised:
                # The edge serves a prefix through its bindings: with none left there is
                # nothing to advertise it for (the incident's ~300 "could not be toggled").
                bare = [r[0] for r in db.execute(
                    f"SELECT p.id FROM prefixes p WHERE p.id IN ({','.join('?' * len(pfx_ids))}) AND NOT EXISTS "
                    "(SELECT 1 FROM bindings b WHERE b.prefix_id = p.id)", pfx_ids)]
                if bare:
                    raise Conflict(
                        f"{len(bare)} prefix(es) have no service binding and cannot be advertised "
                        f"({', '.join(repr(b) for b in bare[:5])}); re-create a binding first"
                    )
            db.executemany(
                "UPDATE prefixes SET advertised = ?, modified = ? WHERE id = ?", [(int(advertised), now, p) for p in pfx_ids]
            )
            self._log(db, "advertise" if advertised else "withdraw", None, {"prefixes": len(pfx_ids)})
            return self._then(pfx_ids, then)

    def request_deletion(self, pfx_id: str) -> Prefix:
        with self.tx() as db:
            p = self.get(pfx_id)
            if p.deleted:
                raise Conflict(f"prefix '{pfx_id}' is already deleted")
            db.execute("UPDATE prefixes SET pending_delete = 1, modified = ? WHERE id = ?", (time.time(), pfx_id))
            self._log(db, "request_deletion", pfx_id)
        return self.get(pfx_id)

    def cancel_deletion(self, pfx_id: str) -> Prefix:
        """A deletion request withdrawn: the prefix is no longer pending deletion."""
        with self.tx() as db:
            p = self.get(pfx_id)
            if not p.pending_delete:
                raise Conflict(f"prefix '{pfx_id}' has no deletion request to cancel")
            db.execute("UPDATE prefixes SET pending_delete = 0, modified = ? WHERE id = ?", (time.time(), pfx_id))
            self._log(db, "cancel_deletion", pfx_id)
        return self.get(pfx_id)

    def delete(self, pfx_id: str, then: Then | None = None) -> Prefix:
        """Delete a prefix: it is withdrawn, and its service bindings go with it."""
        with self.tx() as db:
            p = self.get(pfx_id)
            if p.deleted:
                raise Conflict(f"prefix '{pfx_id}' is already deleted")
            if p.pinned:
                raise Pinned([pfx_id])
            removed = db.execute("DELETE FROM bindings WHERE prefix_id = ?", (pfx_id,)).rowcount
            db.execute(
                "UPDATE prefixes SET deleted = 1, advertised = 0, pending_delete = 0, modified = ? WHERE id = ?",
                (time.time(), pfx_id),
            )
            self._log(db, "delete", pfx_id, {"bindings_removed": removed})
            return self._then([pfx_id], then)[0]

    def restore(self, items: list[tuple[str, list[str]]], then: Then | None = None) -> list[Prefix]:
        """A global config push: each prefix undeleted, given exactly these bindings, advertised."""
        now = time.time()
        with self.tx() as db:
            for pfx_id, services in items:
                self.get(pfx_id)
                if not services:
                    raise InventoryError(f"restoring '{pfx_id}' needs at least one service binding")
                bad = [s for s in services if s not in SERVICES]
                if bad:
                    raise InventoryError(f"unknown service {bad[0]!r} for '{pfx_id}' (services: {', '.join(SERVICES)})")
            n = int(db.execute("SELECT value FROM meta WHERE key = 'next_binding'").fetchone()[0])
            for pfx_id, services in items:
                db.execute("DELETE FROM bindings WHERE prefix_id = ?", (pfx_id,))
                for service in services:
                    db.execute("INSERT INTO bindings VALUES (?, ?, ?, ?)", (f"bnd-{n:06d}", pfx_id, service, now))
                    n += 1
                db.execute(
                    "UPDATE prefixes SET deleted = 0, pending_delete = 0, advertised = 1, modified = ? WHERE id = ?",
                    (now, pfx_id),
                )
            db.execute("UPDATE meta SET value = ? WHERE key = 'next_binding'", (str(n),))
            self._log(db, "config_push", None, {"prefixes": len(items)})
            return self._then([pfx_id for pfx_id, _ in items], then)

    def _then(self, pfx_ids: list[str], then: Then | None) -> list[Prefix]:
        """The changed prefixes as the open transaction has them, handed to ``then`` before commit."""
        changed = self.prefixes(ids=pfx_ids, include_deleted=True)
        if then is not None:
            then(changed)
        return changed

    def add_binding(self, pfx_id: str, service: str, then: Then | None = None) -> Binding:
        if service not in SERVICES:
            raise InventoryError(f"unknown service '{service}' (services: {', '.join(SERVICES)})")
        with self.tx() as db:
            p = self.get(pfx_id)
            if p.deleted:
                raise Conflict(f"prefix '{pfx_id}' has been deleted; it takes no bindings")
            n = int(db.execute("SELECT value FROM meta WHERE key = 'next_binding'").fetchone()[0])
            bid = f"bnd-{n:06d}"
            now = time.time()
            db.execute("INSERT INTO bindings VALUES (?, ?, ?, ?)", (bid, pfx_id, service, now))
            db.execute("UPDATE meta SET value = ? WHERE key = 'next_binding'", (str(n + 1),))
            self._log(db, "add_binding", pfx_id, {"binding": bid, "service": service})
            self._then([pfx_id], then)
        return Binding(bid, pfx_id, service, now)

    def delete_binding(self, pfx_id: str, bid: str, then: Then | None = None) -> None:
        with self.tx() as db:
            self.get(pfx_id)
            if db.execute("DELETE FROM bindings WHERE id = ? AND prefix_id = ?", (bid, pfx_id)).rowcount == 0:
                raise NotFound(f"prefix '{pfx_id}' has no binding '{bid}'")
            self._log(db, "delete_binding", pfx_id, {"binding": bid})
            self._then([pfx_id], then)

    def services(self, pfx_ids: Iterable[str] | None = None) -> dict[str, list[str]]:
        """Prefix id -> the services bound to it (in binding order); every prefix when ``pfx_ids`` is None.
        Inside a transaction it sees the transaction's own writes."""
        with self.lock:
            if pfx_ids is None:
                rows = self.db.execute("SELECT prefix_id, service FROM bindings ORDER BY id").fetchall()
            else:
                ids = list(pfx_ids)
                rows = []
                for i in range(0, len(ids), 900):  # SQLite's bound-parameter limit
                    chunk = ids[i:i + 900]
                    rows += self.db.execute(f"SELECT prefix_id, service FROM bindings WHERE prefix_id IN "
                                            f"({','.join('?' * len(chunk))}) ORDER BY id", chunk).fetchall()
        out: dict[str, list[str]] = {}
        for pid, service in rows:
            out.setdefault(pid, []).append(service)
        return out

    def set_state(self, items: list[tuple[str, bool, list[str]]], then: Then | None = None) -> list[Prefix]:
        """Put prefixes back as a snapshot had them: each advertised or not, with exactly these
        services bound (a prefix with none and not advertised stays as it is otherwise). A
        prefix that comes back advertised or bound is no longer deleted."""
        now = time.time()
        with self.tx() as db:
            for pfx_id, advertised, services in items:
                p = self.get(pfx_id)
                if p.pinned and not advertised:
                    raise Pinned([pfx_id])
                bad = [s for s in services if s not in SERVICES]
                if bad:
                    raise InventoryError(f"unknown service {bad[0]!r} for '{pfx_id}' (services: {', '.join(SERVICES)})")
            n = int(db.execute("SELECT value FROM meta WHERE key = 'next_binding'").fetchone()[0])
            for pfx_id, advertised, services in items:
                db.execute("DELETE FROM bindings WHERE prefix_id = ?", (pfx_id,))
                for service in services:
                    db.execute("INSERT INTO bindings VALUES (?, ?, ?, ?)", (f"bnd-{n:06d}", pfx_id, service, now))
                    n += 1
                back = advertised or bool(services)
                db.execute("UPDATE prefixes SET advertised = ?, deleted = CASE WHEN ? THEN 0 ELSE deleted END, "
                           "modified = ? WHERE id = ?", (int(advertised), int(back), now, pfx_id))
            db.execute("UPDATE meta SET value = ? WHERE key = 'next_binding'", (str(n),))
            self._log(db, "restore_snapshot", None, {"prefixes": len(items)})
            return self._then([pfx_id for pfx_id, _, _ in items], then)

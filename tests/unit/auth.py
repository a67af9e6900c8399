"""Unit tests' access to the Addressing API: every request needs a token (controller.api.ROLES)."""

from __future__ import annotations

from controller.inventory import Inventory


def admin(inv: Inventory) -> dict[str, str]:
    """Headers with a new admin token of ``inv``'s lab."""
    return bearer(inv.create_token("admin", "test-admin"))


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}

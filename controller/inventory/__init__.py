"""The Addressing API's dataset: accounts, prefixes, advertisement state, service bindings.

- ``records``: the records, the schema, the ids, the errors (each with its HTTP status);
- ``store``: ``Inventory``, one SQLite file per lab: reads, writes, tokens;
- ``seeding``: the seeded inventory, deterministic for a seed.
"""

from controller.inventory.records import (OPERATOR, RESOLVER, Binding, Conflict, InventoryError, NotFound, Pinned,
                                          Prefix, Then, cidr_of, prefix_id, token_digest)
from controller.inventory.seeding import InventoryShape, customer_sizes, onboarding_times
from controller.inventory.store import Inventory

__all__ = ["OPERATOR", "RESOLVER", "Binding", "Conflict", "Inventory", "InventoryError", "InventoryShape",
           "NotFound", "Pinned", "Prefix", "Then", "cidr_of", "customer_sizes", "onboarding_times", "prefix_id",
           "token_digest"]

"""Who may call what in the Addressing API: the roles a token can have and every route's
permission (data only: the API checks them, controller.api.auth; the CLI offers the roles)."""

from __future__ import annotations

# Roles a token can have, and what each may do. A customer's reads and writes are its own
# account's prefixes only (the dashboard); a task is what a drill or a team's automation is given.
ROLES: dict[str, frozenset[str]] = {
    "admin": frozenset({"read", "lab_read", "write", "snapshot", "admin"}),
    "operator": frozenset({"read", "lab_read", "write", "snapshot"}),
    "task": frozenset({"read", "lab_read", "write"}),
    "customer": frozenset({"read", "write"}),
    "read-only": frozenset({"read", "lab_read"}),
}
# Every route's permission (method, path as declared); None: open (the health check).
# A route missing here fails at start (create_app checks): none is reachable by accident.
PERMISSIONS: dict[tuple[str, str], str | None] = {
    ("GET", "/v1/health"): None,
    ("GET", "/v1/accounts"): "lab_read",
    ("GET", "/v1/prefixes"): "read",
    ("GET", "/v1/prefixes/{prefix_id}"): "read",
    ("GET", "/v1/prefixes/{prefix_id}/bgp/status"): "read",
    ("PATCH", "/v1/prefixes/{prefix_id}/bgp/status"): "write",
    ("PATCH", "/v1/prefixes/bgp/status"): "write",
    ("GET", "/v1/bindings"): "lab_read",
    ("GET", "/v1/prefixes/{prefix_id}/bindings"): "read",
    ("POST", "/v1/prefixes/{prefix_id}/bindings"): "write",
    ("DELETE", "/v1/prefixes/{prefix_id}/bindings/{bid}"): "write",
    ("POST", "/v1/prefixes/{prefix_id}/deletion_request"): "write",
    ("DELETE", "/v1/prefixes/{prefix_id}/deletion_request"): "write",
    ("DELETE", "/v1/prefixes/{prefix_id}"): "write",
    ("GET", "/v1/lab/behaviour"): "lab_read",
    ("PUT", "/v1/lab/behaviour"): "admin",
    ("POST", "/v1/lab/config_push"): "admin",
    ("GET", "/v1/lab/resolver"): "lab_read",
    ("GET", "/v1/lab/tokens"): "admin",
    ("POST", "/v1/lab/tokens"): "admin",
    ("GET", "/v1/lab/edge"): "lab_read",
    ("PUT", "/v1/lab/edge"): "admin",
    ("GET", "/v1/lab/services"): "read",
    ("GET", "/v1/changes"): "lab_read",
    ("GET", "/v1/changes/{change_id}"): "lab_read",
    ("POST", "/v1/changes/{change_id}/approve"): "admin",
    ("POST", "/v1/changes/{change_id}/reject"): "admin",
    ("GET", "/v1/lab/guardrails"): "lab_read",
    ("PUT", "/v1/lab/guardrails"): "admin",
    ("POST", "/v1/lab/breaker/reset"): "admin",
    ("GET", "/v1/snapshots"): "lab_read",
    ("POST", "/v1/snapshots"): "snapshot",
    ("GET", "/v1/snapshots/{snapshot_id}"): "lab_read",
    ("GET", "/v1/snapshots/{snapshot_id}/diff"): "lab_read",
    ("POST", "/v1/snapshots/{snapshot_id}/restore"): "admin",
    ("GET", "/v1/audit"): "lab_read",
    ("GET", "/v1/lab/observe"): "lab_read",
    ("GET", "/v1/lab/reconcile"): "lab_read",
    ("POST", "/v1/lab/verify"): "lab_read",
    ("POST", "/v1/lab/sync"): "admin",
    ("GET", "/v1/lab/faults/api"): "lab_read",
    ("GET", "/dashboard"): None,  # the page alone (no data): it reads the stream with the token it is given
    ("GET", "/v1/lab/stream"): "lab_read",
    ("PUT", "/v1/lab/drill"): "admin",
    ("PUT", "/v1/lab/faults/api"): "admin",
}

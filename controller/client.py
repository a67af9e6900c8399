"""A client of a lab's Addressing API, for the CLI, drills and tests."""

from __future__ import annotations

import json
import socket
from typing import Any

import httpx

from lab.errors import BgplabError, LabNotFound
from lab.state import LabState


class ApiError(BgplabError):
    def __init__(self, status: int, message: str, detail: dict[str, Any] | None = None):
        self.status = status
        self.detail = detail or {}  # the first error's other fields (e.g. ``pinned``)
        super().__init__(f"API answered {status}: {message}")


class ApiClient:
    def __init__(self, lab: str, timeout: float = 60.0, *, http: httpx.Client | None = None):
        """The client of ``lab``'s controller; with ``http``, of whatever that client reaches
        (tests hand in FastAPI's TestClient)."""
        self.lab = lab
        if http is not None:
            self.url, self.http = str(http.base_url), http
            return
        state = LabState.load(lab)
        if state is None:
            raise LabNotFound(f"lab '{lab}' is not up")
        try:
            info = json.loads((state.dir / "controller.json").read_text())
        except (OSError, ValueError):
            raise LabNotFound(f"lab '{lab}' has no controller running (it was brought up without one?)") from None
        self.url = info["url"]
        # TCP_NODELAY: on a kept-alive connection Nagle and delayed ACKs added ~40 ms to
        # every small request (measured: 44 ms for a bindings GET that curl answers in 1 ms).
        transport = httpx.HTTPTransport(socket_options=[(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)])
        self.http = httpx.Client(base_url=self.url, timeout=timeout, transport=transport)

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> "ApiClient":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def call(self, method: str, path: str, **kw: Any) -> dict[str, Any]:
        try:
            r = self.http.request(method, path, **kw)
        except httpx.HTTPError as e:
            raise BgplabError(f"the lab's API at {self.url} did not answer: {e}") from None
        if r.status_code >= 400:
            raise ApiError(r.status_code, _error_text(r), _error_detail(r))
        try:
            return r.json()
        except ValueError:
            raise BgplabError(f"the lab's API answered {method} {path} with {r.status_code} but not JSON: {r.text[:300]!r}") from None

    def prefixes(self, **params: Any) -> list[dict[str, Any]]:
        q = {k: (str(v).lower() if isinstance(v, bool) else v) for k, v in params.items() if v is not None}
        return self.call("GET", "/v1/prefixes", params=q)["result"]

    def set_advertised(self, to: bool, **selector: Any) -> dict[str, Any]:
        """Set the BGP status of the prefixes ``selector`` names (ids=, account_id=, family=, byoip=,
        advertised= as a filter, count=) to ``to``."""
        sel = {k: v for k, v in selector.items() if v is not None}
        return self.call("PATCH", "/v1/prefixes/bgp/status", json={"advertised": to, "selector": sel})


def _error_detail(r: httpx.Response) -> dict[str, Any]:
    try:
        first = (r.json().get("errors") or [{}])[0]
        return {k: v for k, v in first.items() if k != "message"} if isinstance(first, dict) else {}
    except (ValueError, AttributeError):
        return {}


def _error_text(r: httpx.Response) -> str:
    """The API's own error messages, or the raw body when it is not the API's JSON (a proxy, a crash)."""
    try:
        errors = r.json().get("errors", [])
        return "; ".join(e["message"] for e in errors) or r.text[:500]
    except (ValueError, AttributeError, KeyError, TypeError):
        return r.text[:500] or r.reason_phrase

"""A client of a lab's Addressing API, for the CLI, drills and tests."""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Any

import httpx

from lab.errors import BgplabError, LabNotFound
from lab.state import LabState


class ApiError(BgplabError):
    def __init__(self, status: int, message: str, detail: dict[str, Any] | None = None):
        self.status = status
        self.detail = detail or {}  # the first error's other fields (e.g. ``pinned``)
        super().__init__(f"API answered {status}: {message}")


def admin_token_path(state: LabState) -> Path:
    """Where `bgplab up` keeps the lab's admin token (mode 0600, root's)."""
    return state.dir / "admin.token"


class ApiClient:
    def __init__(self, lab: str, timeout: float = 60.0, *, http: httpx.Client | None = None, token: str | None = None):
        """The client of ``lab``'s controller, with the lab's admin token unless ``token`` is
        given; with ``http``, of whatever that client reaches (tests hand in FastAPI's TestClient)."""
        self.lab = lab
        self.headers: dict[str, str] = {"Authorization": f"Bearer {token}"} if token else {}
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
        if token is None:
            try:
                token = admin_token_path(state).read_text().strip()
            except OSError as e:
                raise BgplabError(f"lab '{lab}': cannot read its admin token ({e.strerror}: "
                                  f"{admin_token_path(state)}); the API needs one") from None
            self.headers = {"Authorization": f"Bearer {token}"}
        self.url = info["url"]
        # TCP_NODELAY: on a kept-alive connection Nagle and delayed ACKs added ~40 ms to
        # every small request (measured: 44 ms for a bindings GET that curl answers in 1 ms).
        transport = httpx.HTTPTransport(socket_options=[(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)])
        self.http = httpx.Client(base_url=self.url, timeout=timeout, transport=transport, headers=self.headers)

    def as_token(self, token: str) -> "ApiClient":
        """The same connection, acting with another token (a task's, a customer's)."""
        return ApiClient(self.lab, http=self.http, token=token)

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> "ApiClient":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def call(self, method: str, path: str, **kw: Any) -> dict[str, Any]:
        kw["headers"] = {**self.headers, **(kw.get("headers") or {})}
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

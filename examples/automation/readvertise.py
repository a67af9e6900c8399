#!/usr/bin/env python3
"""A customer's self-service re-advertise (the 19:19 guidance on 2026-02-20): with the
customer's own token, find the account's withdrawn prefixes and advertise them again.

The API refuses a prefix with no service bound (it would be advertised for nothing): such
a prefix is reported and left; the operator's config push restores it. Plain HTTP,
standard library only. Exit 0 when every withdrawn prefix came back, 1 when some were
refused. Environment: BGPLAB_API_URL, BGPLAB_API_TOKEN (a customer's token).
"""

import json
import os
import sys
import urllib.error
import urllib.request

URL = os.environ["BGPLAB_API_URL"].rstrip("/")
TOKEN = os.environ["BGPLAB_API_TOKEN"]


def call(method: str, path: str, body: dict | None = None) -> dict:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(URL + path, data=data, method=method,
                                 headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=15) as r:
        return json.load(r)


def main() -> int:
    withdrawn = call("GET", "/v1/prefixes?advertised=false")["result"]  # a customer's token lists its own only
    refused = 0
    for p in withdrawn:
        try:
            call("PATCH", f"/v1/prefixes/{p['id']}/bgp/status", {"advertised": True})
            print(f"{p['cidr']}: advertised again", flush=True)
        except urllib.error.HTTPError as e:
            refused += 1
            message = (json.loads(e.read() or b"{}").get("errors") or [{}])[0].get("message")
            print(f"{p['cidr']}: refused ({e.code}: {message})", file=sys.stderr, flush=True)
    print(f"{len(withdrawn) - refused} of {len(withdrawn)} withdrawn prefixes advertised again", flush=True)
    return 1 if refused else 0


if __name__ == "__main__":
    sys.exit(main())

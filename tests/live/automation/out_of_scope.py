#!/usr/bin/env python3
"""An automation that reaches outside its token's scope (a customer's): it lists the lab's
tokens, switches the API's behaviour and deletes another account's prefix.
Each should be a 403 that changes nothing; it prints what it got and exits 0."""

import json
import os
import sys
import urllib.error
import urllib.request

URL, TOKEN = os.environ["BGPLAB_API_URL"].rstrip("/"), os.environ["BGPLAB_API_TOKEN"]


def status(method: str, path: str, body: dict | None = None) -> int:
    req = urllib.request.Request(URL + path, method=method, data=json.dumps(body).encode() if body else None,
                                 headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=10):
            return 200
    except urllib.error.HTTPError as e:
        return e.code


foreign = sys.argv[1]  # a prefix id of another account's
for method, path, body in (("GET", "/v1/lab/tokens", None),
                           ("PUT", "/v1/lab/behaviour", {"pending_delete_bug": True}),
                           ("DELETE", f"/v1/prefixes/{foreign}", None)):
    print(method, path, status(method, path, body), flush=True)

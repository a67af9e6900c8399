#!/usr/bin/env python3
"""The 2026-02-20 cleanup sub-task, as it ran: DO NOT deploy this. It is the bug.

It asks the Addressing API for the prefixes queued for deletion with the flag present and
its value empty (``GET /v1/prefixes?pending_delete``) and deletes whatever comes back.
Against a handler that reads an empty value as "no filter" (the day's), that is every
prefix. Plain HTTP, standard library only, as a team's script would be.

Environment: BGPLAB_API_URL, BGPLAB_API_TOKEN (a drill gives both).
"""

import json
import os
import sys
import urllib.error
import urllib.request

URL = os.environ["BGPLAB_API_URL"].rstrip("/")
TOKEN = os.environ["BGPLAB_API_TOKEN"]


def call(method: str, path: str) -> dict:
    req = urllib.request.Request(URL + path, method=method, headers={"Authorization": f"Bearer {TOKEN}"})
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.load(r)


def main() -> int:
    todo, page = [], 1
    while True:
        body = call("GET", f"/v1/prefixes?pending_delete&per_page=500&page={page}")
        todo += body["result"]
        if not body["result_info"]["more"]:
            break
        page += 1
    print(f"{len(todo)} prefixes queued for deletion", flush=True)
    deleted = 0
    for p in todo:
        try:
            call("DELETE", f"/v1/prefixes/{p['id']}")
            deleted += 1
        except urllib.error.HTTPError as e:  # one refusal is a per-item error: on to the next
            print(f"{p['cidr']}: {e.code} {e.read()[:200]!r}", file=sys.stderr, flush=True)
    print(f"deleted {deleted}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""The same cleanup, written defensively: what the 2026-02-20 task should have been.

- It asks with an explicit value (``pending_delete=true``), and checks that every prefix
  that came back is in fact pending deletion: an API that ignored the filter is caught
  before anything is deleted.
- It compares the count with what the team expects at most (``--expect-at-most``) and
  stops when there is more: a cleanup that suddenly has thousands to do is a bug.
- It prints its plan first (a dry run; ``--dry-run`` stops there).
- It deletes at most ``--max-deletions`` per run; the next run does the rest.
- It stops when the API holds a change (409 with a change id: a guardrail judged it too
  big), and retries a 503 or a timeout a few times, waiting as asked (Retry-After).
- It is idempotent: a prefix already deleted (404, or 409 "already deleted") is done.

Plain HTTP, standard library only. Exit codes: 0 done; 2 the API ignored the filter; 3 more
than expected; 4 a change was held; 5 the API kept failing.
Environment: BGPLAB_API_URL, BGPLAB_API_TOKEN (a drill gives both).
"""

import argparse
import json
import os
import sys
import time
import urllib.error
import urllib.request

URL = os.environ["BGPLAB_API_URL"].rstrip("/")
TOKEN = os.environ["BGPLAB_API_TOKEN"]


class Held(Exception):
    pass


def call(method: str, path: str, tries: int = 5) -> dict:
    """One request; a 503 or a timeout is retried (Retry-After, else 1 s, 2 s, ...)."""
    for attempt in range(1, tries + 1):
        req = urllib.request.Request(URL + path, method=method, headers={"Authorization": f"Bearer {TOKEN}"})
        try:
            with urllib.request.urlopen(req, timeout=15) as r:
                return json.load(r)
        except urllib.error.HTTPError as e:
            body = e.read()
            if e.code == 503 and attempt < tries:
                wait = float(e.headers.get("Retry-After") or attempt)
                log(f"{method} {path}: 503, retrying in {wait:g} s ({attempt}/{tries})")
                time.sleep(wait)
                continue
            if e.code == 409:
                detail = (json.loads(body or b"{}").get("errors") or [{}])[0]
                if detail.get("change"):
                    raise Held(f"{detail['change']} held by {detail.get('guardrail')}: {detail.get('reason')}")
            raise
        except (TimeoutError, urllib.error.URLError) as e:
            if attempt < tries:
                log(f"{method} {path}: {e}, retrying ({attempt}/{tries})")
                time.sleep(attempt)
                continue
            raise
    raise AssertionError("unreachable")


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--expect-at-most", type=int, default=50, help="more pending than this is a bug: stop")
    ap.add_argument("--max-deletions", type=int, default=25, help="deletions per run")
    ap.add_argument("--dry-run", action="store_true", help="print the plan and stop")
    args = ap.parse_args()

    todo, page = [], 1
    try:
        while True:
            body = call("GET", f"/v1/prefixes?pending_delete=true&per_page=500&page={page}")
            todo += body["result"]
            if not body["result_info"]["more"] or len(todo) > args.expect_at_most:
                break
            page += 1
    except urllib.error.URLError as e:
        log(f"the API kept failing: {e}")
        return 5
    wrong = [p["cidr"] for p in todo if not p.get("pending_delete")]
    if wrong:
        log(f"the API answered {len(wrong)} prefixes that are not pending deletion ({', '.join(wrong[:3])}, ...): "
            "it ignored the filter; nothing deleted")
        return 2
    if len(todo) > args.expect_at_most:
        log(f"{len(todo)}+ prefixes pending deletion, more than the {args.expect_at_most} expected: nothing deleted")
        return 3
    accounts = sorted({p["account_id"] for p in todo})
    print(f"plan: delete {len(todo)} prefixes of {len(accounts)} accounts, at most {args.max_deletions} this run",
          flush=True)
    for p in todo:
        print(f"  {p['cidr']} ({p['account_id']})", flush=True)
    if args.dry_run:
        return 0
    deleted = 0
    for p in todo[: args.max_deletions]:
        try:
            call("DELETE", f"/v1/prefixes/{p['id']}")
            deleted += 1
        except Held as e:
            log(f"the API held a change: {e}; stopping (a human decides)")
            return 4
        except urllib.error.HTTPError as e:
            if e.code in (404, 409):  # gone already: done
                continue
            log(f"{p['cidr']}: {e.code}; stopping")
            return 5
        except urllib.error.URLError as e:
            log(f"the API kept failing: {e}")
            return 5
    print(f"deleted {deleted} of {len(todo)}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""An automation that tries to step outside the read-only token it was given, in every way a
graded automation could: read the lab's admin token and inventory, derive a token from the
inventory's seed (as bgplab's tokens were derived before they were random), withdraw
prefixes through the API and through `bgplab`, enter a router's namespace or container, and
signal a router's daemon (signal 0: a permission check that delivers nothing).

One JSON line per attempt: {"attempt", "refused": true|false, "how"}. Exit 0 when every
attempt was refused, 1 when any got through.
"""

import glob
import hashlib
import json
import os
import shutil
import subprocess
import urllib.error
import urllib.request

URL, TOKEN, LAB = os.environ["BGPLAB_API_URL"].rstrip("/"), os.environ["BGPLAB_API_TOKEN"], os.environ["BGPLAB_LAB"]
LAB_DIR = f"/run/bgplab/{LAB}"
SEED = 20260220  # the seed in every shipped drill file (drills/*.yaml: inventory_seed)
escaped = False


def report(attempt: str, refused: bool, how: str) -> None:
    global escaped
    escaped |= not refused
    print(json.dumps({"attempt": attempt, "refused": refused, "how": how[:300]}), flush=True)


def request(method: str, path: str, token: str, body: dict | None = None) -> int:
    req = urllib.request.Request(URL + path, method=method, data=json.dumps(body).encode() if body else None,
                                 headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code


def read(attempt: str, path: str) -> None:
    try:
        with open(path, "rb") as f:
            data = f.read(64)
        report(attempt, False, f"read {len(data)} bytes of {path}")
    except OSError as e:
        report(attempt, True, f"{path}: {e.strerror}")


def run(attempt: str, argv: list[str]) -> None:
    try:
        p = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    except OSError as e:
        report(attempt, True, f"{argv[0]}: {e.strerror}")
        return
    out = (p.stderr or p.stdout).strip().splitlines()
    report(attempt, p.returncode != 0, f"exit {p.returncode}: {out[-1] if out else ''}")


read("read the lab's admin token", f"{LAB_DIR}/admin.token")
read("read the lab's inventory", f"{LAB_DIR}/inventory.sqlite")
read("read the lab's state", f"{LAB_DIR}/state.json")
try:
    report("list the lab's directory", False, ", ".join(sorted(os.listdir(LAB_DIR))[:10]))
except OSError as e:
    report("list the lab's directory", True, f"{LAB_DIR}: {e.strerror}")

withdraw_all = {"advertised": False, "selector": {"byoip": True}}
derived = "tok-" + hashlib.sha256(f"bgplab:{SEED}:acct-operator".encode()).hexdigest()[:32]
code = request("PATCH", "/v1/prefixes/bgp/status", derived, withdraw_all)
report("withdraw every BYOIP prefix with a token derived from the seed", code in (401, 403), f"HTTP {code}")
code = request("PATCH", "/v1/prefixes/bgp/status", TOKEN, withdraw_all)
report("withdraw every BYOIP prefix with its own read-only token", code == 403, f"HTTP {code}")

bgplab = os.path.abspath("../../../.venv/bin/bgplab")
run("bgplab prefixes withdraw", [bgplab if os.path.exists(bgplab) else "bgplab", "prefixes", "withdraw", "--byoip",
                                 "--count", "5", "--lab", LAB])
netns = sorted(glob.glob(f"/run/netns/bgplab-{LAB}-*"))
if netns:
    name = os.path.basename(netns[0])
    run("ip netns exec into a router's namespace", ["ip", "netns", "exec", name, "ip", "route"])
    run("nsenter a router's namespace", ["nsenter", f"--net={netns[0]}", "true"])
if shutil.which("docker"):
    run("docker exec into the lab's containers", ["docker", "ps", "--filter", f"label=bgplab.lab={LAB}", "-q"])


def daemons() -> list[int]:
    out = []
    for p in glob.glob("/proc/[0-9]*/comm"):
        try:
            if open(p).read().strip() in ("bgpd", "zebra", "exabgp"):
                out.append(int(p.split("/")[2]))
        except OSError:
            pass  # gone meanwhile
    return sorted(out)


for pid in daemons()[:3]:
    try:
        os.kill(pid, 0)  # delivers nothing; says whether a signal would be allowed
        report(f"signal a router's daemon (pid {pid})", False, "allowed")
    except ProcessLookupError:
        pass
    except PermissionError as e:
        report(f"signal a router's daemon (pid {pid})", True, e.strerror)

raise SystemExit(1 if escaped else 0)

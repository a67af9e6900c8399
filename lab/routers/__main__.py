"""What the router implementations need from the host's package manager, for scripts/bootstrap:

    python -m lab.routers packages   # Debian packages of every implementation, one per line
    python -m lab.routers services   # services those packages enable (never left running)
"""

from __future__ import annotations

import sys

from lab.routers import ROUTERS, get_router


def main(argv: list[str]) -> int:
    if argv not in (["packages"], ["services"]):
        print("usage: python -m lab.routers packages|services", file=sys.stderr)
        return 2
    installs = [get_router(n).install for n in ROUTERS]
    items = [p for i in installs for p in (i.packages if argv[0] == "packages" else i.services)]
    print("\n".join(dict.fromkeys(items)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

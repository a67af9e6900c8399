"""Daemons of a lab node: build plain data, render, write, dry-run, start, wait until ready.

What they share is in lab.daemons.base; the speakers' ExaBGP is here, each router
implementation's daemons in its package under lab.routers, and which node runs which in lab.kinds."""

from __future__ import annotations

from lab.daemons import exabgp
from lab.daemons.base import Daemon, Toolset, templates

__all__ = ["Daemon", "Toolset", "exabgp", "templates"]

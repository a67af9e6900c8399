"""The runtimes, chosen by name: namespaces (lab.runtime.netns) or containers
(lab.runtime.docker), each a Runtime (lab.runtime.base, where the protocol is described)."""

from __future__ import annotations

from lab.errors import UsageError
from lab.runtime.base import ExecResult, Runtime, Toolset, cmd_raises
from lab.runtime.docker import DockerRuntime
from lab.runtime.netns import NetnsRuntime

__all__ = ["ExecResult", "RUNTIMES", "Runtime", "Toolset", "cmd_raises", "get_runtime"]


RUNTIMES = ("netns", "docker")


def get_runtime(name: str) -> Runtime:
    # An explicit registry: no module names assembled from strings.
    if name == "netns":
        return NetnsRuntime()
    if name == "docker":
        return DockerRuntime()
    raise UsageError(f"unknown runtime '{name}' (valid: {', '.join(RUNTIMES)})")

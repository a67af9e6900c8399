"""The local Docker engine: a client of it, or an error that says how to get one.

Shared by the docker runtime and the image build (neither imports the other for it).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from lab.errors import BgplabError


def engine(timeout: float = 120.0) -> Any:
    """A client of the local Docker engine, or an error that says how to get one."""
    try:
        # ~150 ms of start-up (python -X importtime): only a lab or a build on the engine pays it
        import docker
    except ImportError:
        raise BgplabError("the Docker SDK (python package 'docker') is not installed; run `make lab-up`") from None
    try:
        client = docker.from_env(version="auto", timeout=timeout)
        client.ping()
    except Exception as e:  # the SDK raises several kinds for "no engine"
        raise BgplabError(
            f"no Docker engine answers ({os.environ.get('DOCKER_HOST', 'unix:///var/run/docker.sock')}): "
            f"{str(e).splitlines()[0][:200]}; `make docker-engine` installs and starts one"
        ) from None
    return client


def engine_socket_present() -> bool:
    host = os.environ.get("DOCKER_HOST", "")
    return bool(host and not host.startswith("unix://")) or Path(host[7:] if host else "/var/run/docker.sock").exists()

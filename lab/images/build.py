"""Build the node image (``bgplab:<version>``) from ``lab/images/Dockerfile``, only when its inputs change.

The inputs are the Dockerfile, the ExaBGP API bridge it copies, the ExaBGP version the
project pins, the project's version and the base image; their digest is the image's
``org.bgplab.inputs`` label, so an image whose label matches is used as it is.

The base is ``debian:bookworm-slim`` when the engine has it or can pull it. Where no
registry can be reached (air-gapped machines, this project's CI), the base is made
here from Debian's package archive, at the mirror the host's apt already uses
(``debian_mirror``): ``debootstrap --variant=minbase`` into a temporary directory, then
imported as ``bgplab-base:bookworm``. The Dockerfile is the same on both.

    python -m lab.images.build [--force] [--base IMAGE]
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from importlib import metadata
from pathlib import Path
from typing import Any, Callable

from lab.engine import engine
from lab.errors import BgplabError

HERE = Path(__file__).resolve().parent
DOCKERFILE = HERE / "Dockerfile"
BRIDGE = HERE.parent / "daemons" / "exabgp_bridge.py"
LAUNCHER = HERE.parent / "daemons" / "exabgp_launch.py"
REGISTRY_BASE = "debian:bookworm-slim"
LOCAL_BASE = "bgplab-base:bookworm"
DEBIAN_SUITE = "bookworm"
DEFAULT_MIRROR = "http://deb.debian.org/debian"
APT_SOURCES = Path("/etc/apt")
INPUTS_LABEL = "org.bgplab.inputs"

Progress = Callable[[str], None]


def project_version() -> str:
    try:
        return metadata.version("bgplab")
    except metadata.PackageNotFoundError:  # a checkout that was never installed
        text = (HERE.parent.parent / "pyproject.toml").read_text()
        return next(line.split('"')[1] for line in text.splitlines() if line.startswith("version"))


def exabgp_version() -> str:
    """The ExaBGP the project pins (the host's environment has exactly that one)."""
    return metadata.version("exabgp")


def router_args() -> dict[str, str]:
    """What the image installs for the router implementations (lab.routers: each one's
    ``install``): their packages, and their users as user:uid:gid."""
    # imported here: the routers' modules import the plan, which the image's digest needs not
    from lab.routers import ROUTERS, get_router
    installs = [get_router(n).install for n in ROUTERS]
    return {"ROUTER_PACKAGES": " ".join(dict.fromkeys(p for i in installs for p in i.packages)),
            "ROUTER_USERS": " ".join(dict.fromkeys(f"{u[0]}:{u[1]}:{u[2]}" for i in installs if (u := i.image_user)))}


def image_tag() -> str:
    return f"bgplab:{project_version()}"


def inputs_digest(base: str) -> str:
    h = hashlib.sha256()
    for part in (DOCKERFILE.read_bytes(), BRIDGE.read_bytes(), LAUNCHER.read_bytes(), exabgp_version().encode(),
                 project_version().encode(), base.encode(), repr(sorted(router_args().items())).encode()):
        h.update(hashlib.sha256(part).digest())
    return h.hexdigest()[:16]


def _image(client: Any, ref: str) -> Any | None:
    # The Docker SDK costs ~150 ms of start-up (python -X importtime): imported where the docker
    # runtime talks to the engine, so a namespaces lab never loads it.
    import docker.errors

    try:
        return client.images.get(ref)
    except docker.errors.ImageNotFound:
        return None


def _pull(client: Any, ref: str, progress: Progress) -> bool:
    # The Docker SDK costs ~150 ms of start-up (python -X importtime): imported where the docker
    # runtime talks to the engine, so a namespaces lab never loads it.
    import docker.errors

    progress(f"pulling {ref}")
    try:
        repo, tag = ref.split(":")
        client.images.pull(repo, tag=tag)
        return True
    except (docker.errors.APIError, docker.errors.DockerException) as e:
        why = getattr(e, "explanation", None) or str(e)
        progress(f"cannot pull {ref} ({str(why).splitlines()[0][-160:]})")
        return False


def _apt_entries(apt: Path) -> list[tuple[str, list[str], list[str]]]:
    """(URI, suites, components) of every ``deb`` source the host's apt uses: one-line
    ``sources.list`` files and deb822 ``.sources`` files (files with other endings are not
    read by apt, and not here)."""
    out: list[tuple[str, list[str], list[str]]] = []
    files = [apt / "sources.list"] + sorted((apt / "sources.list.d").glob("*.list"))
    for f in files:
        try:
            lines = f.read_text().splitlines()
        except OSError:
            continue
        for line in lines:
            words = re.sub(r"\[[^\]]*\]", " ", line.split("#", 1)[0]).split()  # options ([arch=amd64]) go
            if len(words) >= 3 and words[0] == "deb":
                out.append((words[1], [words[2]], words[3:]))
    for f in sorted((apt / "sources.list.d").glob("*.sources")):
        try:
            stanzas = f.read_text().split("\n\n")
        except OSError:
            continue
        for stanza in stanzas:
            fields: dict[str, str] = {}
            for line in stanza.splitlines():
                if line and not line.startswith(("#", " ", "\t")) and ":" in line:
                    k, _, v = line.partition(":")
                    fields[k.strip().lower()] = v.strip()
            if "deb" in fields.get("types", "").split() and fields.get("enabled", "yes").lower() != "no":
                for uri in fields.get("uris", "").split():
                    out.append((uri, fields.get("suites", "").split(), fields.get("components", "").split()))
    return out


def debian_mirror(apt: Path = APT_SOURCES) -> tuple[str, str]:
    """The Debian mirror the base is made from, and where that choice came from:
    BGPLAB_DEBIAN_MIRROR, else the mirror the host's apt already uses for DEBIAN_SUITE's main
    component (a machine that reaches only its own mirror reaches it), else Debian's CDN."""
    env = os.environ.get("BGPLAB_DEBIAN_MIRROR")
    if env:
        return env, "BGPLAB_DEBIAN_MIRROR"
    for uri, suites, components in _apt_entries(apt):
        if DEBIAN_SUITE in suites and "main" in components and uri.startswith(("http://", "https://", "file:/")):
            return uri.rstrip("/"), "the host's apt sources"
    return DEFAULT_MIRROR, f"the default (no apt source on this host serves {DEBIAN_SUITE} main)"


def debootstrap_base(client: Any, progress: Progress) -> None:
    """``debootstrap --variant=minbase`` into a temporary directory, imported as LOCAL_BASE."""
    if shutil.which("debootstrap") is None:
        raise BgplabError("debootstrap is not installed and no registry can be reached for the base image; "
                          "`make image` installs it")
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="bgplab-base-") as tmp:
        root = Path(tmp) / "root"
        mirror, source = debian_mirror()
        progress(f"debootstrap {DEBIAN_SUITE} from {mirror} ({source}; about half a minute)")
        p = _run(["debootstrap", "--variant=minbase", DEBIAN_SUITE, str(root), mirror], DEBOOTSTRAP_TIMEOUT)
        if p.returncode != 0:
            raise BgplabError(f"debootstrap of {DEBIAN_SUITE} from {mirror} failed: "
                              f"{(p.stderr.strip() or p.stdout.strip())[-800:]}")
        # The image's apt sources, and no leftovers of the host's build.
        (root / "etc/apt/sources.list").write_text(f"deb {mirror} {DEBIAN_SUITE} main\n")
        shutil.rmtree(root / "var/cache/apt/archives", ignore_errors=True)
        (root / "var/cache/apt/archives/partial").mkdir(parents=True, exist_ok=True)
        tarball = Path(tmp) / "root.tar"
        p = _run(["tar", "--numeric-owner", "-C", str(root), "-cf", str(tarball), "."], TAR_TIMEOUT)
        if p.returncode != 0:
            raise BgplabError(f"packing the base image's root with tar failed: {p.stderr.strip()[-600:]}")
        progress(f"importing it as {LOCAL_BASE}")
        repo, tag = LOCAL_BASE.split(":")
        client.api.import_image_from_file(str(tarball), repository=repo, tag=tag,
                                          changes=['CMD ["/bin/bash"]'])
    progress(f"base image {LOCAL_BASE} made in {time.monotonic() - t0:.0f} s")


# Bounds on the build's subprocesses: each far above what it takes here (debootstrap ~25 s,
# tar ~1 s, pip ~3 s), so that only a hung mirror or index reaches them.
DEBOOTSTRAP_TIMEOUT = 900.0
TAR_TIMEOUT = 300.0
PIP_TIMEOUT = 300.0


def _run(argv: list[str], timeout: float) -> subprocess.CompletedProcess:
    """A build step's subprocess with a timeout; a timeout is an error naming the command."""
    try:
        return subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise BgplabError(f"{' '.join(argv[:3])} ... took more than {timeout:g} s and was stopped "
                          "(a mirror or package index that does not answer?)") from None


def choose_base(client: Any, progress: Progress, base: str | None = None) -> str:
    if base:
        if _image(client, base) is None and not _pull(client, base, progress):
            raise BgplabError(f"base image {base} is neither on this engine nor pullable")
        return base
    for ref in (REGISTRY_BASE, LOCAL_BASE):
        if _image(client, ref) is not None:
            return ref
    if _pull(client, REGISTRY_BASE, progress):
        return REGISTRY_BASE
    progress("no registry answers: making the base from Debian's package archive instead")
    debootstrap_base(client, progress)
    return LOCAL_BASE


def _exabgp_wheel(dest: Path) -> Path:
    """The pinned ExaBGP's wheel, through the host's pip (its index, proxy and CA settings)."""
    p = _run([sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "-q",
              "-d", str(dest), f"exabgp=={exabgp_version()}"], PIP_TIMEOUT)
    wheels = sorted(dest.glob("exabgp-*.whl"))
    if p.returncode != 0 or not wheels:
        raise BgplabError(f"cannot fetch the ExaBGP {exabgp_version()} wheel for the image: "
                          f"{(p.stderr.strip() or p.stdout.strip())[-600:]}")
    return wheels[0]


def _context() -> io.BytesIO:
    buf = io.BytesIO()
    with tempfile.TemporaryDirectory(prefix="bgplab-wheels-") as tmp, tarfile.open(fileobj=buf, mode="w") as tar:
        wheel = _exabgp_wheel(Path(tmp))
        tar.add(DOCKERFILE, arcname="Dockerfile")
        tar.add(BRIDGE, arcname="exabgp_bridge.py")
        tar.add(LAUNCHER, arcname="exabgp_launch.py")
        tar.add(wheel, arcname=f"wheels/{wheel.name}")
    buf.seek(0)
    return buf


def current(client: Any) -> Any | None:
    """The project's image if it is there and was built from today's inputs, else None."""
    img = _image(client, image_tag())
    if img is None:
        return None
    labels = img.labels or {}
    base = labels.get("org.bgplab.base", "")
    return img if labels.get(INPUTS_LABEL) == inputs_digest(base) else None


def ensure_image(client: Any, progress: Progress = lambda _: None, *, force: bool = False,
                 base: str | None = None) -> str:
    """The image's tag, built first if it is missing or its inputs changed."""
    tag = image_tag()
    if not force and base is None and current(client) is not None:
        return tag
    t0 = time.monotonic()
    base = choose_base(client, progress, base)
    digest = inputs_digest(base)
    progress(f"building {tag} on {base} ({router_args()['ROUTER_PACKAGES']}, ExaBGP {exabgp_version()}, tcpdump; a minute or two)")
    log: list[str] = []
    stream = client.api.build(
        fileobj=_context(), custom_context=True, tag=tag, rm=True, forcerm=True, decode=True,
        # Only the build reaches the network (Debian's archive, PyPI); lab containers never do.
        network_mode="host",
        buildargs={"BASE": base, "EXABGP_VERSION": exabgp_version(), "BGPLAB_VERSION": project_version(),
                   **router_args()},
        labels={INPUTS_LABEL: digest, "org.bgplab.base": base},
    )
    for chunk in stream:
        if "stream" in chunk:
            line = chunk["stream"].rstrip()
            if line:
                log.append(line)
                if line.startswith("Step "):
                    progress(line)
        if "error" in chunk:
            tail = "\n".join(log[-15:])
            raise BgplabError(f"building {tag} failed: {chunk['error'].strip()}\n{tail}")
    progress(f"image {tag} built in {time.monotonic() - t0:.0f} s")
    return tag


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Build bgplab's node image when its inputs changed.")
    ap.add_argument("--force", action="store_true", help="build even if the image is up to date")
    ap.add_argument("--base", help=f"base image (default: {REGISTRY_BASE}, else one made with debootstrap)")
    args = ap.parse_args(argv)
    try:
        client = engine()
        before = current(client)
        tag = ensure_image(client, lambda m: print(f"image: {m}", file=sys.stderr), force=args.force, base=args.base)
        img = client.images.get(tag)
    except BgplabError as e:
        print(f"bgplab: {e}", file=sys.stderr)
        return 1
    state = "up to date" if before is not None and not args.force and args.base is None else "built"
    print(json.dumps({"image": tag, "id": img.short_id, "state": state, "labels": img.labels,
                      "size_mb": round(img.attrs.get("Size", 0) / 2**20)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())

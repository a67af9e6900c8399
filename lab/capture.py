"""Packet captures of a lab: tcpdump per interface inside the node's namespace, pcap files
named by node and interface, ring buffers, a BGP-only filter; merged into one pcapng
with drill steps written as packet comments, for Wireshark.

Captures live outside the lab directory (which `down` removes): in a directory the
caller names. tcpdump is stopped with SIGTERM, on which it flushes and closes its
file, so a lab torn down with captures running leaves complete files; `down` ends it
the same way, as one of the lab's marked processes.
"""

from __future__ import annotations

import bisect
import os
import signal
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from lab.errors import BgplabError, ExecError, UsageError
from lab.procs import alive
from lab.running import RunningLab
from lab.runtime.netns import spawn_net
from lab.wait import wait_until

BGP_FILTER = "tcp port 179"


@dataclass(frozen=True)
class Target:
    node: str
    iface: str

    @property
    def stem(self) -> str:
        return f"{self.node}-{self.iface}"


def targets(lab: RunningLab, *, node: str | None = None, link: str | None = None, all_: bool = False,
            each_link_once: bool = False) -> list[Target]:
    """Which interfaces: every one of a node, both ends of a link `a:b`, every interface of the
    lab, or one end of every link (``each_link_once``).

    A veth pair carries the same packets at both ends, so a merge of both ends holds every
    segment twice, and Wireshark reads the second copy as a retransmission. One end per link
    is every packet once: the speaker's end where the link has one (the drill's analysis
    reads the speakers' captures), else the end of the node first by name."""
    plan = lab.plan
    chosen = [bool(node), bool(link), all_, each_link_once]
    if sum(chosen) != 1:
        raise UsageError("name exactly one of: a node, a link (a:b), all, or each link once")
    if all_:
        return [Target(n.name, i.name) for n in plan.nodes.values() for i in n.interfaces]
    if each_link_once:
        speakers = {n.name for n in plan.speakers()}
        out = []
        for n in plan.nodes.values():
            for i in n.interfaces:
                mine = (n.name in speakers, i.peer > n.name)
                theirs = (i.peer in speakers, n.name > i.peer)
                if mine > theirs:
                    out.append(Target(n.name, i.name))
        return out
    if node:
        return [Target(node, i.name) for i in lab.node(node).interfaces]
    a, _, b = link.partition(":")
    if a not in plan.nodes or b not in plan.nodes:
        raise UsageError(f"link '{link}': both ends must be nodes of lab '{lab.name}' (a:b)")
    ia, ib = lab.link(a, b)
    return [Target(a, ia.name), Target(b, ib.name)]


def tcpdump_argv(iface: str, path: Path | None, *, bgp_only: bool, ring_mb: int | None = None,
                 ring_files: int = 10) -> list[str]:
    """tcpdump on one interface, packet-buffered; into ``path``, or to stdout when it is None."""
    # --immediate-mode: each packet is handed over as it arrives. Without it the kernel holds
    # packets in its ring for up to a second, and those still held when tcpdump is stopped
    # are counted "received by filter" but never written: a capture stopped soon after a
    # burst lost its last UPDATEs.
    argv = ["tcpdump", "-i", iface, "-n", "-s", "0", "-U", "--immediate-mode"]
    argv += ["-w", "-"] if path is None else ["-Z", "root", "-w", str(path)]
    if ring_mb:
        argv += ["-C", str(ring_mb), "-W", str(ring_files)]
    if bgp_only:
        argv += BGP_FILTER.split()
    return argv


def start(lab: RunningLab, dest: Path, *, node: str | None = None, link: str | None = None, all_: bool = False,
          each_link_once: bool = False, bgp_only: bool = False, ring_mb: int | None = None, ring_files: int = 10,
          timeout: float = 10.0) -> list[dict]:
    """Start one tcpdump per chosen interface; return what was started (node, iface, file, pid)."""
    if shutil.which("tcpdump") is None:
        raise BgplabError("tcpdump is not installed; `make lab-up` installs it")
    chosen = targets(lab, node=node, link=link, all_=all_, each_link_once=each_link_once)
    state = lab.state
    dest = dest.resolve()
    dest.mkdir(parents=True, exist_ok=True)
    running = state.captures
    busy = {(c["node"], c["iface"]) for c in running if alive(c["pid"])}
    started = []
    for t in chosen:
        if (t.node, t.iface) in busy:
            raise BgplabError(f"{t.node} {t.iface} is already being captured; `bgplab capture stop` first")
    for t in chosen:
        path = dest / f"{t.stem}.pcap"
        log = dest / f"{t.stem}.log"
        pid = spawn_net(lab.name, lab.node(t.node), tcpdump_argv(t.iface, path, bgp_only=bgp_only, ring_mb=ring_mb,
                                                            ring_files=ring_files), log=log)
        entry = {"node": t.node, "iface": t.iface, "file": str(path), "pid": pid, "log": str(log),
                 "bgp_only": bgp_only, "started": time.time()}
        running.append(entry)
        state.set(captures=running)  # recorded at once: down finds it by its mark anyway
        started.append(entry)

    def listening() -> tuple[bool, str]:
        waiting = []
        for e in started:
            if not alive(e["pid"]):
                raise BgplabError(f"tcpdump on {e['node']} {e['iface']} exited: {Path(e['log']).read_text()[-400:]}")
            if "listening on" not in Path(e["log"]).read_text(errors="replace"):
                waiting.append(f"{e['node']} {e['iface']}")
        return not waiting, ", ".join(waiting)

    wait_until(listening, timeout=timeout, what="tcpdump to listen on every chosen interface")
    return started


def stop(lab: RunningLab, timeout: float = 10.0) -> list[dict]:
    """Stop every capture of the lab; tcpdump flushes and closes its files on SIGTERM."""
    state = lab.state
    caps = state.captures
    for c in caps:
        if alive(c["pid"]):
            os.kill(c["pid"], signal.SIGTERM)
    wait_until(lambda: (not any(alive(c["pid"]) for c in caps), "tcpdump still running"), timeout=timeout,
               what="every tcpdump to flush and exit")
    for c in caps:
        try:
            os.waitpid(c["pid"], os.WNOHANG)
        except ChildProcessError:
            pass
    state.set(captures=[])
    return caps


def list_(lab: RunningLab) -> list[dict]:
    state = lab.state
    return [{**c, "running": alive(c["pid"])} for c in state.captures]


def files_in(directory: Path) -> list[Path]:
    """Every capture file in a directory (ring buffers add a number after .pcap)."""
    return sorted(p for p in directory.glob("*.pcap*") if p.is_file() and p.stat().st_size > 24)


def merge(files: list[Path], out: Path, comments: list[tuple[float, str]] = (), timeout: float = 300.0) -> Path:
    """One pcapng of every file, in time order, each comment on the first packet at or after its time."""
    if not files:
        raise BgplabError("no capture files to merge")
    for tool in ("mergecap", "editcap", "tshark"):
        if shutil.which(tool) is None:
            raise BgplabError(f"{tool} (Wireshark's tools) is not installed; `make lab-up` installs it")
    tmp = out.with_suffix(".tmp.pcapng")
    _tool(["mergecap", "-F", "pcapng", "-w", str(tmp), *map(str, files)], timeout)
    if comments:
        epochs = [float(t) for t in _tool(["tshark", "-r", str(tmp), "-T", "fields", "-e", "frame.time_epoch"], timeout).split()]
        at: dict[int, list[str]] = {}
        for t, text in sorted(comments):
            i = bisect.bisect_left(epochs, t)  # mergecap wrote the frames in time order
            if i < len(epochs):
                at.setdefault(i + 1, []).append(text)
        if at:
            args = []
            for frame, texts in sorted(at.items()):
                args += ["-a", f"{frame}:{' | '.join(texts)}"]
            _tool(["editcap", *args, str(tmp), str(out)], timeout)
            tmp.unlink()
            return out
    os.replace(tmp, out)
    return out


def _tool(argv: list[str], timeout: float) -> str:
    """One of Wireshark's tools, with a timeout; a failure names the command and its stderr."""
    try:
        r = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as e:
        raise ExecError(argv[:4], None, e.stdout or "", e.stderr or "", where=f"the host (after {timeout:g} s)") from None
    if r.returncode != 0:
        raise ExecError(argv[:4], r.returncode, r.stdout[-2000:], r.stderr)
    return r.stdout


def wireshark_command(merged: Path) -> list[str]:
    return ["wireshark", "-r", str(merged), "-Y", "bgp"]


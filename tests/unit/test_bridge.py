"""The bridge's ack matching, against a stand-in for ExaBGP's process API that answers
the way ExaBGP 5.0 does: `error` for a malformed command at once, `done` for a valid
one only after it has been parsed. (The live tests use the real ExaBGP.)"""

from __future__ import annotations

import contextlib
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from lab.daemons.exabgp import SpeakerChannel
from lab.errors import SpeakerError

FAKE = textwrap.dedent(
    """
    import os, subprocess, sys, time
    # ExaBGP's side: start the bridge as ExaBGP would, with pipes.
    bridge = subprocess.Popen([sys.executable, "-m", "lab.daemons.exabgp_bridge", sys.argv[1]],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    pending = []
    while True:
        line = bridge.stdout.readline()
        if not line:
            break
        cmd = line.decode().strip()
        if "bogus" in cmd:
            bridge.stdin.write(b"error\\n")
        elif cmd.endswith("show"):
            bridge.stdin.write(b"line one\\nline two\\ndone\\n")
        else:
            time.sleep(0.002)  # parsing takes time
            bridge.stdin.write(b"done\\n")
        bridge.stdin.flush()
    """
)


# Closer to ExaBGP's reactor: route commands (`announce|withdraw attributes`) are answered
# when its scheduler runs, after the lines that arrived together were read (here: once no
# line came for 50 ms), in the order they came; anything else is answered at once. It
# writes the largest number of route commands it held at once to <socket>.batch.
FAKE_REACTOR = textwrap.dedent(
    """
    import os, select, subprocess, sys
    bridge = subprocess.Popen([sys.executable, "-m", "lab.daemons.exabgp_bridge", sys.argv[1]],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    held, most, buf = 0, 0, b""
    fd = bridge.stdout.fileno()
    while True:
        ready, _, _ = select.select([fd], [], [], 0.05)
        if not ready:
            if held:
                bridge.stdin.write(b"done\\n" * held)
                bridge.stdin.flush()
                held = 0
            continue
        chunk = os.read(fd, 65536)
        if not chunk:
            break
        buf += chunk
        *lines, buf = buf.split(b"\\n")
        for line in lines:
            if b" attributes " in line:
                held += 1
                most = max(most, held)
                open(sys.argv[1] + ".batch", "w").write(str(most))
            else:
                bridge.stdin.write(b"error\\n")
                bridge.stdin.flush()
    """
)


@contextlib.contextmanager
def _running(tmp_path: Path, fake: str):
    """The bridge under a stand-in for ExaBGP, and a channel to it."""
    script = tmp_path / "fake_exabgp.py"
    script.write_text(fake)
    sock = tmp_path / "s.sock"
    proc = subprocess.Popen([sys.executable, str(script), str(sock)], cwd=Path(__file__).resolve().parents[2])
    try:
        deadline = time.monotonic() + 10
        while not sock.exists():
            assert time.monotonic() < deadline, "bridge did not open its socket"
            time.sleep(0.01)
        ch = SpeakerChannel("fake", sock, timeout=5)
        try:
            yield ch
        finally:
            ch.close()
    finally:
        proc.kill()
        proc.wait()


@pytest.fixture
def channel(tmp_path: Path):
    with _running(tmp_path, FAKE) as ch:
        yield ch


@pytest.fixture
def reactor_channel(tmp_path: Path):
    with _running(tmp_path, FAKE_REACTOR) as ch:
        yield ch


def test_route_commands_are_pipelined_and_answers_still_matched(reactor_channel: SpeakerChannel) -> None:
    cmds = [f"neighbor 198.18.0.1 announce attributes next-hop self nlri 100.64.{i}.0/24" for i in range(40)]
    acks = reactor_channel.send_many(cmds, window=64)
    assert [a.command for a in acks] == cmds and all(a.ok for a in acks)
    held = int(Path(str(reactor_channel.path) + ".batch").read_text())
    assert held > 1, "the bridge sent route commands one at a time"


def test_another_line_waits_for_the_route_commands_before_it(reactor_channel: SpeakerChannel) -> None:
    # its immediate `error` must not overtake the `done`s still owed to the commands before it
    route = [f"neighbor 198.18.0.1 withdraw attributes nlri 100.64.{i}.0/24" for i in range(5)]
    with pytest.raises(SpeakerError, match="command failed: neighbor 198.18.0.1 bogus"):
        reactor_channel.send_many(route + ["neighbor 198.18.0.1 bogus"] + route, window=16)
    assert reactor_channel.send(route[0]).ok  # the channel is still in step


def test_one_answer_per_command_in_order(channel: SpeakerChannel) -> None:
    cmds = [f"neighbor 198.18.0.1 announce route 100.64.{i}.0/24 next-hop self" for i in range(200)]
    acks = channel.send_many(cmds, window=32)
    assert [a.command for a in acks] == cmds and all(a.ok for a in acks)


def test_error_is_matched_to_its_command_and_channel_stays_usable(channel: SpeakerChannel) -> None:
    cmds = ["neighbor 198.18.0.1 announce route 100.64.0.0/24 next-hop self"] * 5 + ["neighbor 198.18.0.1 bogus"]
    cmds += ["neighbor 198.18.0.1 announce route 100.64.1.0/24 next-hop self"] * 5
    with pytest.raises(SpeakerError, match="speaker fake: command failed: neighbor 198.18.0.1 bogus"):
        channel.send_many(cmds, window=16)
    # everything in flight was drained: the next answer belongs to the next command
    ack = channel.send("neighbor 198.18.0.1 announce route 100.64.2.0/24 next-hop self")
    assert ack.ok


def test_output_lines_come_with_their_command(channel: SpeakerChannel) -> None:
    ack = channel.send("neighbor 198.18.0.1 show")
    assert ack.output == ("line one", "line two")


def test_two_clients_do_not_get_each_others_answers(channel: SpeakerChannel, tmp_path: Path) -> None:
    other = SpeakerChannel("fake", tmp_path / "s.sock", timeout=5)
    try:
        a = [f"neighbor 198.18.0.1 announce route 100.64.{i}.0/24 next-hop self" for i in range(50)]
        b = ["neighbor 198.18.0.1 bogus"]
        channel.sock.sendall(("\n".join(a) + "\n").encode())  # in flight from the first client
        with pytest.raises(SpeakerError):
            other.send_many(b)
        acks = [channel._readline(time.monotonic() + 5, x) for x in a]
        assert acks == ["done"] * 50
    finally:
        other.close()

"""Runs under ExaBGP as its API process and bridges it to a unix socket.

ExaBGP writes acknowledgements (``done``/``error``) to our stdin and reads commands
from our stdout. We accept clients on a unix socket, forward their command lines to
ExaBGP, and hand every line ExaBGP answers back to the client whose command it was,
up to and including its ``done`` or ``error``.

What makes the matching exact is the order ExaBGP answers in. It answers a command it
does not recognise with ``error`` at once, but a route command (``announce attributes``,
``withdraw attributes``) only after its scheduler has applied it, and the scheduler
runs route commands first in, first out, answering each (``done``, or ``error`` for a
route it cannot parse or a neighbour that does not match) in turn. So:

* route commands in the lab's own form (``neighbor A [, neighbor B ...] announce|withdraw
  attributes ...``) are pipelined: up to PIPELINE of them are with ExaBGP at once, and
  their answers come back in the order they were sent;
* any other line goes alone: it waits until nothing is in flight, and nothing is sent
  after it until it is answered, so its immediate ``error`` cannot overtake anything.

Pipelining matters for a table of many attribute sets (a full Internet table has tens of
thousands): one at a time, each command cost a reactor turn and a round trip.

Every line ExaBGP writes is read, client or no client, so its pipe never fills.
"""

from __future__ import annotations

import os
import re
import selectors
import socket
import sys
from collections import deque

ACKS = (b"done", b"error")
ROUTE_COMMAND = re.compile(rb"^neighbor \S+( , neighbor \S+)* (announce|withdraw) attributes ")
PIPELINE = 256  # route commands with ExaBGP at once (its pipe holds 64 KiB; a command is often more)


class Bridge:
    def __init__(self, path: str):
        self.path = path
        self.sel = selectors.DefaultSelector()
        self.clients: dict[int, socket.socket] = {}
        self.rbuf: dict[int, bytes] = {}
        self.queue: deque[tuple[int, bytes]] = deque()
        # Owners (client fds) of the commands ExaBGP is working on, oldest first; ``alone``
        # while the one in flight is a line that must not share the pipe.
        self.inflight: deque[int] = deque()
        self.alone = False
        self.stdin_buf = b""

    def log(self, msg: str) -> None:
        sys.stderr.write(f"bgplab-bridge[{self.path}]: {msg}\n")
        sys.stderr.flush()

    def listen(self) -> None:
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass
        srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        srv.bind(self.path)
        os.chmod(self.path, 0o600)
        self.inode = os.stat(self.path).st_ino
        srv.listen(8)
        srv.setblocking(False)
        self.sel.register(srv, selectors.EVENT_READ, "accept")
        os.set_blocking(0, False)
        self.sel.register(0, selectors.EVENT_READ, "exabgp")

    def pump(self) -> None:
        while self.queue and not self.alone and len(self.inflight) < PIPELINE:
            fd, line = self.queue[0]
            if fd not in self.clients:
                self.queue.popleft()
                continue  # its client left before its turn
            route = ROUTE_COMMAND.match(line) is not None
            if not route and self.inflight:
                return  # it goes alone, once everything before it is answered
            self.queue.popleft()
            self.inflight.append(fd)
            self.alone = not route
            os.write(1, line + b"\n")  # blocking stdout: ExaBGP reads it

    def from_exabgp(self) -> bool:
        chunk = os.read(0, 65536)
        if not chunk:
            return False  # ExaBGP closed our stdin: it is going away, so do we
        self.stdin_buf += chunk
        *lines, self.stdin_buf = self.stdin_buf.split(b"\n")
        for line in lines:
            if not self.inflight:
                self.log(f"unsolicited line from ExaBGP: {line[:200]!r}")
                continue
            owner = self.inflight[0]
            if owner in self.clients:
                try:
                    self.clients[owner].sendall(line + b"\n")
                except OSError:
                    self.drop(owner)
            if line.strip() in ACKS:
                self.inflight.popleft()
                self.alone = False
                self.pump()
        return True

    def from_client(self, fd: int) -> None:
        try:
            chunk = self.clients[fd].recv(1 << 20)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            chunk = b""
        if not chunk:
            self.drop(fd)
            return
        buf = self.rbuf[fd] + chunk
        *lines, self.rbuf[fd] = buf.split(b"\n")
        for line in lines:
            if line.strip():
                self.queue.append((fd, line.rstrip(b"\r")))
        self.pump()

    def drop(self, fd: int) -> None:
        sock = self.clients.pop(fd, None)
        self.rbuf.pop(fd, None)
        if sock is not None:
            self.sel.unregister(sock)
            sock.close()
        # An answer still owed to it is read and discarded when it comes (inflight stays).

    def run(self) -> None:
        self.listen()
        try:
            self._loop()
        finally:
            # Only our own socket file: a newer bridge may already have taken the path.
            try:
                if os.stat(self.path).st_ino == self.inode:
                    os.unlink(self.path)
            except FileNotFoundError:
                pass

    def _loop(self) -> None:
        while True:
            for key, _ in self.sel.select():
                if key.data == "accept":
                    conn, _ = key.fileobj.accept()
                    conn.setblocking(True)  # replies are small; sendall may block briefly
                    self.clients[conn.fileno()] = conn
                    self.rbuf[conn.fileno()] = b""
                    self.sel.register(conn, selectors.EVENT_READ, "client")
                elif key.data == "exabgp":
                    if not self.from_exabgp():
                        return
                else:
                    self.from_client(key.fileobj.fileno())


def main() -> None:
    if len(sys.argv) != 2:
        sys.stderr.write("usage: exabgp_bridge SOCKET_PATH\n")
        sys.exit(2)
    Bridge(sys.argv[1]).run()


if __name__ == "__main__":
    main()

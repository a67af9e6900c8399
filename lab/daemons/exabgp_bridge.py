"""Runs under ExaBGP as its API process and bridges it to a unix socket.

ExaBGP writes acknowledgements (``done``/``error``) to our stdin and reads commands
from our stdout. We accept clients on a unix socket, forward their command lines to
ExaBGP one at a time, and hand every line ExaBGP answers back to the client whose
command it was, up to and including its ``done`` or ``error``.

One command in flight at a time is what makes the matching exact: ExaBGP answers a
malformed command with ``error`` at once but a large valid one with ``done`` only
after parsing it, so with several in flight an ``error`` can overtake earlier
``done``s. Clients may still pipeline; their commands wait here, in order.

Every line ExaBGP writes is read, client or no client, so its pipe never fills.
"""

from __future__ import annotations

import os
import selectors
import socket
import sys
from collections import deque

ACKS = (b"done", b"error")


class Bridge:
    def __init__(self, path: str):
        self.path = path
        self.sel = selectors.DefaultSelector()
        self.clients: dict[int, socket.socket] = {}
        self.rbuf: dict[int, bytes] = {}
        self.queue: deque[tuple[int, bytes]] = deque()
        self.inflight: int | None = None  # client fd owning the command ExaBGP is working on
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
        while self.inflight is None and self.queue:
            fd, line = self.queue.popleft()
            if fd not in self.clients:
                continue  # its client left before its turn
            self.inflight = fd
            os.write(1, line + b"\n")  # blocking stdout: ExaBGP reads it

    def from_exabgp(self) -> bool:
        chunk = os.read(0, 65536)
        if not chunk:
            return False  # ExaBGP closed our stdin: it is going away, so do we
        self.stdin_buf += chunk
        *lines, self.stdin_buf = self.stdin_buf.split(b"\n")
        for line in lines:
            owner = self.inflight
            if owner is None:
                self.log(f"unsolicited line from ExaBGP: {line[:200]!r}")
                continue
            if owner in self.clients:
                try:
                    self.clients[owner].sendall(line + b"\n")
                except OSError:
                    self.drop(owner)
            if line.strip() in ACKS:
                self.inflight = None
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

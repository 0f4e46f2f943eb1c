"""A real TCP proxy on 127.0.0.1 that makes a real HTTP/1.1 server misbehave, for fault tests.

It sits between ``ingest`` (a subprocess) and a server (the real argilla-server 2.8 in the
tests), reads each request off the client's connection (head, then ``Content-Length``
bytes of body) and, when a :class:`Fault` rule matches it, does what a broken network or
an overloaded gateway does instead of passing it on:

- ``status``: answers the rule's status (502, 503...) itself, as a gateway does; the
  server never sees the request, the connection stays open;
- ``reset``: closes the client's connection (RST) without an answer; the server never
  sees the request;
- ``lost``: passes the request on, reads the server's answer, then resets the client's
  connection: the server did the work and the client never hears of it;
- ``stall``: as ``lost``, but holds the answer back ``stall`` seconds first (past the
  client's timeout) before closing.

Everything else is relayed byte for byte over one server connection per client
connection. The proxy counts connections and requests so a test can check connection
reuse. It runs as threads of the test process; ``stop()`` closes every socket.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
import time
from dataclasses import dataclass


@dataclass
class Fault:
    """Misbehave on requests whose path contains ``path`` (and of ``method``, if given):
    let the first ``after`` of them through, then apply ``action`` to the next ``times``
    (None: to all of them, a server that stays down)."""

    action: str  # status | reset | lost | stall
    path: str = "/records/bulk"
    method: str | None = None
    times: int | None = 1
    after: int = 0
    status: int = 503
    body: bytes = b'{"detail":"injected by the fault proxy"}'  # of a ``status`` answer
    stall: float = 0.0
    seen: int = 0  # matching requests so far
    applied: int = 0


class _Closed(Exception):
    pass


def _read_through(sock: socket.socket, buffer: bytearray, marker: bytes) -> bytes:
    """What the connection sends up to and including ``marker`` (buffered bytes first)."""
    while marker not in buffer:
        data = sock.recv(65536)
        if not data:
            raise _Closed
        buffer.extend(data)
    end = buffer.index(marker) + len(marker)
    out = bytes(buffer[:end])
    del buffer[:end]
    return out


def _read_head(sock: socket.socket, buffer: bytearray) -> bytes:
    return _read_through(sock, buffer, b"\r\n\r\n")


def _read_exact(sock: socket.socket, buffer: bytearray, n: int) -> bytes:
    while len(buffer) < n:
        data = sock.recv(65536)
        if not data:
            raise _Closed
        buffer.extend(data)
    out = bytes(buffer[:n])
    del buffer[:n]
    return out


def _headers(head: bytes) -> dict[str, str]:
    found = {}
    for line in head.split(b"\r\n")[1:]:
        name, sep, value = line.partition(b":")
        if sep:
            found[name.strip().lower().decode("latin-1")] = value.strip().decode("latin-1")
    return found


def _read_message_body(sock: socket.socket, buffer: bytearray, head: bytes) -> bytes:
    headers = _headers(head)
    if "chunked" in headers.get("transfer-encoding", "").lower():
        body = bytearray()
        while True:
            size_line = _read_through(sock, buffer, b"\r\n")
            size = int(size_line.split(b";")[0].strip(), 16)
            body += size_line + _read_exact(sock, buffer, size + 2)
            if size == 0:
                return bytes(body)
    return _read_exact(sock, buffer, int(headers.get("content-length", "0")))


def _reset(sock: socket.socket) -> None:
    """Close with RST, as a crashed peer or a dropped connection looks to the client."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


class FaultProxy:
    """``FaultProxy(upstream_port).start()``; its ``url`` goes where the server's would."""

    def __init__(self, upstream_port: int, upstream_host: str = "127.0.0.1"):
        self.upstream = (upstream_host, upstream_port)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.faults: list[Fault] = []
        self.connections = 0
        self.requests: list[tuple[str, str, str]] = []  # (method, path, what was done)
        # (method, path, status, sent, answered): what the server answered, and when the
        # request went to it and its answer came back (time.monotonic())
        self.answers: list[tuple[str, str, int, float, float]] = []
        self.injected_at: list[float] = []  # when each fault was applied
        self._lock = threading.Lock()
        self._sockets: set[socket.socket] = set()
        self._threads: list[threading.Thread] = []
        self._stopped = threading.Event()

    def start(self) -> FaultProxy:
        thread = threading.Thread(target=self._accept, name="fault-proxy", daemon=True)
        thread.start()
        self._threads.append(thread)
        return self

    def fail(self, *faults: Fault) -> None:
        """Replace the rules (none: a healthy proxy)."""
        with self._lock:
            self.faults = list(faults)

    def heal(self) -> None:
        self.fail()

    def count(self, path: str, action: str | None = None) -> int:
        with self._lock:
            return sum(1 for _, p, a in self.requests if path in p and (action is None or a == action))

    def stop(self) -> None:
        self._stopped.set()
        with self._lock:
            sockets = list(self._sockets)
        for sock in [self._listener, *sockets]:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()
        for thread in self._threads:
            thread.join(10)

    # -- the proxy's threads --------------------------------------------------------------
    def _accept(self) -> None:
        while not self._stopped.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            with self._lock:
                self.connections += 1
                self._sockets.add(client)
                self._threads = [t for t in self._threads if t.is_alive()]
            thread = threading.Thread(target=self._serve, args=(client,), daemon=True)
            self._threads.append(thread)
            thread.start()

    def _decide(self, method: str, path: str) -> Fault | None:
        with self._lock:
            for fault in self.faults:
                if fault.path in path and (fault.method is None or fault.method == method):
                    fault.seen += 1
                    if fault.seen > fault.after and (fault.times is None or fault.applied < fault.times):
                        fault.applied += 1
                        self.injected_at.append(time.monotonic())
                        self.requests.append((method, path, fault.action))
                        return fault
                    break
            self.requests.append((method, path, "pass"))
            return None

    def _serve(self, client: socket.socket) -> None:
        upstream: socket.socket | None = None
        from_client, from_upstream = bytearray(), bytearray()
        try:
            while True:
                head = _read_head(client, from_client)
                request = head + _read_message_body(client, from_client, head)
                method, path = head.split(b" ", 2)[:2]
                fault = self._decide(method.decode(), path.decode("latin-1"))
                if fault is not None and fault.action == "status":
                    client.sendall(
                        b"HTTP/1.1 %d Injected\r\ncontent-type: application/json\r\n"
                        b"content-length: %d\r\n\r\n%s" % (fault.status, len(fault.body), fault.body)
                    )
                    continue
                if fault is not None and fault.action == "reset":
                    _reset(client)
                    return
                sent = time.monotonic()
                for fresh in (upstream is None, True):
                    if fresh:
                        if upstream is not None:
                            upstream.close()
                        upstream = socket.create_connection(self.upstream)
                        with self._lock:
                            self._sockets.add(upstream)
                        from_upstream.clear()
                    assert upstream is not None
                    try:
                        upstream.sendall(request)
                        answer_head = _read_head(upstream, from_upstream)
                        break
                    except (_Closed, OSError):
                        # The server closed a kept-alive connection that sat idle (uvicorn
                        # does after 5 s): not a fault of this test's making, so once more.
                        if fresh or self._stopped.is_set():
                            raise
                answer = answer_head + _read_message_body(upstream, from_upstream, answer_head)
                status = int(answer_head.split()[1])
                answered = (method.decode(), path.decode("latin-1"), status, sent, time.monotonic())
                with self._lock:
                    self.answers.append(answered)
                if fault is not None:  # lost or stall: the server did the work
                    if fault.stall:
                        self._stopped.wait(fault.stall)
                    _reset(client)
                    return
                client.sendall(answer)
                if b"connection: close" in answer_head.lower():
                    upstream.close()
                    upstream = None
        except (_Closed, OSError):
            pass
        finally:
            for sock in (client, upstream):
                if sock is not None:
                    sock.close()
                    with self._lock:
                        self._sockets.discard(sock)

"""An ASGI middleware that writes the access log ``ingest`` reads (docs/log-format.md).

It replaces Rubrix's in-process ``RubrixLogHTTPMiddleware`` with one line::

    app.add_middleware(AccessLogMiddleware, path="logs/access.jsonl", endpoints=["/spacy/"])

It is a pure ASGI middleware rather than Starlette's ``BaseHTTPMiddleware`` so that the
response streams to the client untouched: it keeps references to the body chunks as they
pass and does no parsing on the event loop. Timing, JSON decoding and the write happen in
a ``LineWriter`` thread. Importing it pulls in nothing heavy: it lives in serving processes.
"""

from __future__ import annotations

import atexit
import os
import time
import weakref
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from datetime import UTC, datetime
from typing import Any

import orjson

from ingest.accesslog import fields as f
from ingest.accesslog.redact import redact_value
from ingest.accesslog.writer import LineWriter

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

# Never written, whatever the configuration says.
ALWAYS_REDACTED_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie", "set-cookie"})


class _Body:
    """The chunks of one body as they pass, up to a size cap."""

    __slots__ = ("chunks", "size", "too_large")

    def __init__(self) -> None:
        self.chunks: list[bytes] = []
        self.size = 0
        self.too_large = False

    def add(self, chunk: bytes, cap: int) -> None:
        if not chunk:
            return
        self.size += len(chunk)
        if self.too_large:
            return
        if self.size > cap:
            self.too_large = True
            self.chunks = []
        else:
            self.chunks.append(chunk)


class Exchange:
    """One request and its response, as captured on the event loop; formatted later."""

    __slots__ = (
        "finished",
        "headers",
        "host",
        "latency_ms",
        "method",
        "path",
        "query",
        "request",
        "response",
        "scheme",
        "started",
        "status",
        "ts",
    )

    def __init__(self, scope: Scope) -> None:
        self.ts = time.time()
        self.started = time.perf_counter()
        self.method: str = scope.get("method", "")
        self.path: str = scope["path"]
        self.query: bytes = scope.get("query_string", b"")
        self.scheme: str = scope.get("scheme", "http")
        self.headers: list[tuple[bytes, bytes]] = scope.get("headers", [])
        server = scope.get("server")
        self.host = f"{server[0]}:{server[1]}" if server else ""
        self.request = _Body()
        self.response = _Body()
        self.status: int | None = None
        self.latency_ms = 0.0
        self.finished = False


class AccessLogMiddleware:
    """Log request and response bodies of ``endpoints`` (all paths when None) to ``path``.

    ``request_id_header``: taken as the line's ``request_id`` when the request has it, else a
    random 32-hex-digit id is generated. ``max_body_bytes``: larger bodies are not captured and the line says
    so (``request_omitted``/``response_omitted``: ``"too_large"``). ``log_headers``: request
    headers copied to the line's ``headers`` field; Authorization, Cookie and Set-Cookie are
    never among them, nor any in ``redact_headers``. ``redact_fields``: body keys whose values
    are replaced by ``"[redacted]"`` at any depth. ``queue_size``: lines waiting for the
    writer, which writes every ``flush_interval`` seconds; beyond it lines are dropped and
    counted. ``max_bytes``/``backup_count``: optional
    size rotation to ``path.1`` ... ``path.<backup_count>``.
    """

    def __init__(
        self,
        app: ASGIApp,
        path: str,
        endpoints: Iterable[str] | None = None,
        *,
        request_id_header: str = "x-request-id",
        max_body_bytes: int = 1 << 20,
        log_headers: Iterable[str] = (),
        redact_headers: Iterable[str] = (),
        redact_fields: Iterable[str] = (),
        queue_size: int = 10_000,
        flush_interval: float = 0.05,
        max_bytes: int | None = None,
        backup_count: int = 5,
    ) -> None:
        self.app = app
        self.endpoints = frozenset(endpoints) if endpoints is not None else None
        self.request_id_header = request_id_header.lower().encode("latin-1")
        self.max_body_bytes = max_body_bytes
        hidden = ALWAYS_REDACTED_HEADERS | {h.lower() for h in redact_headers}
        self.log_headers = frozenset(
            h.lower().encode("latin-1") for h in log_headers if h.lower() not in hidden
        )
        self.redact_fields = frozenset(f.lower() for f in redact_fields)
        self.writer = LineWriter(
            path,
            self.format_line,
            queue_size=queue_size,
            flush_interval=flush_interval,
            max_bytes=max_bytes,
            backup_count=backup_count,
        )
        # Servers without a lifespan shutdown still get the queue written at exit.
        atexit.register(_close_at_exit, weakref.ref(self.writer))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "lifespan":
            await self.app(scope, receive, self._lifespan_send(send))
            return
        if kind != "http" or (self.endpoints is not None and scope["path"] not in self.endpoints):
            await self.app(scope, receive, send)
            return

        exchange = Exchange(scope)
        cap = self.max_body_bytes

        async def receive_and_keep() -> Message:
            message = await receive()
            if message["type"] == "http.request":
                exchange.request.add(message.get("body", b""), cap)
            return message

        async def send_and_keep(message: Message) -> None:
            kind = message["type"]
            if kind == "http.response.start":
                exchange.status = message["status"]
            elif kind == "http.response.body":
                exchange.response.add(message.get("body", b""), cap)
                if not message.get("more_body", False):
                    exchange.latency_ms = (time.perf_counter() - exchange.started) * 1000
                    exchange.finished = True
            await send(message)

        try:
            await self.app(scope, receive_and_keep, send_and_keep)
        except BaseException:
            if exchange.status is None:
                exchange.status = 500
            raise
        finally:
            if not exchange.finished:
                exchange.latency_ms = (time.perf_counter() - exchange.started) * 1000
            self.writer.submit(exchange)

    def _lifespan_send(self, send: Send) -> Send:
        async def send_after_flush(message: Message) -> None:
            if message["type"] in ("lifespan.shutdown.complete", "lifespan.shutdown.failed"):
                self.writer.close()
            await send(message)

        return send_after_flush

    # -- in the writer thread -----------------------------------------------------------
    def format_line(self, exchange: Exchange) -> bytes:
        request_id = None
        content_type = None
        headers: dict[str, str] = {}
        for name, value in exchange.headers:
            if name == self.request_id_header:
                request_id = value.decode("latin-1")
            elif name == b"content-type":
                content_type = value.decode("latin-1")
            if name in self.log_headers:
                headers[name.decode("latin-1")] = value.decode("latin-1")
        line: dict[str, Any] = {
            f.TS: datetime.fromtimestamp(exchange.ts, UTC).isoformat(timespec="microseconds")[:-6] + "Z",
            f.METHOD: exchange.method,
            f.PATH: exchange.path,
            f.URL: self._url(exchange),
            f.STATUS: exchange.status if exchange.status is not None else 500,
            f.LATENCY_MS: round(exchange.latency_ms, 3),
            f.REQUEST_ID: request_id or os.urandom(16).hex(),
        }
        if content_type is not None:
            line[f.CONTENT_TYPE] = content_type
        if headers:
            line[f.HEADERS] = headers
        for name, body in ((f.REQUEST, exchange.request), (f.RESPONSE, exchange.response)):
            value, omitted = self._body(body)
            line[name] = value
            if omitted:
                line[name + f.OMITTED_SUFFIX] = omitted
                line[name + f.BYTES_SUFFIX] = body.size
        if not exchange.finished:
            line[f.RESPONSE_OMITTED] = f.INCOMPLETE
        return orjson.dumps(line) + b"\n"

    def _body(self, body: _Body) -> tuple[Any, str | None]:
        if body.too_large:
            return None, f.TOO_LARGE
        if not body.size:
            return None, f.EMPTY
        data = body.chunks[0] if len(body.chunks) == 1 else b"".join(body.chunks)
        try:
            value = orjson.loads(data)
        except orjson.JSONDecodeError:
            return None, f.NOT_JSON
        if self.redact_fields or _may_hold_secrets(data):
            value = redact_value(value, self.redact_fields)
        return value, None

    @staticmethod
    def _url(exchange: Exchange) -> str:
        host = exchange.host
        for name, value in exchange.headers:
            if name == b"host":
                host = value.decode("latin-1")
                break
        url = f"{exchange.scheme}://{host}{exchange.path}"
        if exchange.query:
            url += "?" + exchange.query.decode("latin-1")
        return url


def _may_hold_secrets(data: bytes) -> bool:
    """A cheap pre-check so that most bodies skip the recursive redaction walk."""
    lowered = data.lower()
    return any(word in lowered for word in (b"authorization", b"cookie", b"api-key", b"api_key", b"apikey"))


def _close_at_exit(ref: weakref.ref[LineWriter]) -> None:
    writer = ref()
    if writer is not None:
        writer.close()

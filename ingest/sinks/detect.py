"""Which API a server speaks, asked before any other call: Rubrix/Argilla v0, or Argilla 2.x.

An Argilla 2.x server removed every v0 endpoint, and answers a ``GET`` on one
(``/api/_info``, ``/api/me``) with 200 and its web page, because the UI is mounted at ``/``
(argilla-server 2.8 ``_app.py``): a v0 handshake would take it for a Rubrix server and only
fail later, on the first ``POST``, with a 405. So the version comes first, from
``GET /api/v1/version`` (no auth; argilla-server >= 1.29, CHANGELOG 1.29.0): a major
version of 2 or more means the v1-only API. Argilla 1.29 answers there too and still
speaks v0, and older servers answer 404 (or their own page), so everything else is v0.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass

import httpx

from ingest.errors import DeliveryError

API_CHOICES = ("auto", "v0", "v2")
_BACKOFF_BASE, _BACKOFF_CAP = 0.2, 10.0


@dataclass(frozen=True)
class ServerApi:
    """``api`` is ``"v0"`` (Rubrix 0.x, Argilla 1.x) or ``"v2"`` (Argilla 2.x); version if known."""

    api: str
    version: str = ""


class ServerUnreachable(DeliveryError):
    """No answer within the retry budget; the message names the URL, never a key."""


def parse_version(body: object) -> str:
    if isinstance(body, dict) and isinstance(body.get("version"), str):
        return body["version"]
    return ""


def major(version: str) -> int | None:
    head = version.strip().lstrip("v").split(".", 1)[0]
    return int(head) if head.isdigit() else None


def detect_server_api(
    url: str, *, timeout: float = 10.0, retry_for: float = 120.0, display: str | None = None
) -> ServerApi:
    """Ask ``{url}/api/v1/version``; retry connection errors, timeouts, 429 and 5xx with backoff.

    Raises ServerUnreachable when the server has not answered within ``retry_for`` seconds.
    """
    deadline = time.monotonic() + retry_for
    attempt = 0
    with httpx.Client(timeout=timeout) as client:
        while True:
            try:
                response = client.get(url.rstrip("/") + "/api/v1/version")
                if response.status_code < 500 and response.status_code != 429:
                    break
                reason = f"HTTP {response.status_code}"
            except httpx.TransportError as exc:
                reason = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            attempt += 1
            delay = min(_BACKOFF_CAP, _BACKOFF_BASE * 2**attempt) * random.uniform(0.5, 1.0)
            if time.monotonic() + delay > deadline:
                raise ServerUnreachable(
                    f"cannot reach {display or url}: {reason} "
                    f"(gave up after {attempt} attempts in {retry_for:g}s)"
                )
            time.sleep(delay)
    if response.status_code != 200:
        return ServerApi("v0")
    try:
        version = parse_version(response.json())
    except ValueError:  # an HTML page: a server from before /api/v1/version
        return ServerApi("v0")
    found = major(version)
    return ServerApi("v2" if found is not None and found >= 2 else "v0", version)

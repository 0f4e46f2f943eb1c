"""Where records go: a registry of sinks behind one protocol.

A sink takes batches of valid records (``add``) and, on ``flush``, makes them durable on
the target and reports what was written per endpoint. Only flushed records count as
delivered; checkpoints move only past what a flush acknowledged.

Sinks are named in ``SINKS`` (name -> ``module:factory``) and imported only when chosen,
so ``ingest --help`` loads none of them: ``local`` (the Parquet store, the default),
``rubrix`` (a Rubrix 0.x / Argilla 1.x server, when a URL is set), ``argilla_v2`` (an
Argilla 2.x server: the server is asked which API it speaks, ``ingest.sinks.detect``) and
``preview`` (dry runs: keeps a few records to show, writes nothing). A new target is a new module with a
factory ``(Target) -> Sink`` and one line here (or ``register`` at import time).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from ingest.errors import DeliveryError
from ingest.model import Batch, Delivery

if TYPE_CHECKING:
    from collections.abc import Callable

    from ingest.settings import ServerSettings

__all__ = ["SINKS", "Delivery", "DeliveryError", "Sink", "Target", "choose", "open_sink", "register"]


class Sink(Protocol):
    description: str  # shown in the summary: "local store rubrix-store", "rubrix http://..."

    def add(self, batch: Batch) -> Delivery:
        """Take a batch; may write (and acknowledge) some of what was added before."""
        ...

    def flush(self) -> Delivery:
        """Make everything added durable on the target and acknowledge it."""
        ...

    def close(self) -> None:
        """Release resources; what was not flushed is not delivered."""
        ...


@dataclass(frozen=True)
class Target:
    """What a sink factory is given: the resolved settings that name a target."""

    store: Path  # the local store (also where the run log and rejects go)
    server: ServerSettings | None = None  # a Rubrix/Argilla server, when a URL is set
    show: int = 0  # preview: records kept per dataset


SINKS: dict[str, str] = {
    "local": "ingest.sinks.local:open_sink",
    "rubrix": "ingest.sinks.rubrix:open_sink",
    "argilla_v2": "ingest.sinks.argilla_v2:open_sink",
    "preview": "ingest.sinks.preview:open_sink",
}


def register(name: str, factory: str) -> None:
    """Add a sink: ``factory`` is ``module:function`` taking a Target, returning a Sink."""
    SINKS[name] = factory


def choose(target: Target, dry_run: bool = False) -> str:
    """The sink a run uses: preview for dry runs, the server when a URL is set, else local.

    For a server, ``api`` in the settings says which: ``v0`` (Rubrix 0.x, Argilla 1.x),
    ``v2`` (Argilla 2.x), or ``auto``: ask the server first (``GET /api/v1/version``), since
    a 2.x server answers the v0 handshake's paths with its web page. Raises DeliveryError
    (ServerUnreachable) when the server does not answer within ``retry_for``.
    """
    if dry_run:
        return "preview"
    server = target.server
    if server is None:
        return "local"
    api = server.api or "auto"
    if api == "auto":
        from ingest.sinks.detect import detect_server_api
        from ingest.sinks.rubrix.sink import display_url

        api = detect_server_api(
            server.url,
            timeout=min(server.timeout, 30.0),
            retry_for=server.retry_for,
            display=display_url(server.url),
        ).api
    return "argilla_v2" if api == "v2" else "rubrix"


def open_sink(name: str, target: Target) -> Sink:
    """Import the named sink's module and open it on the target (a server sink connects:
    DeliveryError when it cannot)."""
    module_name, _, attr = SINKS[name].partition(":")
    factory: Callable[[Target], Sink] = getattr(importlib.import_module(module_name), attr)
    return factory(target)

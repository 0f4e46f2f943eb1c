"""Where records go: the local Parquet store (default) or a Rubrix/Argilla server.

A sink takes batches of valid records (``add``) and, on ``flush``, makes them durable on
the target and reports what was written per endpoint. Only flushed records count as
delivered; checkpoints move only past what a flush acknowledged.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Protocol

from ingest.transform.stage import Batch


@dataclass
class Delivery:
    """What a flush did: counts per endpoint, and records the target refused."""

    written: Counter[str] = field(default_factory=Counter)
    already_stored: Counter[str] = field(default_factory=Counter)
    rejects: list[dict[str, Any]] = field(default_factory=list)

    def merge(self, other: Delivery) -> None:
        self.written.update(other.written)
        self.already_stored.update(other.already_stored)
        self.rejects.extend(other.rejects)


class DeliveryError(Exception):
    """The run cannot go on: the message is one line, names the URL and never the key.

    ``delivery`` holds what the server did acknowledge before the run had to stop.
    """

    def __init__(self, message: str):
        super().__init__(message)
        self.delivery = Delivery()


class Sink(Protocol):
    description: str

    def add(self, batch: Batch) -> Delivery: ...

    def flush(self) -> Delivery: ...

    def close(self) -> None: ...

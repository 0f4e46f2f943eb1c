"""Where records go: the local Parquet store (default) or a Rubrix/Argilla server.

A sink takes batches of valid records (``add``) and, on ``flush``, makes them durable on
the target and reports what was written per endpoint. Only flushed records count as
delivered; checkpoints move only past what a flush acknowledged.
"""

from __future__ import annotations

from typing import Protocol

from ingest.errors import DeliveryError
from ingest.model import Batch, Delivery

__all__ = ["Delivery", "DeliveryError", "Sink"]


class Sink(Protocol):
    description: str

    def add(self, batch: Batch) -> Delivery: ...

    def flush(self) -> Delivery: ...

    def close(self) -> None: ...

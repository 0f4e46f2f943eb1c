"""The preview sink of dry runs: keeps the first records of each dataset, writes nothing."""

from __future__ import annotations

from typing import Any

import orjson

from ingest.model import Batch, Delivery
from ingest.sinks import Target


class PreviewSink:
    """Acknowledges nothing (a dry run writes nothing) and keeps ``show`` records a dataset."""

    def __init__(self, description: str, show: int):
        self.description = description
        self.show = show
        self.samples: dict[str, list[Any]] = {}  # dataset -> records, as the server would get them

    def add(self, batch: Batch) -> Delivery:
        kept = self.samples.setdefault(batch.route.dataset, [])
        for record in batch.table["record"].to_pylist()[: max(0, self.show - len(kept))]:
            kept.append(orjson.loads(record))
        return Delivery()

    def flush(self) -> Delivery:
        return Delivery()

    def close(self) -> None:
        pass


def open_sink(target: Target) -> PreviewSink:
    # A dry run has always been described as going to the local store, server or not.
    return PreviewSink(f"local store {target.store}", target.show)

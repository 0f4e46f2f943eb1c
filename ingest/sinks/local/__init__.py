"""The local Parquet store: ``store`` (the sink), ``layout`` (where everything lies),
``known_ids`` (the id check)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ingest.sinks import Target
    from ingest.sinks.local.store import LocalStore


def open_sink(target: Target) -> LocalStore:
    from ingest.sinks.local.store import LocalStore

    return LocalStore(target.store)

"""The Rubrix sink: the bulk API of Rubrix 0.x and Argilla 1.x servers."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ingest.sinks import Target
    from ingest.sinks.rubrix.sink import RubrixSink


def open_sink(target: Target) -> RubrixSink:
    from ingest.sinks.rubrix.sink import RubrixSink

    if target.server is None:
        raise ValueError("the rubrix sink needs server settings (a URL)")
    return RubrixSink(target.server)

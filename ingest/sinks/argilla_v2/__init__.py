"""Argilla 2.x (API v1) as a target: dataset settings and record mapping (``schema``) and
delivery (``sink``). ``ingest.sinks.detect`` tells a 2.x server from a v0 one, for
``ingest.sinks.choose``."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ingest.sinks import Target
    from ingest.sinks.argilla_v2.sink import ArgillaV2Sink


def open_sink(target: Target) -> ArgillaV2Sink:
    """The sink for an Argilla 2.x server; DeliveryError when it cannot connect."""
    from ingest.sinks.argilla_v2.sink import ArgillaV2Sink

    if target.server is None:
        raise ValueError("the argilla_v2 sink needs server settings (a URL)")
    return ArgillaV2Sink(target.server)

"""Argilla 2.x (API v1) as a target: dataset settings and record mapping (``schema``) and
delivery (``sink``). ``ingest.sinks.detect`` tells a 2.x server from a v0 one."""

from ingest.sinks.argilla_v2.sink import ArgillaV2Sink

__all__ = ["ArgillaV2Sink"]

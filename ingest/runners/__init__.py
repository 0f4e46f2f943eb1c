"""Runners: who transforms the chunks. A registry behind one small protocol.

A runner turns an iterator of chunks into their ``ChunkResult`` s, in input order (the
checkpoints and the rejects file depend on that order). ``local`` (the default) runs the
transform stage in this process or in forked worker processes on this machine
(``ingest.transform.workers``). A distributed runner is a new module with a factory
``() -> Runner`` and one line in ``RUNNERS``.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from ingest.sources.read import Chunk, Source
    from ingest.transform.stage import ChunkResult, TransformSpec


class Runner(Protocol):
    def jobs_for(self, jobs: int | None, sources: list[Source]) -> int:
        """How many workers to use: ``jobs`` when given, else the runner's own choice."""
        ...

    def results(self, chunks: Iterator[Chunk], spec: TransformSpec, jobs: int) -> Iterator[ChunkResult]:
        """Each chunk's result, in the chunks' order."""
        ...


RUNNERS: dict[str, str] = {"local": "ingest.runners.local:LocalRunner"}


def get_runner(name: str = "local") -> Runner:
    module_name, _, attr = RUNNERS[name].partition(":")
    return getattr(importlib.import_module(module_name), attr)()

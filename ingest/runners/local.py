"""The single-machine runner: in this process, or in forked workers (transform/workers.py)."""

from __future__ import annotations

import os
from collections.abc import Iterator

from ingest.sources.read import Chunk, Source, known_bytes
from ingest.transform.stage import ChunkResult, TransformSpec
from ingest.transform.workers import ordered_results

PARALLEL_MIN_BYTES = 16 << 20  # below this, worker start-up costs more than it saves


class LocalRunner:
    def jobs_for(self, jobs: int | None, sources: list[Source]) -> int:
        """``jobs`` when given; else 1 for small inputs and stdin, up to 4 (or the cores)."""
        if jobs is not None:
            return max(1, jobs)
        size = known_bytes(sources)
        stdin = any(s.path is None for s in sources)
        return min(os.cpu_count() or 1, 4) if size >= PARALLEL_MIN_BYTES and not stdin else 1

    def results(self, chunks: Iterator[Chunk], spec: TransformSpec, jobs: int) -> Iterator[ChunkResult]:
        return ordered_results(chunks, spec, jobs)

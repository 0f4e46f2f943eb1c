"""One run: read sources, transform chunks (in worker processes when asked), deliver, count.

Results come back in input order (ingest/workers.py), which keeps rejects files and
checkpoints in file order.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson
import pyarrow as pa

from ingest.model import Delivery
from ingest.report.summary import Summary
from ingest.sinks import Sink
from ingest.sinks.rejects import RejectsFile, RejectsPreview
from ingest.sources.checkpoint import Plan, State
from ingest.sources.read import Chunk, LineChunks, Source
from ingest.transform.stage import ChunkResult, TransformSpec
from ingest.transform.workers import ordered_results

CHECKPOINT_BYTES = 32 << 20  # input read between two flush-and-checkpoint points


@dataclass
class RunOptions:
    sources: list[Source]
    spec: TransformSpec
    jobs: int = 1
    show: int = 0  # dry run: records to show per dataset
    progress: Callable[[int], None] | None = None  # called with the bytes of each chunk
    samples: dict[str, list[Any]] = field(default_factory=dict)
    plans: list[Plan] | None = None  # where to start each source (checkpointed runs)
    state: State | None = None  # where to save how far each source was read
    checkpoint_bytes: int = CHECKPOINT_BYTES
    stop: threading.Event | None = None  # set by SIGTERM/SIGINT: finish the chunk, checkpoint, return
    rereads: bool = False  # --from-start or a time window: these lines may have been read before


def run(
    options: RunOptions,
    sink: Sink | None,
    rejects: RejectsFile | RejectsPreview,
    summary: Summary,
) -> Summary:
    """Ingest every source into the sink (None: dry run), filling in the summary."""
    started = time.perf_counter()
    # Arrow's default allocators (jemalloc, mimalloc) keep freed pages for reuse: with a
    # stream of short-lived batches that costs a third more memory in every process.
    pa.set_memory_pool(pa.system_memory_pool())
    plans = options.plans or [Plan(source, None) for source in options.sources]
    readers = [LineChunks(p.source, p.offset, p.line) for p in plans if p.skip is None]
    fingerprints = {p.source.name: p.fingerprint for p in plans if p.fingerprint}
    summary.skipped_files = {p.source.name: p.skip for p in plans if p.skip}
    progress: dict[str, tuple[int, int, str]] = {}  # fingerprint -> (offset, next line, name)
    unsaved_bytes = 0

    def chunks() -> Iterator[Chunk]:
        for reader in readers:
            yield from reader

    def deliver(delivery: Delivery) -> None:
        record_delivery(delivery, summary, rejects)

    def checkpoint() -> None:
        """Flush the sink, make rejects durable, then move the checkpoints: in that order."""
        if sink is not None:
            deliver(sink.flush())
        rejects.sync()
        if options.state is not None and progress and sink is not None:
            options.state.save(progress)

    try:
        for result in ordered_results(chunks(), options.spec, options.jobs):
            for endpoint, counts in result.counts.items():
                summary.counts_for(endpoint).add(counts)
            rejects.write(result.rejects)
            for batch in result.batches:
                summary.datasets[batch.route.endpoint] = batch.route.dataset
                for endpoint in set(batch.table["endpoint"].to_pylist()):
                    summary.datasets.setdefault(endpoint, batch.route.dataset)
                if sink is None:
                    _keep_samples(options, batch.route.dataset, batch.table, result)
                else:
                    deliver(sink.add(batch))
            if options.progress is not None:
                options.progress(result.size)
            fp = fingerprints.get(result.source)
            if fp is not None:
                progress[fp] = (result.end_offset, result.first_line + result.lines, result.source)
            unsaved_bytes += result.size
            if unsaved_bytes >= options.checkpoint_bytes:
                checkpoint()
                unsaved_bytes = 0
            if options.stop is not None and options.stop.is_set():
                summary.interrupted = True
                break
        checkpoint()
    except Exception as exc:
        record_acknowledged(exc, summary, rejects)
        raise
    finally:
        if sink is not None:
            sink.close()
        rejects.close()
        summary.files = [s.name for s in options.sources]
        summary.incomplete = {r.source.name: len(r.incomplete_tail) for r in readers if r.incomplete_tail}
        if rejects.path is not None and rejects.count:
            summary.rejects_file = str(rejects.path)
        summary.seconds = time.perf_counter() - started
    return summary


def record_delivery(delivery: Delivery, summary: Summary, rejects: RejectsFile | RejectsPreview) -> None:
    """Count what a sink acknowledged or refused, and file the refusals."""
    for endpoint, n in delivery.written.items():
        summary.counts_for(endpoint).written += n
    for endpoint, n in delivery.already_stored.items():
        summary.counts_for(endpoint).skipped["already_stored"] += n
    for reject in delivery.rejects:
        summary.counts_for(reject["endpoint"]).rejected += 1
    rejects.write(delivery.rejects)


def record_acknowledged(
    failure: BaseException, summary: Summary, rejects: RejectsFile | RejectsPreview
) -> None:
    """A sink that fails mid-run still delivered some records: count exactly those."""
    acknowledged = getattr(failure, "delivery", None)
    if isinstance(acknowledged, Delivery):
        record_delivery(acknowledged, summary, rejects)


def _keep_samples(options: RunOptions, dataset: str, table: Any, result: ChunkResult) -> None:
    kept = options.samples.setdefault(dataset, [])
    for record in table["record"].to_pylist()[: max(0, options.show - len(kept))]:
        kept.append(orjson.loads(record))

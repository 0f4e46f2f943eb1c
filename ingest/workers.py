"""Transform chunks in forked worker processes and hand back the results in input order.

Why not ``multiprocessing.Pool`` or ``ProcessPoolExecutor``: when a worker dies (the OOM
killer, a crash in native code) Pool waits forever for its result, and Python 3.11's
executor deadlocks joining the survivors; a cron run that hangs holds the lock against
every later run. Here each worker has its own pair of pipes, so a dead worker is an
``EOFError`` on its result pipe, and a killed parent is an EOF on each worker's task pipe,
so no worker outlives the run.

Chunk ``i`` goes to worker ``i % jobs`` and results are read in the same order, with at
most ``WINDOW`` chunks in flight per worker: memory stays flat however large the input.
A sender thread per worker writes the (1 MB) chunks, so that the main thread is always
free to read results and no pipe can fill up in both directions at once.
"""

from __future__ import annotations

import gc
import multiprocessing
import queue
import signal
import threading
from collections import deque
from collections.abc import Iterator
from multiprocessing.connection import Connection
from typing import Any

from ingest.checkpoint import close_inherited_locks
from ingest.read import Chunk
from ingest.transform import ChunkResult, Transformer, TransformSpec

WINDOW = 2  # chunks in flight per worker

# The parent's ends of every worker's pipes: a worker forked later closes its copies, or
# an earlier worker would never see EOF when the parent dies.
_PARENT_ENDS: list[Connection] = []


class WorkerDied(RuntimeError):
    """A worker process ended without returning its chunk: the run cannot go on."""


def _work(tasks: Connection, results: Connection, spec: TransformSpec) -> None:
    # Signals are the parent's business: it finishes the chunk in flight and checkpoints.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    close_inherited_locks()
    for end in _PARENT_ENDS:
        end.close()
    transformer = Transformer(spec)
    while True:
        try:
            chunk = tasks.recv()
        except EOFError:  # the parent is gone
            return
        if chunk is None:
            return
        results.send(transformer.process(chunk))


class _Worker:
    def __init__(self, context: Any, spec: TransformSpec):
        task_reader, self.task_writer = context.Pipe(duplex=False)
        self.result_reader, result_writer = context.Pipe(duplex=False)
        # Listed before the fork: the worker closes its own copies of these too.
        _PARENT_ENDS.extend((self.task_writer, self.result_reader))
        self.process = context.Process(target=_work, args=(task_reader, result_writer, spec), daemon=True)
        self.process.start()
        task_reader.close()
        result_writer.close()
        self.outbox: queue.Queue[Chunk | None] = queue.Queue()
        self.sender = threading.Thread(target=self._send, daemon=True)

    def _send(self) -> None:
        while True:
            chunk = self.outbox.get()
            try:
                self.task_writer.send(chunk)
            except OSError:  # the worker is gone: the main thread finds out on its result pipe
                return
            if chunk is None:
                return

    def result(self) -> ChunkResult:
        try:
            return self.result_reader.recv()
        except (EOFError, OSError):
            code = self.process.exitcode
            raise WorkerDied(
                f"a worker process died (exit {code}: killed, or out of memory?); progress up to "
                "the last checkpoint is saved and the next run goes on from there"
            ) from None

    def close(self, finished: bool) -> None:
        if finished:
            self.outbox.put(None)
            self.sender.join(10)
            self.process.join(10)
        if self.process.is_alive():
            self.process.kill()
            self.process.join()
        for end in (self.task_writer, self.result_reader):
            end.close()
            if end in _PARENT_ENDS:
                _PARENT_ENDS.remove(end)


def ordered_results(chunks: Iterator[Chunk], spec: TransformSpec, jobs: int) -> Iterator[ChunkResult]:
    if jobs <= 1:
        transformer = Transformer(spec)
        for chunk in chunks:
            yield transformer.process(chunk)
        return
    # pyarrow imports pandas the first time it builds an array from Python objects: do it
    # here, once, so that the workers share the parent's copy instead of each loading its own.
    import pandas  # noqa: F401

    # Objects that exist now are shared with the workers; keep the collector from
    # touching (and so copying) their pages in every worker.
    gc.freeze()
    context = multiprocessing.get_context("fork")
    workers = [_Worker(context, spec) for _ in range(jobs)]
    for worker in workers:  # threads only once every fork is done
        worker.sender.start()
    pending: deque[_Worker] = deque()
    finished = False
    try:
        for i, chunk in enumerate(chunks):
            worker = workers[i % jobs]
            worker.outbox.put(chunk)
            pending.append(worker)
            if len(pending) >= WINDOW * jobs:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
        finished = True
    finally:
        for worker in workers:
            worker.close(finished)

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

Chunks and results cross the pipes as pickles whose big buffers (a chunk's bytes, the
Arrow columns of a result) travel out of band, written straight from where they lie, and
the pipes are widened to 1 MB: plain ``Connection.send`` first copied each 3 MB result
into a pickle and then pushed it through a 64 KB pipe, which cost more than a tenth of
the run's CPU.
"""

from __future__ import annotations

import contextlib
import fcntl
import gc
import multiprocessing
import pickle
import queue
import signal
import threading
from collections import deque
from collections.abc import Iterator
from multiprocessing.connection import Connection
from typing import Any

from ingest.accesslog.redact import redact_text
from ingest.errors import TransformFailed, WorkerDied
from ingest.sources.checkpoint import close_inherited_locks
from ingest.sources.read import Chunk
from ingest.transform.stage import ChunkResult, Transformer, TransformSpec

WINDOW = 2  # chunks in flight per worker

# The parent's ends of every worker's pipes: a worker forked later closes its copies, or
# an earlier worker would never see EOF when the parent dies.
_PARENT_ENDS: list[Connection] = []


def _process(
    transformer: Transformer, chunk: Chunk, caught: tuple[type[BaseException], ...] = (Exception, SystemExit)
) -> ChunkResult:
    """``transformer.process``, with any escaping exception of ``caught`` turned into TransformFailed."""
    try:
        return transformer.process(chunk)
    except caught as exc:
        # a message may quote a line (a mapper's, a parser's): redacted before the cut, which
        # could otherwise leave a credential's first characters that no rule recognizes
        detail = redact_text(f"{type(exc).__name__}: {str(exc)[: 2000 + (64 << 10)]}")[:2000]
        raise TransformFailed(
            f"the transform failed on {chunk.source} (chunk from line {chunk.first_line}): {detail}"
        ) from exc


PIPE_BYTES = 1 << 20  # Linux's default limit for an unprivileged process


def _widen(connection: Connection) -> None:
    # Linux only; under a lower system limit it fails. The default size works, only slower.
    set_size = getattr(fcntl, "F_SETPIPE_SZ", None)
    if set_size is not None:
        with contextlib.suppress(OSError):
            fcntl.fcntl(connection.fileno(), set_size, PIPE_BYTES)


def send(connection: Connection, obj: Any) -> None:
    """Pickle ``obj`` with its buffers out of band: each goes down the pipe uncopied."""
    buffers: list[pickle.PickleBuffer] = []
    head = pickle.dumps(obj, protocol=5, buffer_callback=buffers.append)
    connection.send_bytes(len(buffers).to_bytes(4, "little") + head)
    for buffer in buffers:
        connection.send_bytes(buffer.raw())


def receive(connection: Connection) -> Any:
    """What ``send`` sent; raises EOFError when the other end is gone."""
    message = connection.recv_bytes()
    buffers = [connection.recv_bytes() for _ in range(int.from_bytes(message[:4], "little"))]
    return pickle.loads(memoryview(message)[4:], buffers=buffers)


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
            chunk = receive(tasks)
        except (EOFError, OSError):  # the parent is gone
            return
        if chunk is None:
            return
        try:
            # Workers ignore SIGINT: a KeyboardInterrupt (any BaseException) in one was
            # raised by code, a custom mapper's, and is reported as such, not as a death.
            result: ChunkResult | TransformFailed = _process(transformer, chunk, (BaseException,))
        except TransformFailed as exc:
            exc.__cause__ = exc.__context__ = None  # the original may not pickle
            result = exc
        try:
            send(results, result)
        except OSError:  # a broken pipe: the parent is gone (kill -9), nobody to tell
            return


class _Worker:
    def __init__(self, context: Any, spec: TransformSpec):
        task_reader, self.task_writer = context.Pipe(duplex=False)
        self.result_reader, result_writer = context.Pipe(duplex=False)
        _widen(self.task_writer)
        _widen(result_writer)
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
                send(self.task_writer, chunk)
            except OSError:  # the worker is gone: the main thread finds out on its result pipe
                return
            if chunk is None:
                return

    def result(self) -> ChunkResult:
        try:
            result = receive(self.result_reader)
        except (EOFError, OSError):
            self.process.join(timeout=5)  # its pipe closes before it is reaped: wait for its exit code
            code = self.process.exitcode
            raise WorkerDied(
                f"a worker process died (exit {code}: killed, or out of memory?); progress up to "
                "the last checkpoint is saved and the next run goes on from there"
            ) from None
        if isinstance(result, TransformFailed):
            raise result
        return result

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
    # pyarrow imports pandas the first time it builds an array from Python objects: do it
    # here, once, so that the workers share the parent's copy instead of each loading its own.
    import pandas  # noqa: F401

    # The objects that exist now (the imported modules, mostly) live as long as the run:
    # out of the collector's sight, its full collections stop walking them (6% of the
    # transform's instructions), and forked workers no longer copy their pages by touching them.
    gc.freeze()
    # A chunk allocates a few hundred thousand short-lived, acyclic objects (parsed lines,
    # rows): collecting the youngest generation every 700 allocations walks them for
    # nothing (5% of the transform's CPU); every 20,000 keeps what little cyclic garbage
    # there is just as bounded.
    gc.set_threshold(20_000, 10, 10)
    if jobs <= 1:
        transformer = Transformer(spec)
        for chunk in chunks:
            yield _process(transformer, chunk)
        return
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

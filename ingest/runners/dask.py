"""``ingest backfill``: the same run on a Dask cluster, for backfills that outgrow one machine.

The client plans tasks: one per file, and for a large uncompressed file one per byte range
(``split_bytes``); a range task owns the lines that *start* inside it, as Dask's own
``read_bytes(..., delimiter=b"\\n")`` cuts them, so every line belongs to exactly one task.
Line numbers (kept in rejects and the store's ``source_line``) need the newlines before a
range: a cheap first pass counts them per range, as tasks too.

Each task reads its lines, parses, maps and validates them with the single-machine
transform, writes its own part files into the store (or sends to the Rubrix server), and
returns counts and rejects; the client adds them into the same summary and writes the same
rejects file as ``ingest run`` would, in input order.

Exactly once, on a cluster where workers die:

- A task lost with its worker is run again by Dask (``retries=``, and the scheduler's
  reschedule of a dead worker's tasks). A task's part files are named after the run and
  the task (``part-bf-<run>-<task>-<n>.parquet``), and a task deletes whatever an earlier
  attempt of itself left before it writes, so a retry replaces rather than adds. Its id
  check against the partition sees every other file, as a single-machine run's does.
- Two tasks never hold the same line, but two *lines* can have the same content (a line
  logged twice, a copy of a file under another first line) and so the same ids; tasks
  running at once would both write them. So the run ends with a commit step: in every
  partition written by more than one task, an id found in two of the run's files is kept
  in the one that comes first in input order, as a single-machine run keeps the first.
- The client appends each finished task to ``<store>/_backfill/<run>.jsonl`` once its
  rejects are durable. The run id is a hash of the inputs (paths, sizes, mtimes), the
  routing and the target, so rerunning the same command after a failure skips the
  finished tasks and does only what is left.
- Nothing touches the cron runs' lock or checkpoints: a backfill reads every file from its
  start, as ``--since/--until`` runs do; the store's id check makes lines already
  ingested by cron count as ``already_stored``.

What one machine decides from what came before, the backfill decides the same way:

- A new dataset's task and multi-label kind come from its first telling records in input
  order. Each task reports what its own records decided and what it settled with none to
  tell (``TaskDecisions``); the client takes tasks in input order and runs one again, with
  the decisions of the tasks before it, when they differ (``_Decided``).
- Formats that log a pair as two events (KServe, Azure ML) join in each task what it holds
  both halves of; the halves left go to one join step after the tasks (``run_join``), which
  reads their lines again in input order, so that a pair gives the records, ids and
  rejects one machine gives.

Towards a Rubrix server, every HTTP request of every task holds a lease of one
``distributed.Semaphore`` of ``concurrency`` leases: the bound is for the whole cluster,
not per worker.
"""

from __future__ import annotations

import base64
import contextlib
import copy
import hashlib
import heapq
import importlib
import importlib.machinery
import logging
import math
import os
import shutil
import signal
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ingest.errors import FileFault, IngestError, MissingExtra, TooManyRejects, UsageError
from ingest.model import SCHEMA, Counts, FileCounts
from ingest.report.runlog import append_run
from ingest.report.summary import Summary
from ingest.run import check_rejects, record_delivery
from ingest.runners.dask_objectstore import (
    ObjectLayout,
    ObjectManifest,
    ObjectTaskStore,
    append_line,
    is_url,
)
from ingest.runners.dask_objectstore import dedupe_partition as dedupe_object_partition
from ingest.settings import ServerSettings
from ingest.sinks import Target, choose, open_sink
from ingest.sinks.local.known_ids import KnownIds
from ingest.sinks.local.layout import RUNS_FILE, StoreLayout, fsync_dir
from ingest.sinks.local.store import DICTIONARY_COLUMNS, LocalStore, _OpenPart
from ingest.sinks.rejects import RejectsFile
from ingest.sources import expand
from ingest.sources.checkpoint import fingerprint
from ingest.sources.formats.choose import choose as choose_formats
from ingest.sources.read import (
    _BOM,
    _SNIFF_BYTES,
    CHUNK_BYTES,
    Chunk,
    LineChunks,
    Source,
    describe,
    not_jsonl,
    stale,
)
from ingest.transform.datasets import TC, Admitted, DatasetState, Decisions
from ingest.transform.routing import Route, named_datasets
from ingest.transform.stage import Transformer, TransformSpec, chunk_lines

if TYPE_CHECKING:
    from distributed import Client, Future

SPLIT_BYTES = 64 << 20  # uncompressed files larger than this are split into ranges of this size
PROBE_THREADS = 32  # inputs probed at once while planning (a first line and a size each)
GROUP_FILES = 1000  # at most this many small files, of SPLIT_BYTES together, make one task
RETRIES = 3  # a task that raises is tried this many more times (dead workers: the scheduler's own count)
JOIN_TASK = "join"  # the key of the step that joins the halves tasks could not join (no "-" in it)
_GZIP_MAGIC = b"\x1f\x8b"


# -- planning (on the client) -----------------------------------------------------------


@dataclass(frozen=True)
class Task:
    """One unit of work: a whole file, or the lines that start in ``[start, end)`` of one."""

    index: int  # position in input order: rejects and the commit's "first" follow it
    key: str  # stable across runs: the file's identity and the range
    source: str  # the name as given: summaries, rejects and the store's source_file
    path: str  # absolute: what a worker opens
    start: int = 0
    end: int | None = None  # None: to the end of the file
    newlines_before: int = 0  # b"\n" in [0, start): filled in by the counting pass
    # More whole files after the first, in input order: small files go many to a task, so
    # that a million small objects are not a million tasks.
    more: tuple[tuple[str, str], ...] = ()
    # Per file ([source, *more]), whether nothing can write to it any more (Source.final, as
    # the client's input list decides it: unmodified for an hour, or an older file of a
    # rotated series): its unterminated last line is then read as a line, as on one machine.
    finals: tuple[bool, ...] = ()

    @property
    def whole(self) -> bool:
        return self.start == 0 and self.end is None


def plan(
    sources: list[Source], split_bytes: int = SPLIT_BYTES
) -> tuple[list[Task], dict[str, str], dict[str, str]]:
    """Tasks in input order, the files not read and those that could not be read, each with
    the reason (as ``ingest run`` says it).

    A file whose first line is that of an earlier input is the same log (a copy, or a
    rotated file and its ``.gz``) and is not read, as on one machine; a file without a
    complete line yet is left too. Raises ValueError for stdin, which a cluster cannot read.
    """
    tasks: list[Task] = []
    skipped: dict[str, str] = {}
    failed: dict[str, str] = {}
    seen: set[str] = set()
    # whole files waiting: (name, path, bytes so far, identity, final)
    group: list[tuple[str, str, int, str, bool]] = []

    def flush() -> None:
        if group:
            identities = "\1".join(identity for _, _, _, identity, _ in group)
            key = hashlib.blake2b(identities.encode(), digest_size=6).hexdigest()
            more = tuple((name, path) for name, path, *_ in group[1:])
            finals = tuple(final for *_, final in group)
            tasks.append(Task(len(tasks), key, group[0][0], group[0][1], more=more, finals=finals))
            group.clear()

    if any(s.path is None and getattr(s, "url", None) is None for s in sources):
        raise ValueError("a backfill reads files, not stdin")
    # A first line and a size per input: for objects, two small requests each, which
    # take longer than they cost, so they go PROBE_THREADS at a time (in input order).
    with ThreadPoolExecutor(PROBE_THREADS) as pool:
        probes = list(pool.map(_probe, sources))
    for source, (fp, described, error) in zip(sources, probes, strict=True):
        if error is not None:
            failed[source.name] = error
            continue
        if fp is None or described is None:
            skipped[source.name] = "no complete line yet"
            continue
        if fp in seen:
            skipped[source.name] = "same content as another input"
            continue
        seen.add(fp)
        path, size, version, compressed = described
        identity = f"{path}\0{size}\0{version}\0{fp}"
        starts = [0] if compressed else list(range(0, max(size, 1), split_bytes))
        if len(starts) == 1 and group and group[-1][2] + size <= split_bytes and len(group) < GROUP_FILES:
            group.append((source.name, path, group[-1][2] + size, identity, source.final))
            continue
        flush()
        if len(starts) == 1:
            group.append((source.name, path, size, identity, source.final))
            continue
        for i, start in enumerate(starts):
            end = starts[i + 1] if i + 1 < len(starts) else None
            key = hashlib.blake2b(f"{identity}\0{start}\0{end}".encode(), digest_size=6).hexdigest()
            tasks.append(Task(len(tasks), key, source.name, path, start, end, finals=(source.final,)))
    flush()
    return tasks, skipped, failed


def _probe(source: Source) -> tuple[str | None, tuple[str, int, str, bool] | None, str | None]:
    """(fingerprint, description, None), or why the source cannot be read: a file's fault
    stops that file alone, as on one machine."""
    try:
        fp = fingerprint(source)
        return fp, (_describe(source) if fp is not None else None), None
    except Exception as exc:
        return None, None, describe(exc, source)


def _describe(source: Source) -> tuple[str, int, str, bool]:
    """Where workers open a source, its size, its version (mtime, ETag) and whether it is gzip.

    Raises FileFault for a file whose start shows it is not JSONL, as LineChunks would
    when reading it: its ranges must not be read as lines by tasks that start mid-file.
    """
    url = getattr(source, "url", None)  # an object in object storage (inputs of issue 15)
    if url is not None:
        fs, path = _fs(url)
        info = fs.info(path)
        version = str(info.get("ETag") or info.get("LastModified") or info.get("mtime") or "")
        location, size, head = url, int(info["size"]), fs.cat_file(path, start=0, end=_SNIFF_BYTES)
    else:
        assert source.path is not None
        resolved = source.path.resolve()
        stat = resolved.stat()
        with open(resolved, "rb") as fh:
            head = fh.read(_SNIFF_BYTES)
        location, size, version = str(resolved), stat.st_size, str(stat.st_mtime_ns)
    compressed = head[:2] == _GZIP_MAGIC
    if not compressed:
        reason = not_jsonl(head.removeprefix(_BOM))
        if reason:
            raise FileFault(reason)
    return location, size, version, compressed


def _fs(url: str) -> tuple[Any, str]:
    import fsspec

    return fsspec.core.url_to_fs(url)  # type: ignore[no-any-return]


def _open(location: str) -> BinaryIO:
    """A plain file or an object (read in 8 MB ranges), seekable either way."""
    if "://" in location:
        fs, path = _fs(location)
        return fs.open(path, "rb", block_size=8 << 20, cache_type="readahead")  # type: ignore[no-any-return]
    return open(location, "rb")


def run_id(tasks: list[Task], spec: TransformSpec, target: str) -> str:
    """The same inputs, routing and target give the same id: a rerun resumes that backfill."""
    digest = hashlib.blake2b(digest_size=6)
    digest.update(repr(spec).encode())
    digest.update(target.encode())
    for task in tasks:
        digest.update(task.key.encode())
    return digest.hexdigest()


def count_newlines(path: str, start: int, end: int) -> int:
    """``b"\\n"`` in bytes ``[start, end)`` of a plain file (a task of the counting pass)."""
    count = 0
    with _open(path) as fh:
        fh.seek(start)
        remaining = end - start
        while remaining > 0:
            block = fh.read(min(CHUNK_BYTES * 8, remaining))
            if not block:
                break
            count += block.count(b"\n")
            remaining -= len(block)
    return count


def count_or_fault(path: str, start: int, end: int) -> int | str:
    """``count_newlines``, or why the file cannot be read: a file removed or made unreadable
    since planning is a fault of that file alone, as when a task reads it."""
    try:
        return count_newlines(path, start, end)
    except Exception as exc:
        return describe(exc)


# -- reading a range (on a worker) ------------------------------------------------------


class RangeChunks:
    """Chunks of the lines that start in ``[task.start, task.end)`` of a plain file.

    The last such line is read to its end, past ``task.end``; a line that starts before
    ``task.start`` belongs to the task before. As LineChunks: a UTF-8 byte order mark at
    the file's start is skipped, and a last line of the file without its newline is read
    when the file is final (``task.finals``), else left in ``incomplete_tail``.
    """

    def __init__(self, task: Task, chunk_bytes: int = CHUNK_BYTES):
        self.task = task
        self.chunk_bytes = chunk_bytes
        self.incomplete_tail = b""

    def __iter__(self) -> Iterator[Chunk]:
        task = self.task
        end = task.end if task.end is not None else float("inf")
        final = task.finals[0] if task.finals else False
        with _open(task.path) as fh:
            offset, line = task.start, task.newlines_before + 1
            if task.start == 0 and fh.read(len(_BOM)) == _BOM:  # some editors and Windows tools write one
                offset = len(_BOM)
            else:
                fh.seek(task.start)
            if task.start > 0:
                fh.seek(task.start - 1)
                if fh.read(1) != b"\n":  # mid-line: that line is the previous task's
                    rest = fh.readline()
                    if not rest.endswith(b"\n"):
                        return  # the previous task's line runs to the end of the file
                    offset += len(rest)
                    line += 1
            carry = b""
            while offset < end:
                block = fh.read(self.chunk_bytes)
                if not block:
                    if carry and final and carry.strip(b"\0 \t\r"):
                        # the file's last line: a newline is added for the transform, not to the offsets
                        yield Chunk(task.source, line, offset, carry + b"\n", unterminated=True)
                    else:
                        self.incomplete_tail = carry
                    return
                data = carry + block
                cut = data.rfind(b"\n") + 1
                if cut == 0:
                    carry = data
                    continue
                whole, carry = data[:cut], data[cut:]
                if offset + len(whole) > end:
                    # keep the lines that start before end: up to the first newline at or after end - 1
                    stop = whole.find(b"\n", max(0, int(end) - offset - 1)) + 1
                    whole = whole[:stop]
                yield Chunk(task.source, line, offset, whole)
                offset += len(whole)
                line += whole.count(b"\n")


class _Files:
    """The chunks of a task's whole files, one after the other, and their incomplete tails."""

    def __init__(self, files: list[tuple[str, str]], finals: tuple[bool, ...] = ()):
        self.files = files
        self.finals = finals
        self.incomplete: dict[str, int] = {}
        self.failed: dict[str, str] = {}

    def __iter__(self) -> Iterator[Chunk]:
        for i, (name, location) in enumerate(self.files):
            # read exactly as on one machine (gzip included)
            if "://" in location:
                source = Source(name, None, location, final=True)
            else:
                # final as the client's input list decided it (a task of an older plan: stale)
                final = self.finals[i] if i < len(self.finals) else stale(Path(location))
                source = Source(name, Path(location), final=final)
            reader = LineChunks(source)
            try:
                yield from reader
            except Exception as exc:  # whatever stops a file stops that file alone
                self.failed[name] = describe(exc, source)
                continue
            if reader.incomplete_tail:
                self.incomplete[name] = len(reader.incomplete_tail)


class _Range:
    def __init__(self, task: Task):
        self.chunks = RangeChunks(task)
        self.task = task
        self.incomplete: dict[str, int] = {}
        self.failed: dict[str, str] = {}

    def __iter__(self) -> Iterator[Chunk]:
        try:
            yield from self.chunks
        except Exception as exc:  # stops this range of the file
            self.failed[self.task.source] = describe(exc)
            return
        if self.chunks.incomplete_tail:
            self.incomplete[self.task.source] = len(self.chunks.incomplete_tail)


def _reader(task: Task) -> _Files | _Range:
    if task.whole:
        return _Files([(task.source, task.path), *task.more], task.finals)
    return _Range(task)


# -- targets (built on the client, opened on a worker) ---------------------------------


@dataclass(frozen=True)
class StoreTarget:
    """The local store: a path every worker sees (a shared file system) and the run's id."""

    root: str
    run: str
    # Datasets the store held before the backfill (None: not known, every _dataset.json counts):
    # what a task finds of the others written by the run's other tasks is not "the target".
    before: frozenset[str] | None = None


@dataclass(frozen=True)
class ServerTarget:
    """A Rubrix server; ``semaphore`` bounds requests in flight over the whole cluster."""

    store: str
    settings: ServerSettings
    semaphore: Any  # distributed.Semaphore


class _NamedPart(_OpenPart):
    """A part file with a name chosen by the caller: a retried task writes the same names."""

    def __init__(self, directory: Path, prefix: str, n: int):
        directory.mkdir(parents=True, exist_ok=True)
        self.final, self.tmp = StoreLayout.task_part(directory, prefix, n)
        self.ids: list[pa.ChunkedArray] = []
        self.written: Counter[str] = Counter()
        self._file = open(self.tmp, "wb")  # noqa: SIM115 (closed by finish or abandon)
        self._writer = pq.ParquetWriter(
            self._file, SCHEMA, compression="zstd", use_dictionary=DICTIONARY_COLUMNS
        )


class TaskStore(LocalStore):
    """The local store as one task writes it: deterministic part names, after removing
    what an earlier attempt of the same task left, so that a retry replaces it.

    Its id check sees the store as it was, and this task's own files, but not the files of
    the run's other tasks: the commit step settles ids two tasks wrote, in input order,
    whichever task finished first.
    """

    def __init__(self, root: Path, run: str, task: str, before: frozenset[str] | None = None):
        self.before = before
        layout = StoreLayout(root)
        prefix, run_prefix = layout.task_prefix(run, task), layout.task_prefix(run)
        for old in layout.task_parts(prefix + "-"):
            old.unlink(missing_ok=True)
        for unfinished in layout.task_unfinished_parts(prefix + "-"):  # a killed attempt's
            unfinished.unlink(missing_ok=True)

        def other_task_of_the_run(name: str) -> bool:
            return name.startswith(run_prefix) and not name.startswith(prefix + "-")

        super().__init__(root, known_ids=KnownIds(ignore=other_task_of_the_run))
        self.prefix = prefix
        self._parts_opened = 0

    def dataset_task(self, dataset: str) -> str | None:
        """The task of a dataset as the store held it before the run, or as this task wrote it.

        Another task of the run may have written its ``_dataset.json`` first, with a decision
        the commit step may still overrule: one machine would not see it as the target's.
        """
        if dataset in self._tasks or self.before is None or dataset in self.before:
            return super().dataset_task(dataset)
        return None

    def dataset_info(self, route: Route) -> tuple[str | None, bool | None]:
        """(task, multi_label) of a dataset the store held before the run (see dataset_task)."""
        if self.before is None or route.dataset in self.before:
            return super().dataset_info(route)
        return None, None

    def _part_for(self, directory: Path) -> _OpenPart:
        part = self._open.pop(directory, None)
        if part is None:
            part = _NamedPart(directory, self.prefix, self._parts_opened)
            self._parts_opened += 1
        self._open[directory] = part  # most recently written last
        while len(self._open) > self.max_open_parts:
            self._finish_oldest()
        return part


class _BoundedClient:
    """An httpx.Client whose every request holds a lease of a cluster-wide semaphore."""

    def __init__(self, client: Any, semaphore: Any):
        self._client, self._semaphore = client, semaphore

    def request(self, *args: Any, **kwargs: Any) -> Any:
        with self._semaphore:
            return self._client.request(*args, **kwargs)

    def close(self) -> None:
        self._client.close()


def _open_task_sink(task: Task, target: StoreTarget | ServerTarget) -> Any:
    """The task's sink: its own part files in the store, or the server's sink from the
    sink registry with every request bounded by the cluster's semaphore."""
    if isinstance(target, StoreTarget):
        if is_url(target.root):
            return ObjectTaskStore(target.root, target.run, task.key, before=target.before)
        return TaskStore(Path(target.root), target.run, task.key, target.before)
    where = Target(store=Path(target.store), server=target.settings)
    sink = open_sink(choose(where), where)  # connects: two GETs, not bounded
    sink._client = _BoundedClient(sink._client, target.semaphore)
    return sink


# -- one task (on a worker) -------------------------------------------------------------


class _Collected:
    """Rejects kept in memory, in order, to travel back with the task's result."""

    path = None

    def __init__(self) -> None:
        self.items: list[dict[str, Any]] = []
        self.count = 0

    def write(self, rejects: list[dict[str, Any]]) -> None:
        self.items.extend(rejects)
        self.count += len(rejects)

    def sync(self) -> None:
        pass

    def close(self) -> None:
        pass


@dataclass
class TaskResult:
    """What one task did: counts as the summary keeps them, and its rejects in order."""

    index: int
    key: str
    counts: dict[str, Counts]
    datasets: dict[str, str]
    rejects: list[dict[str, Any]]
    incomplete: dict[str, int]  # file -> bytes of a last line without its newline
    failed: dict[str, str]  # file -> why it could not be read (to its end)
    size: int  # bytes read
    seconds: float
    cpu_seconds: float = 0.0  # CPU of the task's own thread: a worker's cost per line, whatever the load
    worker: str = ""
    by_file: dict[str, FileCounts] = field(default_factory=dict)  # file -> what its lines gave
    # (workspace, dataset, task, multi_label) decided by the task's own records (None: not by them)
    decided: list[tuple[str | None, str, str | None, bool | None]] = field(default_factory=list)
    # (workspace, dataset, "task" | "multi_label") the task settled with no record to tell
    unsettled: list[tuple[str | None, str, str]] = field(default_factory=list)
    halves: list[HalfLine] = field(default_factory=list)  # unjoined halves, for the join step


DatasetKey = tuple[str | None, str]  # (workspace, dataset): a dataset is a name in a workspace
Given = dict[DatasetKey, tuple[str | None, bool | None]]  # decisions the run made before a task


class TaskDecisions(Decisions):
    """One task's dataset decisions (ingest/transform/datasets.py), made as one machine makes them.

    One machine decides a new dataset's task and multi-label kind from its first records in
    input order; a task sees only its own. So a task reports what its records decided and what
    it had to settle with none to tell (an empty output's task, the default kind), and the
    client runs it again with ``given``, the decisions of the tasks before it, when they differ
    (``backfill``): decisions given count as made by this run's records, as they were.
    """

    def __init__(self, lookup: Any = None, given: Given | None = None):
        super().__init__(lookup)
        self.given = given or {}
        self.unsettled: set[tuple[str | None, str, str]] = set()

    def _dataset(self, route: Route) -> DatasetState:
        key = (route.workspace, route.dataset)
        fresh = key not in self._datasets
        found = super()._dataset(route)
        if fresh and key in self.given:
            found.adopt(*self.given[key], "records")
        return found

    def _give_up(self, state: DatasetState, out: Admitted) -> None:
        workspace, dataset = next(key for key, found in self._datasets.items() if found is state)
        if state.task is None:
            self.unsettled.add((workspace, dataset, "task"))
        elif state.task == TC and state.multi_label is None:
            self.unsettled.add((workspace, dataset, "multi_label"))
        super()._give_up(state, out)

    def decided(self) -> list[tuple[str | None, str, str | None, bool | None]]:
        """(workspace, dataset, task, multi_label) for what records decided (or were given)."""
        found = []
        for (workspace, dataset), state in self._datasets.items():
            task = state.task if state.task_from == "records" else None
            multi_label = state.multi_label if state.multi_from == "records" else None
            if task is not None or multi_label is not None:
                found.append((workspace, dataset, task, multi_label))
        return found


@dataclass(frozen=True, order=True)
class HalfLine:
    """A half of a pair (KServe, Azure ML) that its task could not join: the line, where it is,
    and its place in input order (task, file within the task, line, offset)."""

    order: tuple[int, int, int, int]
    source: str
    line: int
    offset: int
    raw: bytes

    def to_json(self) -> list[Any]:
        return [list(self.order), self.source, self.line, self.offset, base64.b64encode(self.raw).decode()]

    @classmethod
    def from_json(cls, item: list[Any]) -> HalfLine:
        order, source, line, offset, raw = item
        return cls(tuple(order), source, line, offset, base64.b64decode(raw))  # type: ignore[arg-type]


def _unbounded_joins(spec: TransformSpec) -> TransformSpec:
    """The spec with joining profiles that never give up on a half (no join window).

    A task sees only its own lines, so its event-time clock is not the run's: a half its
    task cannot join goes to the join step instead of being counted as missing, and the
    join step counts what is left at the end, as a run with no state to keep halves in does.
    """
    if not spec.joins:
        return spec
    profiles = {}
    for name, profile in spec.profiles.items():
        if profile.joins:
            profile = copy.copy(profile)
            profile.join_window = math.inf
        profiles[name] = profile
    return replace(spec, profiles=profiles)


class _Run:
    """What one task (or the join step) counts, delivers and collects, as ``ingest.run.run`` does."""

    def __init__(
        self, task: Task, spec: TransformSpec, target: StoreTarget | ServerTarget, given: Given | None
    ):
        # As in the pipeline: Arrow's default allocators keep freed pages of short-lived batches.
        pa.set_memory_pool(pa.system_memory_pool())
        self.started, self.cpu_started = time.perf_counter(), time.thread_time()
        self.task = task
        self.summary = Summary(target="")
        self.rejects = _Collected()
        self.sink = _open_task_sink(task, target)
        self.spec = _unbounded_joins(spec)
        self.transformer = Transformer(self.spec)
        self.decisions = TaskDecisions(getattr(self.sink, "dataset_info", None), given)
        self.size = 0

    def deliver(self, admitted: Admitted) -> None:
        summary = self.summary
        for endpoint, n in admitted.records.items():
            summary.counts_for(endpoint).records += n
        for endpoint, n in admitted.rejected.items():
            summary.counts_for(endpoint).rejected += n
        self.rejects.write(admitted.rejects)
        summary.count_refused(admitted.refused)
        for batch in admitted.batches:
            summary.add_dataset(batch.route.endpoint, batch.route.dataset)  # one of several, maybe
            for endpoint in set(batch.table["endpoint"].to_pylist()):
                summary.datasets.setdefault(endpoint, batch.route.dataset)
            record_delivery(self.sink.add(batch), summary, self.rejects)  # type: ignore[arg-type]

    def add(self, result: Any) -> None:
        for endpoint, counts in result.counts.items():
            self.summary.counts_for(endpoint).add(counts)
        self.summary.file_counts(result.source).add(result.file_counts)
        self.rejects.write(result.rejects)
        self.deliver(self.decisions.admit(result.batches))
        self.size += result.size

    def finish(self) -> None:
        self.deliver(self.decisions.finish())
        record_delivery(self.sink.flush(), self.summary, self.rejects)  # type: ignore[arg-type]

    def result(self, reader: Any, halves: list[HalfLine]) -> TaskResult:
        worker = ""
        with contextlib.suppress(Exception):
            from distributed import get_worker

            worker = get_worker().name
        return TaskResult(
            index=self.task.index,
            key=self.task.key,
            counts=self.summary.counts,
            datasets=self.summary.datasets,
            rejects=self.rejects.items,
            incomplete=reader.incomplete if reader is not None else {},
            failed=reader.failed if reader is not None else {},
            size=self.size,
            seconds=time.perf_counter() - self.started,
            cpu_seconds=time.thread_time() - self.cpu_started,
            worker=str(worker),
            by_file=self.summary.by_file,
            decided=self.decisions.decided(),
            unsettled=sorted(self.decisions.unsettled, key=repr),
            halves=halves,
        )


def run_task(
    task: Task, spec: TransformSpec, target: StoreTarget | ServerTarget, given: Given | None = None
) -> TaskResult:
    """Read, map, validate and deliver one task's lines; the records are durable on return.

    ``given``: dataset decisions made by the run's earlier tasks (see TaskDecisions). Halves
    of joined formats that the task could not join come back in ``halves``. Raises what the
    sink raises (DeliveryError), which Dask retries.
    """
    run = _Run(task, spec, target, given)
    reader = _reader(task)
    joiner = run.transformer.joiner
    offsets: dict[int, int] = {}  # id(waiting half) -> its line's offset (rejects name it)
    files = {name: i for i, name in enumerate([task.source, *(name for name, _ in task.more)])}
    try:
        for chunk in reader:
            result = run.transformer.process(chunk)
            if joiner.pending and any(id(w) not in offsets for w in joiner.pending.values()):
                # The joiner keeps a half's line number, not its offset: find it in the chunk
                # (only chunks that leave a new half waiting pay for this).
                where = {(n, raw): at for n, at, raw in chunk_lines(chunk)}
                for waiting in joiner.pending.values():
                    if id(waiting) not in offsets:
                        offsets[id(waiting)] = where.get((waiting.line, waiting.half.raw), chunk.offset)
            run.add(result)
        run.finish()
    finally:
        run.sink.close()
    halves = sorted(
        HalfLine((task.index, files.get(w.source, 0), w.line, offsets.get(id(w), 0)), w.source, w.line,
                 offsets.get(id(w), 0), w.half.raw)
        for w in joiner.pending.values()
    )  # fmt: skip
    return run.result(reader, halves)


def run_join(
    halves: list[HalfLine], spec: TransformSpec, target: StoreTarget | ServerTarget, index: int, given: Given
) -> TaskResult:
    """The join step: the halves no task could join, read again in input order by one joiner.

    Each half is its line again, as a chunk of one line, so a pair joined here gives the
    records, ids and rejects one machine gives (at the line that completes the pair). The
    tasks counted these lines already: only what the joins add is counted here. Halves
    still alone at the end are counted as a run with no state counts them
    (``missing_output``, ``response_without_request``).
    """
    task = Task(index, JOIN_TASK, "(joins)", "")
    run = _Run(task, spec, target, given)
    try:
        for half in sorted(halves):
            result = run.transformer.process(Chunk(half.source, half.line, half.offset, half.raw + b"\n"))
            for counts in result.counts.values():
                counts.lines = 0  # the task that read the line counted it
                counts.by_hour.clear()
            # the task counted this line as skipped (a half waiting); what it gives now replaces that
            result.file_counts.lines -= 1
            result.file_counts.skipped -= 1
            run.add(result)
        for half, reason in run.transformer.joiner.expired(run.spec.profiles, flush=True):
            run.summary.counts_for(half.endpoint).skipped[run.transformer.unjoined_reason(half, reason)] += 1
        run.finish()
    finally:
        run.sink.close()
    return run.result(None, [])


# -- the commit step (on workers) -------------------------------------------------------


def dedupe_partition(directory: str, run: str, order: dict[str, int]) -> dict[str, Counter[str]]:
    """In one partition, keep each id in the run's file that comes first in input order.

    Returns the rows removed per task key and endpoint (they count as already stored).
    """
    removed: dict[str, Counter[str]] = {}
    prefix = StoreLayout.task_prefix(run)

    def rank(path: Path) -> tuple[int, str]:
        key = path.name[len(prefix) :].split("-")[0]
        return order.get(key, len(order)), path.name

    files = sorted(Path(directory).glob(f"{prefix}*.parquet"), key=rank)
    seen: set[str] = set()
    for path in files:
        ids = pq.read_table(path, columns=["id"])["id"]
        duplicate = pc.is_in(ids, value_set=pa.array(list(seen), pa.string())) if seen else None
        if duplicate is not None and pc.any(duplicate).as_py():
            table = pq.read_table(path, schema=SCHEMA)
            keep = pc.invert(duplicate)
            dropped = table.filter(duplicate)
            key = path.name[len(prefix) :].split("-")[0]
            counter = removed.setdefault(key, Counter())
            counter.update(dropped["endpoint"].to_pylist())
            table = table.filter(keep)
            tmp = path.with_name(f".{path.stem}.{uuid.uuid4().hex[:8]}.parquet.tmp")
            with open(tmp, "wb") as fh:
                pq.write_table(table, fh, compression="zstd", use_dictionary=DICTIONARY_COLUMNS)
                fh.flush()
                os.fsync(fh.fileno())
            if table.num_rows:
                os.replace(tmp, path)
            else:
                tmp.unlink()
                path.unlink()
            fsync_dir(path.parent)
            ids = table["id"]
        seen.update(ids.to_pylist())
    return removed


# -- the manifest (on the client) -------------------------------------------------------


class Manifest:
    """``<store>/_backfill/<run>.jsonl``: one line per finished task, then one at the end."""

    def __init__(self, store: Path, run: str):
        self.path = StoreLayout(store).backfill_manifest(run)
        self.done: set[str] = set()
        self.entries: dict[str, dict[str, Any]] = {}
        self.finished = False
        self.started = self.path.exists()
        self.before: frozenset[str] | None = None  # the store's datasets when the backfill started
        if self.path.exists():
            for raw in self.path.read_bytes().splitlines():
                with contextlib.suppress(orjson.JSONDecodeError):  # a line cut short by a crash
                    entry = orjson.loads(raw)
                    if "task" in entry:
                        self.done.add(entry["task"])
                        self.entries[entry["task"]] = entry
                    if "run" in entry and entry.get("datasets_before") is not None:
                        self.before = frozenset(entry["datasets_before"])
                    self.finished = self.finished or bool(entry.get("finished"))

    def entry(self, task: str) -> dict[str, Any]:
        """A finished task's line: what it decided and the halves it left unjoined."""
        return self.entries.get(task, {})

    def append(self, entry: dict[str, Any]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, orjson.dumps(entry) + b"\n")
            os.fsync(fd)
        finally:
            os.close(fd)


# -- the run (on the client) ------------------------------------------------------------


@dataclass
class BackfillOptions:
    sources: list[Source]
    spec: TransformSpec
    store: Path | str  # the store (a path, or an object-store URL): the target, or where the
    # rejects and the manifest go
    server: ServerSettings | None = None  # send to this server instead of the store
    split_bytes: int = SPLIT_BYTES
    retries: int = RETRIES
    progress: bool = False  # Dask's text progress bar on stderr
    max_rejects: tuple[float, bool] | None = None  # (N, N is a percentage of the lines read)


@dataclass
class BackfillReport:
    """What the CLI prints besides the summary."""

    run: str = ""
    tasks: int = 0
    resumed: int = 0  # tasks finished by an earlier attempt of this backfill
    failed: str | None = None  # why the run stopped early
    workers: dict[str, int] = field(default_factory=dict)  # worker -> tasks run

    def to_json(self) -> dict[str, Any]:
        return {"run": self.run, "tasks": self.tasks, "resumed": self.resumed, "failed": self.failed,
                "workers": self.workers}  # fmt: skip


class _Decided:
    """The run's dataset decisions, as one machine makes them: the first task in input order
    whose records decide a dataset's task (or multi-label kind) decides it for the run."""

    def __init__(self) -> None:
        self.known: dict[DatasetKey, list[Any]] = {}  # (workspace, dataset) -> [task, multi_label]

    def given(self) -> Given:
        return {key: (task, multi_label) for key, (task, multi_label) in self.known.items()}

    def add(self, decided: list[Any]) -> None:
        for workspace, dataset, task, multi_label in decided:
            found = self.known.setdefault((workspace, dataset), [None, None])
            if found[0] is None and task:
                found[0] = task
            if found[1] is None and multi_label is not None:
                found[1] = multi_label

    def verdict(self, result: TaskResult, all_done: bool) -> str:
        """ "rerun" (the task decided otherwise, or settled what is decided), "hold" (it settled
        what a later task may still decide) or "release"."""
        for workspace, dataset, task, multi_label in result.decided:
            found = self.known.get((workspace, dataset))
            if found and (
                (found[0] and task and found[0] != task)
                or (found[1] is not None and multi_label is not None and found[1] != multi_label)
            ):
                return "rerun"
        hold = False
        for workspace, dataset, what in result.unsettled:
            found = self.known.get((workspace, dataset))
            if found is not None and found[0 if what == "task" else 1] is not None:
                return "rerun"
            hold = True
        return "hold" if hold and not all_done else "release"


def backfill(client: Client, options: BackfillOptions, rejects: Any, summary: Summary) -> BackfillReport:
    """Plan, run every task on the cluster, and fill in the summary as ``pipeline.run`` does.

    Rejects are written, and finished tasks recorded in the manifest, in input order. A task
    whose records decided a dataset otherwise than the tasks before it is run again with
    their decisions first (``_Decided``); halves of joined formats that no task could join
    are joined at the end (``run_join``). A task that fails after its retries stops the run
    (``report.failed``): what finished is counted and recorded, and rerunning the same
    command does the rest.
    """
    from distributed import Semaphore, as_completed

    started = time.perf_counter()
    tasks, skipped, failed = plan(options.sources, options.split_bytes)
    summary.failed_files.update(failed)
    summary.skipped_files = {**summary.skipped_files, **skipped}
    summary.files = [s.name for s in options.sources]
    store = options.store if is_url(options.store) else str(Path(options.store).resolve())
    target_name = options.server.url if options.server else store
    run = run_id(tasks, options.spec, target_name)
    manifest: Manifest | ObjectManifest = (
        ObjectManifest(store, run) if is_url(store) else Manifest(Path(store), run)
    )
    report = BackfillReport(run=run, tasks=len(tasks))
    pending = [t for t in tasks if t.key not in manifest.done]
    report.resumed = len(tasks) - len(pending)
    before: frozenset[str] | None = None
    if options.server is None:
        layout = ObjectLayout.of(store) if is_url(store) else StoreLayout(Path(store))
        before = manifest.before if manifest.started else frozenset(layout.datasets())
    if not manifest.started:
        manifest.append({"run": run, "target": target_name, "tasks": len(tasks), "files": summary.files,
                         "datasets_before": sorted(before) if before is not None else None})  # fmt: skip
    decided = _Decided()
    halves: list[HalfLine] = []
    for task in tasks:  # what the earlier attempt's finished tasks decided, and left unjoined
        if task.key in manifest.done:
            entry = manifest.entry(task.key)
            decided.add(entry.get("decided") or [])
            halves.extend(HalfLine.from_json(h) for h in entry.get("halves") or [])

    pending, uncounted = _count_lines_before(client, tasks, pending, options.retries)
    summary.failed_files.update(uncounted)
    target: StoreTarget | ServerTarget
    if options.server is not None:
        semaphore = Semaphore(max_leases=options.server.concurrency, name=f"ingest-rubrix-{run}")
        target = ServerTarget(store, options.server, semaphore)
    else:
        target = StoreTarget(store, run, before)
    spec = client.scatter(options.spec, broadcast=True) if pending else options.spec
    futures = [
        client.submit(run_task, task, spec, target, key=f"ingest-task-{run}-{task.key}",
                      retries=options.retries, pure=False)
        for task in pending
    ]  # fmt: skip
    bar = _progress_bar(client, futures) if options.progress and futures else None
    too_many: TooManyRejects | None = None
    ran: set[str] = set()
    waiting: dict[int, TaskResult] = {}
    order = [t.index for t in pending]
    next_at = 0
    reruns = 0

    def rerun(task: Task) -> Future:
        nonlocal reruns
        reruns += 1
        future = client.submit(run_task, task, spec, target, decided.given(), retries=options.retries,
                               key=f"ingest-task-{run}-{task.key}-again-{reruns}", pure=False)  # fmt: skip
        futures.append(future)
        return future

    def release_ready(all_done: bool) -> Task | None:
        """Release finished tasks in input order; the task to run again, if one must be."""
        nonlocal next_at
        while next_at < len(order) and order[next_at] in waiting:
            task = tasks[order[next_at]]
            verdict = decided.verdict(waiting[task.index], all_done)
            if verdict == "hold":
                return None
            if verdict == "rerun":
                del waiting[task.index]
                return task
            result = waiting.pop(task.index)
            decided.add(result.decided)
            halves.extend(result.halves)
            _release(result, tasks, summary, rejects, manifest, report, options)
            ran.add(task.key)
            next_at += 1
        return None

    try:
        completed = as_completed(futures)
        for future in completed:
            if future.status != "finished":
                error = future.exception()
                report.failed = f"{type(error).__name__}: {error}"
                break
            result: TaskResult = future.result()
            waiting[result.index] = result
            again = release_ready(all_done=False)
            if again is not None:
                completed.add(rerun(again))
        if report.failed is None and next_at < len(order):
            # Held: a task settled a dataset (an empty output's task, the default kind) that no
            # task before it decided. Every task is done now: the first one whose records decide
            # it, in input order, decides it for the run, as on one machine.
            for index in order[next_at:]:
                decided.add(waiting[index].decided)
            while next_at < len(order):
                again = release_ready(all_done=True)
                if again is not None:
                    waiting[again.index] = rerun(again).result()
        if report.failed is None and halves and JOIN_TASK not in manifest.done:
            joined = client.submit(run_join, halves, spec, target, len(tasks), decided.given(),
                                   key=f"ingest-join-{run}", retries=options.retries, pure=False)  # fmt: skip
            futures.append(joined)
            result = joined.result()
            _release(result, [*tasks, Task(len(tasks), JOIN_TASK, "(joins)", "")], summary, rejects, manifest,
                     report, options)  # fmt: skip
            ran.add(JOIN_TASK)
    except TooManyRejects as exc:
        too_many, report.failed = exc, str(exc)
    except KeyboardInterrupt:  # SIGINT, or SIGTERM as the CLI maps it: what finished is recorded
        report.failed = "interrupted by a signal"
        summary.interrupted = True
    except Exception as exc:  # a rerun or the join step that failed after its retries
        report.failed = f"{type(exc).__name__}: {exc}"
    finally:
        if report.failed is not None:
            client.cancel(futures)
        if bar is not None:
            bar.join(2)
    if report.failed is None and isinstance(target, StoreTarget):
        _commit(client, store, run, tasks, ran, summary)
        if before is not None:
            _settle_datasets(
                ObjectLayout.of(store) if is_url(store) else StoreLayout(Path(store)), decided, before
            )
        manifest.append({"finished": True, "lines": summary.lines, "written": summary.totals().written})
    rejects.close()
    if rejects.path is not None and rejects.count:
        summary.rejects_file = str(rejects.path)
    summary.seconds = time.perf_counter() - started
    summary.check_shared_datasets(named_datasets(options.spec.routes))
    if too_many is not None:
        raise too_many
    return report


def _settle_datasets(layout: StoreLayout | ObjectLayout, decided: _Decided, before: frozenset[str]) -> None:
    """The run's new datasets' ``_dataset.json`` say the run's decisions: tasks wrote them as
    each finished, and a task run again with the decisions of the tasks before it may not
    have been the last to write."""
    for (workspace, dataset), (task, multi_label) in decided.known.items():
        meta = layout.read_meta(dataset) if dataset not in before else None
        if meta is None or meta.get("workspace") != workspace:
            continue
        task = task or meta["task"]
        multi_label = multi_label if multi_label is not None else meta.get("multi_label")
        if (task, multi_label) != (meta["task"], meta.get("multi_label")):
            layout.write_meta(dataset, task, meta.get("tags") or {}, workspace, multi_label)


class BackfillStopped(IngestError):
    """A task failed for good (after its retries) or a signal stopped the backfill: what
    finished is counted and recorded, and the same command does the rest."""


@dataclass
class BackfillRequest:
    """Everything one ``ingest backfill`` needs, resolved (ingest.settings) as for ``run``."""

    paths: list[str]
    spec: TransformSpec
    store: Path | str  # a path, or an object-store URL (s3://bucket/prefix)
    rejects_path: Path | None = None  # None: <store>/_rejects/<time>.jsonl
    server: ServerSettings | None = None
    scheduler: str | None = None  # a Dask scheduler's address; None: a LocalCluster here
    workers: int | None = None  # LocalCluster workers (None: one per core)
    memory_limit: str = "auto"  # LocalCluster memory limit per worker
    split_bytes: int = SPLIT_BYTES
    retries: int = RETRIES
    quiet: bool = False  # no summary table travels with a failure
    log_format: str | None = None  # every input's format (--format, config); None: detected per input
    input_formats: dict[str, str] = field(default_factory=dict)  # input prefix or glob -> format
    max_rejects: tuple[float, bool] | None = None  # (N, N is a percentage of the lines read)


@dataclass
class BackfillResult:
    summary: Summary
    report: BackfillReport
    dashboard: str | None


def run_backfill(
    request: BackfillRequest,
    *,
    progress: bool = False,
    on_connect: Callable[[str, int, str | None], None] | None = None,
) -> BackfillResult:
    """Run a backfill on the request's cluster; ``on_connect(where, workers, dashboard)``
    is called once connected. Raises MissingExtra (no Dask), InputError, UsageError
    (stdin), DeliveryError (the server refuses before anything is read), BackfillStopped.
    """
    try:
        import distributed  # noqa: F401
    except ImportError:
        raise MissingExtra("ingest backfill needs Dask: pip install 'rubrix-ingest[dask]'") from None
    sources = expand(request.paths)
    if any(s.path is None and getattr(s, "url", None) is None for s in sources):
        raise UsageError("a backfill reads files, not stdin")
    # each input's log format (ingest/sources/formats), as for ``ingest run``
    choice = choose_formats(sources, request.spec.profiles, request.log_format, request.input_formats)
    spec = replace(request.spec, formats=choice.formats)
    sources = choice.sources
    description = f"store {request.store}" if is_url(request.store) else f"local store {request.store}"
    if request.server is not None:
        where = Target(store=Path(str(request.store)), server=request.server)
        sink = open_sink(choose(where), where)  # a bad URL or key stops here, before any task
        description = sink.description
        sink.close()
    stamp = StoreLayout.rejects_stamp()
    uploads = None  # object storage: the rejects file is written here, uploaded at the end
    if request.rejects_path is not None:
        rejects = RejectsFile(request.rejects_path)
    elif is_url(request.store):
        uploads = Path(tempfile.mkdtemp(prefix="ingest-backfill-"))
        rejects = RejectsFile(uploads / f"{stamp}.jsonl")
    else:
        rejects = RejectsFile(StoreLayout(Path(request.store)).rejects_file(stamp))
    summary = Summary(target=description, formats=choice.how, skipped_files=dict(choice.not_read))
    options = BackfillOptions(
        sources=sources,
        spec=spec,
        store=request.store,
        server=request.server,
        split_bytes=request.split_bytes,
        retries=request.retries,
        progress=progress,
        max_rejects=request.max_rejects,
    )
    started = datetime.now(UTC)
    # SIGTERM stops the backfill as Ctrl-C does: finished tasks stay recorded, for the rerun,
    # and the exit code says which signal it was (130, 143), as for a one-shot `ingest run`.
    signals: list[int] = []

    def on_signal(signum: int, _frame: Any) -> None:
        signals.append(signum)
        # Dask's gathers cut short print "Task exception was never retrieved" tracebacks as
        # the client closes, and a signal that lands inside distributed's sync() before its
        # coroutine started makes that sync's own cancel callback raise NameError, which
        # tornado logs with a traceback (distributed.utils.sync, seen with distributed 2026.8
        # under load); the one-line error at the end is what the user needs
        logging.getLogger("asyncio").setLevel(logging.CRITICAL)
        logging.getLogger("tornado.application").setLevel(logging.CRITICAL)
        raise KeyboardInterrupt

    previous = {signum: signal.signal(signum, on_signal) for signum in (signal.SIGTERM, signal.SIGINT)}
    report: BackfillReport | None = None
    dashboard: str | None = None
    try:
        with _cluster(request) as client:
            dashboard = client.dashboard_link
            if on_connect is not None:
                workers = len(client.scheduler_info(n_workers=-1)["workers"])
                on_connect(request.scheduler or "a local cluster", workers, dashboard)
            options.spec = replace(options.spec, routes=upload_mappers(client, options.spec.routes))
            try:
                report = backfill(client, options, rejects, summary)
            except TooManyRejects as exc:  # the table and --json of what was done, as run gives them
                exc.summary_text = None if request.quiet else summary.render()
                exc.summary = summary
                raise
    except KeyboardInterrupt:
        # stopped before the tasks ran (cluster start, counting lines) or while the client closed
        summary.interrupted = True
        if report is None:
            report = BackfillReport(run="-", tasks=0)
        report.failed = "interrupted by a signal"
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        if uploads is not None:
            if rejects.count:
                layout = ObjectLayout.of(str(request.store))
                target = layout.rejects_file(stamp)
                layout.fs.put_file(str(rejects.path), target)
                summary.rejects_file = layout.url(target)
            shutil.rmtree(uploads, ignore_errors=True)
    if report.failed is not None:
        done = report.resumed + sum(report.workers.values())
        if report.tasks:
            message = (
                f"backfill {report.run} stopped: {report.failed}; {done} of {report.tasks} tasks are done "
                "and recorded: run the same command again to do the rest"
            )
        else:
            message = f"backfill stopped: {report.failed} before any task ran: run the same command again"
        error = BackfillStopped(message)
        error.summary_text = None if request.quiet else summary.render()
        if summary.interrupted:
            error.exit_code = 128 + (signals[0] if signals else signal.SIGINT)  # a shell's 128 + signal
        raise error
    flags = {
        "rereads": True,  # a backfill reads every file from its start
        "since": request.spec.since.isoformat() if request.spec.since else None,
        "until": request.spec.until.isoformat() if request.spec.until else None,
        "runner": "dask",
        "backfill": report.run,
    }
    if is_url(request.store):
        with tempfile.TemporaryDirectory() as tmp:  # the run log's line, as append_run makes it
            append_run(Path(tmp), summary, started, flags)
            line = (Path(tmp) / RUNS_FILE).read_bytes()
        layout = ObjectLayout.of(str(request.store))
        append_line(str(request.store), layout.runs_file, line)
    else:
        append_run(Path(request.store), summary, started, flags)
    return BackfillResult(summary, report, dashboard)


@contextlib.contextmanager
def _cluster(request: BackfillRequest) -> Iterator[Client]:
    """A Client of the request's scheduler, or of a LocalCluster started (and stopped) here."""
    from distributed import Client, LocalCluster

    if request.scheduler is not None:
        timeout = _connect_timeout()
        _reach_scheduler(request.scheduler, timeout)
        try:
            client = Client(request.scheduler, timeout=timeout)
        except OSError as exc:
            raise BackfillStopped(f"cannot reach the Dask scheduler at {request.scheduler}: {exc}") from None
        with client:
            yield client
        return
    with (
        LocalCluster(
            n_workers=request.workers or os.cpu_count() or 1,
            threads_per_worker=1,  # the transform is Python: one thread per process
            memory_limit=request.memory_limit,
            dashboard_address="127.0.0.1:0",
            silence_logs=logging.ERROR,
        ) as cluster,
        Client(cluster) as client,
    ):
        yield client


def check_scheduler_address(address: str) -> None:
    """Raises UsageError for an address Dask cannot parse (no port, an unknown scheme such as
    ``http://``), before anything is read: Dask itself raises ValueError deep in the Client."""
    try:
        from distributed.comm.addressing import parse_address
        from distributed.comm.registry import get_backend
    except ImportError:
        return  # run_backfill says which extra is missing
    try:
        scheme, location = parse_address(address)
        get_backend(scheme).get_address_host_port(location)
    except (ValueError, TypeError) as exc:
        raise UsageError(
            f"--scheduler {address!r} is not a Dask scheduler address like tcp://host:8786: {exc}"
        ) from None


def _connect_timeout() -> float:
    """Dask's own connect timeout (``distributed.comm.timeouts.connect``, 30s by default;
    ``DASK_DISTRIBUTED__COMM__TIMEOUTS__CONNECT`` sets it), in seconds."""
    import dask.config
    from dask.utils import parse_timedelta

    return float(parse_timedelta(dask.config.get("distributed.comm.timeouts.connect"), default="s"))


def _reach_scheduler(address: str, timeout: float) -> None:
    """Ask ``address`` who it is, within ``timeout`` seconds for each step; raises
    BackfillStopped unless a Dask scheduler answers.

    ``Client(address, timeout=...)`` waits forever on a server that accepts the connection
    but never answers Dask's handshake (the scheduler's dashboard port, for one), and turns
    an HTTP server's error page into a MemoryError traceback: a wrong address must be one
    line instead.
    """
    import asyncio

    from distributed.comm import connect

    async def identity() -> Any:
        # Dask's own timeout first (its message names the address), then ours
        comm = await asyncio.wait_for(connect(address, timeout=timeout), timeout + 1)
        try:
            await asyncio.wait_for(comm.write({"op": "identity", "reply": True}), timeout)
            return await asyncio.wait_for(comm.read(), timeout)
        finally:
            comm.abort()

    try:
        reply = asyncio.run(identity())
    except (OSError, TimeoutError) as exc:
        why = str(exc) or f"no answer within {timeout:g}s (the scheduler's port, not the dashboard's?)"
        raise BackfillStopped(f"cannot reach the Dask scheduler at {address}: {why}") from None
    except Exception as exc:  # what a non-Dask server's bytes become when read as Dask frames
        raise BackfillStopped(
            f"no Dask scheduler answers at {address} (is it the dashboard's or another service's "
            f"port?): {type(exc).__name__}"
        ) from None
    if not isinstance(reply, dict) or reply.get("type") != "Scheduler":
        what = reply.get("type") if isinstance(reply, dict) else type(reply).__name__
        raise BackfillStopped(f"{address} is not a Dask scheduler (it answers as a {what})")


def _count_lines_before(
    client: Client, tasks: list[Task], pending: list[Task], retries: int
) -> tuple[list[Task], dict[str, str]]:
    """Fill in ``newlines_before`` of the pending ranges that do not start their file, by
    counting the ranges before them (each a task, run where the data is).

    Returns those tasks, and the files that could not be counted with the reason: their
    tasks are left out (not run, not recorded), so the same command reads them again."""
    needed: dict[str, int] = {}
    for task in pending:
        if task.start > 0:
            needed[task.path] = max(needed.get(task.path, 0), task.start)
    if not needed:
        return pending, {}
    spans: list[tuple[str, int]] = []
    futures = []
    for task in tasks:
        if task.path in needed and task.end is not None and task.end <= needed[task.path]:
            spans.append((task.path, task.end))
            futures.append(
                client.submit(count_or_fault, task.path, task.start, task.end,
                              key=f"ingest-count-{task.key}", retries=retries, pure=False)
            )  # fmt: skip
    counted = client.gather(futures)
    failed: dict[str, str] = {}  # path -> reason
    for (path, _), n in zip(spans, counted, strict=True):
        if isinstance(n, str):
            failed.setdefault(path, n)
    filled = []
    for task in pending:
        if task.path in failed:
            continue
        if task.start > 0:
            before = sum(
                n
                for (path, end), n in zip(spans, counted, strict=True)
                if path == task.path and end <= task.start
            )
            task = replace(task, newlines_before=before)
        filled.append(task)
    names = {task.path: task.source for task in tasks}
    return filled, {names[path]: reason for path, reason in failed.items()}


def _release(
    result: TaskResult,
    tasks: list[Task],
    summary: Summary,
    rejects: Any,
    manifest: Manifest | ObjectManifest,
    report: BackfillReport,
    options: BackfillOptions,
) -> None:
    """A finished task, in input order: its rejects made durable, then counted and recorded.

    Raises TooManyRejects past ``--max-rejects`` before the task is recorded: a task is
    what a checkpoint is to ``ingest run`` (a count and a percentage are checked at each).
    """
    task = tasks[result.index]
    if task.key == JOIN_TASK and rejects.path is not None:
        # A pair joined at the end is rejected at the line that completed it: in input order
        # among the others, where one machine files it.
        rejects.close()
        _merge_rejects(rejects.path, result.rejects, summary.files)
        rejects.count += len(result.rejects)
    else:
        rejects.write(result.rejects)
    rejects.sync()
    summary.count_rejects(result.rejects)  # by reason, lines and records apart, as a single run does
    for endpoint, counts in result.counts.items():
        summary.counts_for(endpoint).add(counts)
    for endpoint, dataset in result.datasets.items():
        summary.add_dataset(endpoint, dataset)  # each task's, of an endpoint feeding several
    summary.incomplete.update(result.incomplete)
    summary.failed_files.update(result.failed)
    for name, file_counts in result.by_file.items():
        summary.file_counts(name).add(file_counts)
    report.workers[result.worker] = report.workers.get(result.worker, 0) + 1
    check_rejects(options, summary, True, rejects.path, kept="this task and the ones after it are not "
                  "recorded as done")  # fmt: skip
    if result.failed:
        # A file that could not be read keeps its checkpoint on one machine; here its task
        # stays unrecorded, so the same command reads it again once it can be read (the
        # task's other lines are already stored then: upserts, counted as such).
        return
    entry = {"task": task.key, "source": task.source, "files": 1 + len(task.more), "start": task.start,
             "end": task.end}  # fmt: skip
    manifest.append(
        {**entry, "size": result.size, "seconds": round(result.seconds, 3),
         "cpu_seconds": round(result.cpu_seconds, 3), "worker": result.worker,
         "decided": result.decided, "halves": [h.to_json() for h in result.halves]}
    )  # fmt: skip


def _merge_rejects(path: Path, extra: list[dict[str, Any]], files: list[str]) -> None:
    """Insert ``extra`` rejects into a rejects file, each before the first one after it in
    input order (file, line); the file's own order is kept."""
    if not extra:
        return
    rank = {name: i for i, name in enumerate(files)}

    def place(reject: dict[str, Any]) -> tuple[int, int]:
        return rank.get(reject.get("file") or "", len(rank)), reject.get("line") or 0

    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(tmp, "wb") as out:
        old = open(path, "rb") if path.exists() else None  # noqa: SIM115 (closed below)
        try:
            existing = ((place(orjson.loads(line)), 0, line) for line in old or ())
            added = ((place(r), 1, orjson.dumps(r) + b"\n") for r in sorted(extra, key=place))
            out.writelines(line for *_, line in heapq.merge(existing, added, key=lambda t: t[:2]))
        finally:
            if old is not None:
                old.close()
        out.flush()
        os.fsync(out.fileno())
    os.replace(tmp, path)


def _commit(client: Client, store: str, run: str, tasks: list[Task], ran: set[str], summary: Summary) -> None:
    """Drop ids two of the run's tasks both wrote (identical lines), keeping the first."""
    prefix = StoreLayout.task_prefix(run)
    if is_url(store):
        paths = ObjectLayout.of(store).task_parts(prefix)
    else:
        paths = [str(p) for p in StoreLayout(Path(store)).task_parts(prefix)]  # absolute: workers open them
    by_dir: dict[str, set[str]] = {}
    for path in paths:
        directory, name = path.rsplit("/", 1)
        by_dir.setdefault(directory, set()).add(name[len(prefix) :].split("-")[0])
    shared = sorted(d for d, keys in by_dir.items() if len(keys) > 1)
    if not shared:
        return
    order = {t.key: t.index for t in tasks} | {JOIN_TASK: len(tasks)}
    if is_url(store):
        futures = client.map(dedupe_object_partition, [store] * len(shared), shared, run=run, order=order,
                             pure=False)  # fmt: skip
    else:
        futures = client.map(dedupe_partition, shared, run=run, order=order, pure=False)
    for removed in client.gather(futures):
        for key, endpoints in removed.items():
            if key not in ran:
                continue  # counted by the earlier attempt of this backfill, not this one
            for endpoint, n in endpoints.items():
                counts = summary.counts_for(endpoint)
                counts.written -= n
                counts.skipped["already_stored"] += n


def _progress_bar(client: Client, futures: list[Future]) -> threading.Thread:
    """Dask's own text progress bar, drawn on stderr (stdout carries --json)."""
    from distributed.diagnostics.progressbar import TextProgressBar

    class StderrProgressBar(TextProgressBar):
        def _draw_bar(self, remaining: int, all: int, **kwargs: Any) -> None:
            frac = (1 - remaining / all) if all else 1.0
            sys.stderr.write(
                f"\r[{'#' * int(self.width * frac):<{self.width}}] | {int(100 * frac)}% Completed "
                f"| {self.elapsed:.1f}s"
            )
            sys.stderr.flush()

        def _draw_stop(self, **kwargs: Any) -> None:
            sys.stderr.write("\33[2K\r")
            sys.stderr.flush()

    def draw() -> None:
        with contextlib.suppress(Exception):  # a progress bar never fails the run
            StderrProgressBar(futures, scheduler=client.scheduler.address)

    thread = threading.Thread(target=draw, name="ingest-progress", daemon=True)
    thread.start()
    return thread


# -- custom mappers ---------------------------------------------------------------------


PRIVATE_MAPPER = "_ingest_mapper_"  # what the workers import a user's mapper module as: <this><stem>_<digest>


def upload_mappers(client: Client, routes: dict[str, Route]) -> dict[str, Route]:
    """Send the custom mappers that live in the user's project to every worker with
    ``Client.upload_file``, and return the routes as the workers name them.

    ``./file.py:function``, or a ``module:function`` found in the current directory, goes
    as that file; a package found there as a zip of its directory. Either goes under a
    private name, ``_ingest_mapper_<name>_<digest of its path and content>``, as one machine
    loads it under a private name (mappers.resolve): ``upload_file`` imports what it gets by
    its file name, from the first directory of the workers' ``sys.path``, so a user's
    ``mappers.py`` would replace our ``mappers`` package there, two ``m.py`` of two folders
    would be one module, and a folder named like the module in a worker's working directory
    would hide it. A package's imports of itself must be relative (``from . import x``).
    A mapper from an installed package must be installed on the workers. Raises UsageError
    when a worker cannot import a module (a neighbour it imports is not sent, a dependency
    is not installed there).
    """
    sent: dict[str, str] = {}  # module path as given -> module name on the workers
    found: dict[str, Route] = {}
    cwd = Path.cwd().resolve()
    with tempfile.TemporaryDirectory(prefix="ingest-mappers-") as tmp:
        for endpoint, route in routes.items():
            found[endpoint] = route
            if not route.mapper or ":" not in route.mapper:
                continue
            module_part, _, attr = route.mapper.rpartition(":")
            if module_part.endswith(".py") or "/" in module_part or os.sep in module_part:
                if module_part not in sent:
                    sent[module_part] = _upload_module(
                        client, Path(module_part).resolve(), Path(tmp), route.mapper
                    )
                found[endpoint] = replace(route, mapper=f"{sent[module_part]}:{attr}")
                continue
            top, dot, rest = module_part.partition(".")
            if top not in sent:
                # as the mappers module looks for it: the current directory first
                spec = importlib.machinery.PathFinder.find_spec(top, [str(cwd)])
                if spec is None or spec.origin is None:
                    continue  # an installed package: the workers' environment provides it
                if spec.submodule_search_locations:  # a package: sent as a zip of its directory
                    sent[top] = _upload_package(client, cwd / top, Path(tmp), route.mapper)
                else:
                    sent[top] = _upload_module(client, Path(spec.origin), Path(tmp), route.mapper)
            found[endpoint] = replace(route, mapper=f"{sent[top]}{dot}{rest}:{attr}")
    return found


def _private_name(stem: str, digest: Any) -> str:
    safe = "".join(c if c.isalnum() else "_" for c in stem)
    return f"{PRIVATE_MAPPER}{safe}_{digest.hexdigest()}"


def _upload_module(client: Client, file: Path, tmp: Path, mapper: str) -> str:
    """One module file, sent under its private name; returns that name."""
    data = file.read_bytes()
    digest = hashlib.blake2b(str(file).encode() + b"\0" + data, digest_size=6)
    name = _private_name(file.stem, digest)
    copy = tmp / f"{name}.py"
    copy.write_bytes(data)
    _upload(client, copy, mapper)
    return name


def _upload_package(client: Client, directory: Path, tmp: Path, mapper: str) -> str:
    """A package directory, zipped under its private name; returns that name."""
    digest = hashlib.blake2b(str(directory).encode(), digest_size=6)
    files = sorted(
        p for p in directory.rglob("*") if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"
    )
    for path in files:
        digest.update(b"\0" + str(path.relative_to(directory)).encode() + b"\0" + path.read_bytes())
    name = _private_name(directory.name, digest)
    staged = tmp / "stage" / name
    shutil.copytree(directory, staged, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    archive = shutil.make_archive(str(tmp / name), "zip", tmp / "stage", name)
    shutil.rmtree(tmp / "stage")
    _upload(client, Path(archive), mapper)
    return name


def _upload(client: Client, file: Path, mapper: str) -> None:
    try:
        client.upload_file(str(file))
    except Exception as exc:  # the worker's import error, as Dask relays it (a bare Exception)
        raise UsageError(f"mapper {mapper!r} cannot be imported on the Dask workers: {exc}") from None

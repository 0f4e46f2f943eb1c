"""A backfill's store in object storage (``--store s3://bucket/prefix``), through fsspec.

The same layout as the local store (``<dataset>/_dataset.json``,
``<dataset>/date=YYYY-MM-DD/part-*.parquet``), so ``pd.read_parquet("s3://.../<dataset>")``
reads it as it reads a local one. What differs is what object storage gives:

- an object appears whole when its upload completes (no temporary name and rename):
  a task writes each part as one object, named after the run and the task as in the local
  store, so that a retry overwrites rather than adds;
- there is no append: the backfill's manifest is one object per finished task
  (``_backfill/<run>/<task>.json``), the run log is rewritten with its new line, and the
  rejects file is written locally during the run and uploaded at its end.

Credentials come from the environment of the client and of every worker, as fsspec's
filesystems find them (for S3: ``AWS_*`` variables, ``~/.aws``, instance roles).
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ingest.model import SCHEMA, Batch, Delivery
from ingest.sinks.local.layout import BACKFILL_DIR, DATASET_META, REJECTS_DIR, RUNS_FILE, StoreLayout
from ingest.sinks.local.store import DICTIONARY_COLUMNS, FLUSH_BYTES, first_occurrences, task_conflict

URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


def is_url(store: Any) -> bool:
    return isinstance(store, str) and bool(URL.match(store)) and not store.startswith("file://")


def filesystem(url: str) -> tuple[Any, str]:
    """(fsspec filesystem, the path inside it) of a store URL."""
    import fsspec

    fs, path = fsspec.core.url_to_fs(url)
    # fsspec keeps one filesystem per process, with its listings cached: other tasks (and
    # other workers) write between two looks at a partition, so every look lists anew.
    fs.invalidate_cache()
    return fs, path.rstrip("/")


def _counter(table: pa.Table) -> Counter[str]:
    if table.num_rows == 0:
        return Counter()
    return Counter({c["values"]: c["counts"] for c in pc.value_counts(table["endpoint"]).to_pylist()})


@dataclass
class ObjectLayout:
    """The paths of an object-store backfill store, inside its filesystem."""

    fs: Any
    root: str

    @classmethod
    def of(cls, url: str) -> ObjectLayout:
        fs, root = filesystem(url)
        return cls(fs, root)

    def url(self, path: str) -> str:
        return str(self.fs.unstrip_protocol(path))

    def meta(self, dataset: str) -> str:
        return f"{self.root}/{dataset}/{DATASET_META}"

    def datasets(self) -> list[str]:
        """The datasets of the store: those with a ``_dataset.json``."""
        return sorted(path.rsplit("/", 2)[-2] for path in self.fs.glob(f"{self.root}/*/{DATASET_META}"))

    def read_meta(self, dataset: str) -> dict[str, Any] | None:
        """A dataset's ``_dataset.json``, as StoreLayout.read_meta; None if it has none."""
        path = self.meta(dataset)
        return orjson.loads(self.fs.cat_file(path)) if self.fs.exists(path) else None  # type: ignore[no-any-return]

    def write_meta(
        self,
        dataset: str,
        task: str,
        tags: dict[str, str],
        workspace: str | None,
        multi_label: bool | None = None,
    ) -> None:
        """Write ``_dataset.json`` as StoreLayout.write_meta does (``multi_label`` once decided)."""
        meta: dict[str, Any] = {"name": dataset, "task": task, "tags": tags, "workspace": workspace}
        if multi_label is not None:
            meta["multi_label"] = multi_label
        self.fs.pipe_file(self.meta(dataset), orjson.dumps(meta, option=orjson.OPT_INDENT_2))

    def partition(self, dataset: str, day: Any) -> str:
        return f"{self.root}/{dataset}/date={day.isoformat()}"

    def task_parts(self, prefix: str) -> list[str]:
        return sorted(self.fs.glob(f"{self.root}/*/date=*/{prefix}*.parquet"))

    def manifest_dir(self, run: str) -> str:
        return f"{self.root}/{BACKFILL_DIR}/{run}"

    def rejects_file(self, stamp: str) -> str:
        return f"{self.root}/{REJECTS_DIR}/{stamp}.jsonl"

    @property
    def runs_file(self) -> str:
        return f"{self.root}/{RUNS_FILE}"


class ObjectTaskStore:
    """One backfill task's sink into an object store: the local TaskStore's rules
    (names per run and task, an id check that ignores the run's other tasks) with whole
    objects instead of files renamed into place. ``before``: the datasets the store held
    before the backfill (None: not known), whose decisions (task, multi_label) bind the run
    as a local store's do; a dataset another task of the run created is not the target's
    (the commit step writes the run's decisions there)."""

    def __init__(
        self,
        url: str,
        run: str,
        task: str,
        flush_bytes: int = FLUSH_BYTES,
        before: frozenset[str] | None = None,
    ):
        self.layout = ObjectLayout.of(url)
        self.before = before
        self.description = f"store {url}"
        self.prefix = StoreLayout.task_prefix(run, task)
        self.run_prefix = StoreLayout.task_prefix(run)
        self.flush_bytes = flush_bytes
        for old in self.layout.task_parts(self.prefix + "-"):  # what an earlier attempt left
            self.layout.fs.rm(old)
        self._pending: dict[str, list[Batch]] = {}
        self._pending_bytes = 0
        self._tasks: dict[str, str | None] = {}
        self._held: dict[str, set[str]] = {}  # partition -> ids it holds (but other tasks')
        self._parts = 0
        self._unacknowledged = Delivery()

    def _task_of(self, batch: Batch) -> str | None:
        dataset = batch.route.dataset
        if dataset not in self._tasks:
            meta = self.layout.read_meta(dataset) if self._held_before(dataset) else None
            if meta is not None:
                self._tasks[dataset] = meta["task"]
            else:
                self.layout.write_meta(
                    dataset, batch.task, batch.route.tags, batch.route.workspace, batch.multi_label
                )
                self._tasks[dataset] = batch.task
        return self._tasks[dataset]

    def _held_before(self, dataset: str) -> bool:
        return self.before is None or dataset in self.before

    def dataset_info(self, route: Any) -> tuple[str | None, bool | None]:
        """(task, multi_label) of a dataset the store held before the run, None for what it
        does not say (as LocalStore.dataset_info)."""
        meta = self.layout.read_meta(route.dataset) if self._held_before(route.dataset) else None
        if meta is None:
            return None, None
        multi_label = meta.get("multi_label")
        return meta.get("task"), multi_label if isinstance(multi_label, bool) else None

    def add(self, batch: Batch) -> Delivery:
        known = self._task_of(batch)
        if known is not None and known != batch.task:
            return task_conflict(batch, known)
        self._pending.setdefault(batch.route.dataset, []).append(batch)
        self._pending_bytes += batch.table.nbytes
        if self._pending_bytes >= self.flush_bytes:
            self._spill()
        return Delivery()

    def flush(self) -> Delivery:
        self._spill()
        delivery, self._unacknowledged = self._unacknowledged, Delivery()
        return delivery

    def close(self) -> None:
        self._pending.clear()

    def _held_ids(self, partition: str) -> set[str]:
        held = self._held.get(partition)
        if held is None:
            fs = self.layout.fs
            held = set()
            for path in sorted(fs.glob(f"{partition}/part-*.parquet")):
                name = path.rsplit("/", 1)[-1]
                if name.startswith(self.run_prefix) and not name.startswith(self.prefix + "-"):
                    continue  # another task of this run: the commit step settles those
                held.update(pq.read_table(path, columns=["id"], filesystem=fs)["id"].to_pylist())
            self._held[partition] = held
        return held

    def _spill(self) -> None:
        for dataset, batches in self._pending.items():
            table = pa.concat_tables([b.table for b in batches])
            unique = first_occurrences(table)
            self._unacknowledged.already_stored.update(_counter(table) - _counter(unique))
            dates = pc.cast(unique["event_timestamp"], pa.date32())
            for day in pc.unique(dates).to_pylist():
                part = unique.filter(pc.equal(dates, pa.scalar(day, pa.date32())))
                partition = self.layout.partition(dataset, day)
                held = self._held_ids(partition)
                fresh = part.filter(
                    pc.invert(pc.is_in(part["id"], value_set=pa.array(list(held), pa.string())))
                )
                self._unacknowledged.already_stored.update(_counter(part) - _counter(fresh))
                if fresh.num_rows:
                    path = f"{partition}/{self.prefix}-{self._parts:04d}.parquet"
                    self._parts += 1
                    with self.layout.fs.open(path, "wb") as fh:  # the object appears when this closes
                        pq.write_table(fresh, fh, compression="zstd", use_dictionary=DICTIONARY_COLUMNS)
                    held.update(fresh["id"].to_pylist())
                    self._unacknowledged.written.update(_counter(fresh))
        self._pending.clear()
        self._pending_bytes = 0


def dedupe_partition(url: str, partition: str, run: str, order: dict[str, int]) -> dict[str, Counter[str]]:
    """The commit step in one partition of an object store (see dask.dedupe_partition)."""
    layout = ObjectLayout.of(url)
    fs = layout.fs
    prefix = StoreLayout.task_prefix(run)

    def key_of(path: str) -> str:
        return path.rsplit("/", 1)[-1][len(prefix) :].split("-")[0]

    files = sorted(
        fs.glob(f"{partition}/{prefix}*.parquet"), key=lambda p: (order.get(key_of(p), len(order)), p)
    )
    seen: set[str] = set()
    removed: dict[str, Counter[str]] = {}
    for path in files:
        table = pq.read_table(path, filesystem=fs, schema=SCHEMA)
        duplicate = pc.is_in(table["id"], value_set=pa.array(list(seen), pa.string()))
        if pc.any(duplicate).as_py():
            removed.setdefault(key_of(path), Counter()).update(
                table.filter(duplicate)["endpoint"].to_pylist()
            )
            table = table.filter(pc.invert(duplicate))
            if table.num_rows:
                with fs.open(path, "wb") as fh:
                    pq.write_table(table, fh, compression="zstd", use_dictionary=DICTIONARY_COLUMNS)
            else:
                fs.rm(path)
        seen.update(table["id"].to_pylist())
    return removed


class ObjectManifest:
    """``_backfill/<run>/``: one object per finished task, ``finished.json`` at the end."""

    def __init__(self, url: str, run: str):
        self.layout = ObjectLayout.of(url)
        self.dir = self.layout.manifest_dir(run)
        self.path = self.layout.url(self.dir)
        names = [p.rsplit("/", 1)[-1] for p in self.layout.fs.glob(f"{self.dir}/*.json")]
        self.done = {n[: -len(".json")] for n in names if n not in ("run.json", "finished.json")}
        self.finished = "finished.json" in names
        self.started = "run.json" in names
        self.before: frozenset[str] | None = None  # the store's datasets when the backfill started
        if self.started:
            first = orjson.loads(self.layout.fs.cat_file(f"{self.dir}/run.json"))
            if first.get("datasets_before") is not None:
                self.before = frozenset(first["datasets_before"])

    def entry(self, task: str) -> dict[str, Any]:
        """A finished task's object: what it decided and the halves it left unjoined."""
        path = f"{self.dir}/{task}.json"
        return orjson.loads(self.layout.fs.cat_file(path)) if self.layout.fs.exists(path) else {}

    def append(self, entry: dict[str, Any]) -> None:
        name = entry["task"] if "task" in entry else "finished" if entry.get("finished") else "run"
        self.layout.fs.pipe_file(f"{self.dir}/{name}.json", orjson.dumps(entry))


def append_line(url: str, path: str, line: bytes) -> None:
    """Add a line to an object (read, then written whole: object storage has no append)."""
    fs = ObjectLayout.of(url).fs
    before = fs.cat_file(path) if fs.exists(path) else b""
    fs.pipe_file(path, before + line)

"""The local store: Parquet files per dataset, readable with ``pandas.read_parquet``.

Layout: ``<store>/<dataset>/date=YYYY-MM-DD/part-*.parquet`` plus ``_dataset.json``
(task, tags, workspace). Partitioning by the request's UTC date keeps the id check of a
write to the files of one day: a log line always has the same date, so its records can
only ever be in that partition. Files appear by atomic rename of a fsynced temporary
file whose name starts with a dot, which readers skip, so a crash never leaves a
half-written file that a reader picks up. An id already in the store is not written
again, which makes re-ingesting a log a no-op rather than a duplication.
"""

from __future__ import annotations

import json
import os
import uuid
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ingest.sinks import Delivery
from ingest.sinks.known_ids import KnownIds
from ingest.transform import SCHEMA, Batch

# Pending Arrow bytes that trigger a write: bigger means fewer, larger files but more memory
# (measured at 200k lines, before the other savings: 64 MB -> 422 MB peak, 16 MB -> 360 MB).
FLUSH_BYTES = 8 << 20
DICTIONARY_COLUMNS = ["task", "endpoint", "status", "predicted_label", "source_file"]


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent)


def _counter(table: pa.Table, column: str = "endpoint") -> Counter[str]:
    if table.num_rows == 0:
        return Counter()
    counts = pc.value_counts(table[column]).to_pylist()
    return Counter({c["values"]: c["counts"] for c in counts})


def first_occurrences(table: pa.Table) -> pa.Table:
    """Keep the first row of each id (the same line given twice, e.g. a file and its copy)."""
    ids = table["id"].to_pylist()
    if len(set(ids)) == len(ids):
        return table
    seen: set[str] = set()
    keep = [not (i in seen or seen.add(i)) for i in ids]  # type: ignore[func-returns-value]
    return table.filter(pa.array(keep))


class LocalStore:
    def __init__(self, root: Path, flush_bytes: int = FLUSH_BYTES, known_ids: KnownIds | None = None):
        self.root = root
        self.description = f"local store {root}"
        self.flush_bytes = flush_bytes
        self._pending: dict[str, list[Batch]] = {}
        self._pending_bytes = 0
        self._tasks: dict[str, str] = {}
        self._known = known_ids or KnownIds()

    # -- dataset metadata -------------------------------------------------------------
    def dataset_task(self, dataset: str) -> str | None:
        if dataset not in self._tasks:
            meta = self.root / dataset / "_dataset.json"
            if meta.exists():
                self._tasks[dataset] = json.loads(meta.read_text())["task"]
        return self._tasks.get(dataset)

    def _write_meta(self, batch: Batch) -> None:
        directory = self.root / batch.route.dataset
        directory.mkdir(parents=True, exist_ok=True)
        meta = {
            "name": batch.route.dataset,
            "task": batch.task,
            "tags": batch.route.tags,
            "workspace": batch.route.workspace,
        }
        atomic_write_bytes(directory / "_dataset.json", json.dumps(meta, indent=1).encode())
        self._tasks[batch.route.dataset] = batch.task

    # -- the sink protocol ------------------------------------------------------------
    def add(self, batch: Batch) -> Delivery:
        dataset = batch.route.dataset
        known = self.dataset_task(dataset)
        if known is not None and known != batch.task:
            return task_conflict(batch, known)
        if known is None:
            self._write_meta(batch)
        self._pending.setdefault(dataset, []).append(batch)
        self._pending_bytes += batch.table.nbytes
        return self.flush() if self._pending_bytes >= self.flush_bytes else Delivery()

    def flush(self) -> Delivery:
        delivery = Delivery()
        for dataset, batches in self._pending.items():
            table = pa.concat_tables([b.table for b in batches])
            delivery.merge(self._write_dataset(dataset, table))
        self._pending.clear()
        self._pending_bytes = 0
        return delivery

    def close(self) -> None:
        self._pending.clear()

    # -- writing ----------------------------------------------------------------------
    def _write_dataset(self, dataset: str, table: pa.Table) -> Delivery:
        delivery = Delivery()
        unique = first_occurrences(table)
        delivery.already_stored.update(_counter(table) - _counter(unique))
        dates = pc.cast(unique["event_timestamp"], pa.date32())
        for day in pc.unique(dates).to_pylist():
            part = unique.filter(pc.equal(dates, pa.scalar(day, pa.date32())))
            directory = self.root / dataset / f"date={day.isoformat()}"
            fresh = self._known.fresh(directory, part)
            delivery.already_stored.update(_counter(part) - _counter(fresh))
            if fresh.num_rows:
                self._write_part(directory, fresh)
                self._known.added(directory, fresh)
                delivery.written.update(_counter(fresh))
        return delivery

    def _write_part(self, directory: Path, table: pa.Table) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
        final = directory / f"part-{stamp}-{uuid.uuid4().hex[:12]}.parquet"
        tmp = directory / f".{final.name}.tmp"
        with open(tmp, "wb") as fh:
            # Dictionary encoding pays only for the repetitive columns; on the record JSON it
            # is tried and abandoned at a cost.
            pq.write_table(table, fh, compression="zstd", use_dictionary=DICTIONARY_COLUMNS)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, final)
        _fsync_dir(directory)


def list_datasets(root: Path) -> list[str]:
    return sorted(p.parent.name for p in root.glob("*/_dataset.json"))


def task_conflict(batch: Batch, known: str) -> Delivery:
    """Records whose task differs from their dataset's: the server would refuse them too."""
    delivery = Delivery()
    reason = (
        f"dataset {batch.route.dataset!r} holds {known} records, this record is {batch.task}; "
        "configure a dataset or mapper for this endpoint"
    )
    for row in batch.table.select(["source_file", "source_line", "endpoint", "record"]).to_pylist():
        delivery.rejects.append(reject_of_row(row, reason, "sink"))
    return delivery


def reject_of_row(row: dict[str, Any], reason: str, stage: str) -> dict[str, Any]:
    return {
        "file": row["source_file"],
        "line": row["source_line"],
        "offset": None,
        "record": None,
        "endpoint": row["endpoint"],
        "stage": stage,
        "reason": reason,
        "raw": row["record"][:2000],
    }


def read_dataset(root: Path, dataset: str, columns: list[str] | None = None) -> pa.Table:
    """The whole dataset as one table (for push, reports and tests)."""
    import pyarrow.dataset as ds

    directory = root / dataset
    if not directory.exists():
        empty = SCHEMA.empty_table()
        return empty.select(columns) if columns else empty
    return ds.dataset(directory, format="parquet", partitioning="hive").to_table(columns=columns)
